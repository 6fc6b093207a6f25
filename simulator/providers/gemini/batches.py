"""The Batch API: `batchGenerateContent` as a long-running operation, an engine job read off the clock.

A Batch waits in its queue (`batch_seconds`, drawn by seed), then each of its requests runs as an engine
task, as a generateContent would. The engine's job says where it stands (queued, processing, succeeded,
failed, canceled after `:cancel`, expired when still unfinished after `batch_expiry_seconds`); this module
maps that to Google's words (`BATCH_STATE_*`, `done`, `metadata`) and draws the Operation. Results come back
twice when done, in `metadata.output` and `response`: inline, or for file input as a generated JSONL file to
download. Requests are priced at the Batch discount.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.engine import Job, Phase, Task
from simulator.engine.rng import random_token
from simulator.pipeline import Answer, Exchange, Handler, ProviderError
from simulator.providers.gemini.files import GENERATED, timestamp
from simulator.providers.gemini.models import Model
from simulator.providers.gemini.proto import normalise
from simulator.validation import dotted_path

if TYPE_CHECKING:
    from simulator.providers.gemini.provider import GeminiProvider

INTERNAL, INVALID_ARGUMENT = 13, 3  # google.rpc.Code numbers inside an operation
RESULTS_MIME = "application/jsonl"


@dataclass
class Item:
    """One request of a Batch: its key or metadata, and its task (None when the request was refused)."""

    metadata: dict[str, Any] | None
    key: str | None
    task: Task | None = None
    error: dict[str, Any] | None = None


@dataclass
class Batch:
    """What Google's Batch adds to the engine's job: the model, the requests, the input and results files."""

    # The engine's job, which holds this batch as its `detail`: held weakly, since a cycle of the two outlives them
    # once `serve` has frozen it (simulator.heap). A batch is only ever reached through its job.
    held_job: weakref.ref[Job]
    model: Model
    display_name: str | None
    items: list[Item]
    input_file: str | None = None
    results: str | None = None  # the generated results file, once written
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job(self) -> Job:
        job = self.held_job()
        assert job is not None, "a batch outlived its job"
        return job

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


class Batches:
    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider
        self.engine = provider.engine

    def handlers(self) -> dict[str, Handler]:
        return {"BatchGenerateContent": self.create, "GetBatch": self.get, "ListBatches": self.list_batches,
                "CancelBatch": self.cancel, "DeleteBatch": self.delete}

    def state(self, batch: Batch) -> tuple[str, float | None]:
        """Google's word for the job's phase and, once it is done, when it ended."""
        phase, ended = batch.job.phase(self.engine.now())
        return self.provider.data["batch"]["states"][phase.value], ended

    def _batches(self, owner: str) -> list[Batch]:
        return [job.detail for job in self.engine.jobs.values()
                if job.provider == self.provider.slug and job.owner == owner]

    # -- handlers ---------------------------------------------------------------------------------------

    async def create(self, exchange: Exchange) -> Answer:
        provider = self.provider
        model = provider.model(exchange)
        body = normalise(provider.schemas, "request/batch-generate-content", exchange.body, vertex=False).value
        spec = body["batch"]
        source = spec["inputConfig"]
        _, rng = self.engine.next_rng("gemini")
        ids = provider.data["ids"]["batch"]
        now = self.engine.now()
        low, high = provider.options["batch_seconds"]
        starts = now + rng.uniform(float(low), float(high))
        if "fileName" in source:
            items = self._file_items(exchange, str(source["fileName"]), model, starts)
        else:
            items = [self._item(exchange, request.get("request", {}), request.get("metadata"), None, model, starts)
                     for request in source["requests"]["requests"]]
        job = Job(random_token(rng, ids["length"], ids["alphabet"]), provider.slug, exchange.caller, now, starts,
                  now + float(provider.options["batch_expiry_seconds"]),
                  [item.task for item in items if item.task is not None])
        batch = Batch(weakref.ref(job), model, spec.get("displayName"), items, input_file=source.get("fileName"))
        job.detail = batch
        self._charge(exchange, batch)
        self.engine.add_job(job)
        exchange.task_id = batch.name
        return Answer.json(await self.operation(batch, exchange))

    def _item(self, exchange: Exchange, request: dict[str, Any], metadata: Any, key: str | None, model: Model,
              starts: float) -> Item:
        ask = self.provider.ask(exchange, request, "request/generate-content", batch=True, model=model)
        return Item(metadata if isinstance(metadata, dict) else None, key,
                    self.provider.generator.plan(exchange.caller, ask, accepted_at=starts))

    def _file_items(self, exchange: Exchange, file_name: str, model: Model, starts: float) -> list[Item]:
        """Each JSONL line of the input file; a line that is not a valid request fails alone, when it runs."""
        stored = self.provider.files.find(file_name.removeprefix("files/"), exchange.caller)
        if stored is None:
            raise self.provider.wording.refusal("file_not_found", file=file_name.removeprefix("files/"))
        items = []
        for number, line in enumerate(stored.data.decode("utf-8", "replace").splitlines()):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                items.append(Item(None, None, error={"code": INVALID_ARGUMENT, "message": f"line {number + 1}: {exc}"}))
                continue
            report = self.provider.schemas.validate("request/batch-input-line", value)
            key = value.get("key") if isinstance(value, dict) else None
            if not report.ok:
                problem = report.violations[0]
                message = f"{dotted_path(problem.path) or '(line)'}: {problem.message}"
                items.append(Item(None, key, error={"code": INVALID_ARGUMENT, "message": message}))
                continue
            try:
                items.append(self._item(exchange, value["request"], None, key, model, starts))
            except ProviderError as refused:
                items.append(Item(None, key, error={"code": INVALID_ARGUMENT, "message": refused.message}))
        return items

    def _charge(self, exchange: Exchange, batch: Batch) -> None:
        price = sum(self.provider.generator.price(task) for task in batch.job.tasks)
        if price and not self.engine.wallets.debit(self.provider.slug, exchange.caller, price):
            for task in batch.job.tasks:
                self.engine.cancel(task)
            raise self.provider.forced(exchange, {"error": "insufficient_credits"})
        batch.extra["price"] = price

    def _owned(self, exchange: Exchange) -> Batch:
        job = self.engine.jobs.get(exchange.params["batch"])
        if job is None or job.provider != self.provider.slug or job.owner != exchange.caller:
            raise self.provider.wording.refusal("batch_not_found")
        batch: Batch = job.detail
        return batch

    async def get(self, exchange: Exchange) -> Answer:
        return Answer.json(await self.operation(self._owned(exchange), exchange))

    async def list_batches(self, exchange: Exchange) -> Answer:
        owned = sorted(self._batches(exchange.caller), key=lambda b: b.job.created, reverse=True)
        chosen, following = self.provider.page(exchange, owned)
        body: dict[str, Any] = {"operations": [await self.operation(b, exchange) for b in chosen]} if chosen else {}
        if following:
            body["nextPageToken"] = following
        return Answer.json(body)

    async def cancel(self, exchange: Exchange) -> Answer:
        batch = self._owned(exchange)
        if not self.engine.cancel_job(batch.job):
            raise self.provider.wording.refusal("batch_not_cancellable", batch=batch.name, state=self.state(batch)[0])
        return Answer.json({})

    async def delete(self, exchange: Exchange) -> Answer:
        self.engine.delete_job(self._owned(exchange).job)
        return Answer.json({})

    # -- the Operation --------------------------------------------------------------------------------------

    async def operation(self, batch: Batch, exchange: Exchange) -> dict[str, Any]:
        data = self.provider.data["batch"]
        state, ended = self.state(batch)
        now = self.engine.now()
        metadata: dict[str, Any] = {"@type": data["metadataType"], "name": batch.name,
                                    "model": f"models/{batch.model.id}"}
        if batch.display_name:
            metadata["displayName"] = batch.display_name
        if batch.input_file:
            metadata["inputConfig"] = {"fileName": batch.input_file}
        metadata |= {"createTime": timestamp(batch.job.created), "updateTime": timestamp(min(now, ended or now))}
        done = ended is not None
        succeeded = [item for item in batch.items if item.task is not None and item.task.phase(now) is Phase.SUCCEEDED]
        counts = {"requestCount": len(batch.items)}
        if done and batch.job.canceled_at is None:
            failed = len(batch.items) - len(succeeded)
            counts |= {"successfulRequestCount": len(succeeded), "failedRequestCount": failed}
        else:
            counts["pendingRequestCount"] = len(batch.items)
        metadata["batchStats"] = {name: str(count) for name, count in counts.items() if count}
        metadata["state"] = state
        body: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if not done:
            return body
        metadata["endTime"] = timestamp(ended or now)
        body["done"] = True
        if batch.job.canceled_at is not None or state == data["states"]["expired"]:
            return body
        output = await self._output(batch, exchange)
        metadata["output"] = output
        body["response"] = {"@type": data["outputType"], **output}
        return body

    async def _output(self, batch: Batch, exchange: Exchange) -> dict[str, Any]:
        results = [await self._result(item, exchange) for item in batch.items]
        if batch.input_file is None:
            return {"inlinedResponses": {"inlinedResponses": results}}
        if batch.results is None:
            lines = "".join(json.dumps({"key": item.key, **result} if item.key is not None else result,
                                       ensure_ascii=False, separators=(",", ":")) + "\n"
                            for item, result in zip(batch.items, results, strict=True))
            stored = self.provider.files.add(batch.job.owner, f"batch-{batch.id}", lines.encode(), RESULTS_MIME,
                                             source=GENERATED, display_name=f"batch-{batch.id}")
            batch.results = stored.name
        return {"responsesFile": batch.results}

    async def _result(self, item: Item, exchange: Exchange) -> dict[str, Any]:
        result: dict[str, Any]
        now = self.engine.now()
        if item.error is not None or item.task is None:
            result = {"error": item.error or {"code": INTERNAL, "message": "The request was not run."}}
        elif item.task.phase(now) is Phase.SUCCEEDED:
            result = {"response": await self.provider.responses.answer(item.task)}
        else:
            fault = self.provider.data["taskFaults"]["fail"]["batch"]["itemError"]
            result = {"error": {"code": int(fault["code"]), "message": str(fault["message"])}}
        if item.metadata is not None:
            result["metadata"] = item.metadata
        return result


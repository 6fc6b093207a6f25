"""Runware REST (`POST /v1`, a JSON array of tasks): auth, task dispatch, sync/async delivery, callbacks.

Each task of the array is validated and run on its own, so one request can answer with results in
`data[]` and failures in `errors[]` (errors page: "errors are scoped to the specific task that failed,
while other tasks in the same request may still succeed"). The WebSocket transport is not simulated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from simulator.engine import Delivery, Phase, RetryPolicy, Task
from simulator.engine.rng import random_uuid
from simulator.faults.errors import error_spec
from simulator.http.context import BodyError, bearer_token, context, public_base, read_json
from simulator.images import content_type
from simulator.providers.base import Provider
from simulator.providers.runware.errors import ROOT_SCHEMA, ErrorCatalog, TaskError, first_violation
from simulator.providers.runware.faults import (
    flag_instead_of_block,
    forced_items,
    leading_authentication,
    submits,
    tasks_of,
)
from simulator.providers.runware.jobs import SLUG, Job, JobBuilder, job_of
from simulator.providers.runware.render import Renderer
from simulator.providers.runware.sizing import plan_size, unit_cost
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation

# The path of the real result URLs (https://im.runware.ai/image/ws/2/ii/<imageUUID>.jpg).
IMAGE_PREFIX = "/image/ws/2/ii"
# taskUUIDs are unique across the service, not per API key: the SDKs treat conflictTaskUUID as
# "already submitted", so the key store is not scoped to the owner.
ANY_OWNER = "*"
# Headers of the generic forced-error response that describe its body, not the fault.
BODY_HEADERS = frozenset({"content-length", "content-type"})


@dataclass
class Outcome:
    """What one task of the array contributes to the response."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[TaskError] = field(default_factory=list)
    wait_for: Job | None = None  # a sync job: rendered once every image is terminal
    show: Job | None = None  # a getResponse: the job as it stands

    @property
    def job(self) -> Job | None:
        return self.wait_for or self.show


class RunwareProvider(Provider):
    slug: ClassVar[str] = SLUG

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.files = SignedFiles(self, IMAGE_PREFIX)
        self.errors = ErrorCatalog(self.data, self.schemas)
        self.renderer = Renderer(self.engine, self.files, self.options, self.errors)
        self.handlers: dict[str, Callable[[Request, str, dict[str, Any]], Outcome]] = {
            "imageInference": self._image_inference,
            "getResponse": self._get_response,
            "ping": self._ping,
            "authentication": self._misplaced_authentication,
        }

    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/v1", self.submit, ["POST"], "Tasks"),
            self.route("/v1/", self.submit, ["POST"], "Tasks"),
            self.files.route(),
        ]

    # -- envelopes -------------------------------------------------------------------------------------

    def _respond(self, data: list[dict[str, Any]], errors: list[TaskError]) -> Response:
        body: dict[str, Any] = {}
        if data or not errors or self.options["errors_with_empty_data"]:
            body["data"] = data
        if errors:
            body["errors"] = [error.item for error in errors]
        status = 200
        if errors and (not data or self.options["partial_failure_status"] == "first_error"):
            status = errors[0].status
        return JSONResponse(body, status_code=status)

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        item = {"code": code or self.data["defaultCodes"].get(str(status), "unknownError"), "message": message}
        return self._respond([], [TaskError(status, item)])

    def validation_error(self, violations: list[Violation]) -> Response:
        return self._respond([], [self.errors.from_violation(first_violation(violations), None)])

    # -- failure rehearsal -----------------------------------------------------------------------------

    def api_key_of(self, request: Request, body: Any) -> str | None:
        """The key of a leading authentication task, else the Bearer header (as `_owner` reads them)."""
        leading = leading_authentication(body)
        if leading is None:
            return bearer_token(request)
        key = leading.get("apiKey")
        return key if isinstance(key, str) else None

    def submits(self, operation: str, body: Any) -> bool:
        """Every request is operation `Tasks`: only one carrying imageInference work is held to a concurrency
        limit, so a getResponse poll is never refused for the generations it polls."""
        return submits(tasks_of(body))

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """A forced error as errors[] items scoped to the request's tasks; status and headers as the base says."""
        generic = super().fault_response(request, do)
        spec = error_spec(self.data.get("faults", {}), do)
        if "code" in do:
            code = str(do["code"])
        elif spec.get("codeOption"):
            code = str(self.options[spec["codeOption"]])
        else:
            code = spec.get("code") or self.data["defaultCodes"].get(str(generic.status_code), "unknownError")
        tasks = tasks_of(getattr(request.state, "json_body", None))
        uuids = [task["taskUUID"] for task in tasks if isinstance(task.get("taskUUID"), str)]
        if uuids:
            context(request)["task_id"] = uuids[0]
        items = forced_items(spec, code, tasks)
        response = self._respond([], [TaskError(generic.status_code, item) for item in items])
        response.headers.update({k: v for k, v in generic.headers.items() if k.lower() not in BODY_HEADERS})
        return response

    # -- POST /v1 ------------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        try:
            body = await read_json(request)
        except BodyError as exc:
            return self._respond([], [self.errors.named("invalidRequestBody", "validation", detail=str(exc))])
        if not isinstance(body, list) or not body:
            detail = "Got an empty array." if body == [] else f"Got a JSON {_json_type(body)}."
            return self._respond([], [self.errors.named("invalidRequestBody", "validation", detail=detail)])
        tasks: list[Any] = list(body)
        leading = leading_authentication(body)
        if leading is not None:
            tasks = tasks[1:]
        owner, refusal = self._owner(request, leading)
        if refusal is not None:
            return self._respond([], [refusal])
        data: list[dict[str, Any]] = []
        if leading is not None and self.options["echo_authentication_task"]:
            session = random_uuid(self.engine.seeds.stream(SLUG, "session", owner))
            data.append({"taskType": "authentication", "connectionSessionUUID": session})
        outcomes = [self._run(request, owner, task) for task in tasks]
        await self._settle(outcomes)
        now = self.engine.now()
        errors: list[TaskError] = []
        for outcome in outcomes:
            data.extend(outcome.data)
            errors.extend(outcome.errors)
            if outcome.job is not None:
                items, failures = self.renderer.state(outcome.job, now, polled=outcome.show is not None)
                data.extend(items)
                errors.extend(failures)
        return self._respond(data, errors)

    def _owner(self, request: Request, leading: dict[str, Any] | None) -> tuple[str, TaskError | None]:
        """The API key from a leading authentication task, else from `Authorization: Bearer`."""
        if leading is not None:
            key = leading.get("apiKey")
            api_key = key if isinstance(key, str) else None
        else:
            api_key = bearer_token(request)
        auth_task = {"taskType": "authentication"}
        if not api_key:
            return "", self.errors.named("missingApiKey", "authentication", auth_task, parameter="apiKey")
        owner = self.authenticate(request, api_key)
        if owner is None:
            return "", self.errors.named("invalidApiKey", "authentication", auth_task, parameter="apiKey")
        return owner, None

    def _run(self, request: Request, owner: str, task: Any) -> Outcome:
        notes = context(request)
        if not isinstance(task, dict):
            return Outcome(errors=[self.errors.named("invalidTask", "validation", detail=f"a JSON {_json_type(task)}")])
        report = self.schemas.validate(ROOT_SCHEMA, task)
        violations = report.violations
        if self.options["unknown_parameters"] == "ignore":
            ignored = [v for v in violations if v.rule == "additionalProperties"]
            task = _without(task, [v.path for v in ignored])
            notes.setdefault("ignored", []).extend(v.as_dict() for v in ignored)
            violations = [v for v in violations if v.rule != "additionalProperties"]
        if isinstance(task.get("taskUUID"), str):
            notes.setdefault("task_id", task["taskUUID"])
        if violations:
            return self._rejected(request, task, violations)
        return self.handlers[task["taskType"]](request, owner, task)

    def _rejected(self, request: Request, task: Any, violations: list[Violation]) -> Outcome:
        context(request).setdefault("violations", []).extend(v.as_dict() for v in violations)
        return Outcome(errors=[self.errors.from_violation(first_violation(violations), task)])

    async def _settle(self, outcomes: list[Outcome]) -> None:
        """Hold the response until every sync job is done or timed out (on the clock), then encode inline images."""
        now = self.engine.now()
        jobs = [o.wait_for for o in outcomes if o.wait_for is not None]
        # A finite wait even for a task that never finishes: the job's deadline timer ends it by then.
        await asyncio.gather(*(
            self.engine.wait(image, max(0.0, min(image.terminal_at(), job.timeout_at) - now))
            for job in jobs for image in job.images
        ))
        for job in jobs:
            if job.deadline is not None:
                job.deadline.cancel()
        inline = [
            image for o in outcomes if o.job is not None and o.job.output_types != ["URL"]
            for image in o.job.images
            if image.phase(self.engine.now()) is Phase.SUCCEEDED and not self.renderer.withheld(image)
        ]
        # Encoding a 4K placeholder takes a fraction of a second: keep it off the event loop.
        await asyncio.gather(*(asyncio.to_thread(self.renderer.image_bytes, image) for image in inline))

    # -- task types ------------------------------------------------------------------------------------

    def _ping(self, request: Request, owner: str, task: dict[str, Any]) -> Outcome:
        return Outcome(data=[{"taskType": "ping", "pong": True}])

    def _misplaced_authentication(self, request: Request, owner: str, task: dict[str, Any]) -> Outcome:
        return Outcome(errors=[self.errors.named("invalidTaskOrder", "validation", task, parameter="taskType")])

    def _get_response(self, request: Request, owner: str, task: dict[str, Any]) -> Outcome:
        found = self.engine.tasks.by_key(SLUG, ANY_OWNER, task["taskUUID"])
        job = job_of(found) if found is not None else None
        if job is None or job.owner != owner:
            error = self.errors.named("taskFailedOrNotFound", "notFound", task, parameter="taskUUID",
                                      task_uuid=task["taskUUID"])
            return Outcome(errors=[error])
        return Outcome(show=job)

    def _image_inference(self, request: Request, owner: str, task: dict[str, Any]) -> Outcome:
        task = self.schemas.with_defaults(ROOT_SCHEMA, task)
        card = self.data["models"][task["model"]]
        plan = plan_size(task, card, self.options)
        if isinstance(plan, list):
            return self._rejected(request, task, plan)
        task_uuid = task["taskUUID"]
        if self.engine.tasks.by_key(SLUG, ANY_OWNER, task_uuid) is not None:
            # The documented idempotent replay (conflictTaskUUID): refused, but not a broken contract, so it is
            # noted in the journal rather than listed among the request's violations.
            duplicate = Violation(("taskUUID",), "duplicate", "taskUUID already in use", task_uuid)
            context(request)["note"] = f"taskUUID {task_uuid} replayed: answered conflictTaskUUID"
            return Outcome(errors=[self.errors.from_violation(duplicate, task)])
        cost = unit_cost(task, card, plan, float(self.options["search_surcharge_usd"]))
        total = round(cost * int(task["numberResults"]), 5)
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, total):
            balance = wallets.balance(self.slug, owner)
            context(request)["note"] = f"insufficient credits: cost {total}, balance {balance}"
            error = self.errors.named(self.options["insufficient_credits_code"], "credits", task,
                                      template="insufficientCredits", cost=f"{total:.5f}", balance=f"{balance:.5f}")
            return Outcome(errors=[error])
        job = JobBuilder(self.engine, self.data["models"]).build(owner, task, plan, public_base(request), cost)
        for image in job.images:
            self.engine.add_task(image)
        if self.options["partial_block_style"] == "nsfw_flag" and job.flags_content():
            flag_instead_of_block(job)
        self.engine.tasks.remember_key(SLUG, ANY_OWNER, task_uuid, job.images[0].id)
        if task["deliveryMethod"] == "async":
            return Outcome(data=[self.renderer.pending(job, polled=False)])
        job.timeout_at = self.engine.now() + float(self.options["sync_timeout_seconds"])
        job.deadline = self.engine.clock.call_at(job.timeout_at, lambda: self._time_out(job))
        return Outcome(wait_for=job)

    def _time_out(self, job: Job) -> None:
        """The sync timeout: generations still running fail with timeoutProvider (shown on getResponse too)."""
        now = self.engine.now()
        for image in job.images:
            if not image.phase(now).terminal:
                image.faults.append("sync timeout")
                self.engine.cancel(image)

    # -- callbacks -------------------------------------------------------------------------------------

    def _policy(self, delays_option: str) -> RetryPolicy:
        delays = tuple(float(d) for d in self.options[delays_option])
        return RetryPolicy(delays, float(self.options["webhook_timeout_seconds"]))

    def _post(self, job: Job, event: str, payload: dict[str, Any]) -> None:
        self.engine.webhooks.enqueue(Delivery(
            stream=f"{SLUG}:{job.task_uuid}:webhook", url=job.request["webhookURL"], payload=payload,
            provider=self.slug, event=event, task_id=job.task_uuid, policy=self._policy("webhook_retry_delays"),
        ))

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        job = job_of(task)
        if job is None or not phase.terminal:
            return
        if phase is Phase.SUCCEEDED and not self.renderer.withheld(task):
            self._delivered(job, task)
            return
        # A generation that is blocked, fails or times out is not charged.
        self.engine.wallets.credit(self.slug, job.owner, job.unit_cost)
        if not job.request.get("webhookURL") or self.options["webhook_failures"] != "error_item":
            return
        if phase is Phase.SUCCEEDED:  # one image blocked among the results: its own error, as it completes
            self._post(job, "imageInference:error", self.renderer.blocked_image(job, task, polled=False).item)
        elif not job.failure_posted:
            job.failure_posted = True
            self._post(job, "imageInference:error", self.renderer.failure(job, task, polled=False).item)

    def _delivered(self, job: Job, task: Task) -> None:
        if job.request.get("webhookURL"):
            self._post(job, "imageInference:success", self.renderer.result(job, task, polled=False))
        if job.request.get("uploadEndpoint"):
            image = task.outputs[0]
            self.engine.webhooks.enqueue(Delivery(
                stream=f"{SLUG}:{task.id}:upload", url=job.request["uploadEndpoint"], payload=None,
                provider=self.slug, event="upload", task_id=job.task_uuid,
                policy=self._policy("upload_retry_delays"), method="PUT",
                content=self.renderer.image_bytes(task), content_type=content_type(image.format),
            ))


def _without(task: dict[str, Any], paths: list[tuple[str | int, ...]]) -> dict[str, Any]:
    """A copy of `task` without the properties at `paths` (unknown parameters, when they are ignored)."""
    if not paths:
        return task
    copy: dict[str, Any] = dict(task)
    for path in paths:
        holder: Any = copy
        for part in path[:-1]:
            child = holder[part]
            holder[part] = dict(child) if isinstance(child, dict) else list(child)
            holder = holder[part]
        holder.pop(path[-1], None)
    return copy


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")

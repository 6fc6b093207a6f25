"""qingbo.dev task API (`/v1/tasks`) for the Gemini Image Series: handlers, errors, callbacks."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from simulator.engine import Delivery, Engine, Phase, Task
from simulator.faults.errors import error_spec
from simulator.faults.limits import Limit
from simulator.faults.plan import RequestFacts
from simulator.images import ImageReference, InvalidImageReference, decode_image_reference
from simulator.pipeline import Answer, Endpoint, Exchange, ProviderError
from simulator.providers.base import Provider
from simulator.providers.qingbo.faults import QUOTA_WINDOW_CODE, QuotaWindow
from simulator.providers.qingbo.preferences import WaitPreference, prefer_wait
from simulator.providers.qingbo.pricing import task_quota
from simulator.providers.qingbo.render import (
    STATUS,
    View,
    cancel_object,
    legacy_submit_object,
    settled_cost,
    submit_object,
    sync_object,
    task_object,
    wire_phase,
)
from simulator.providers.qingbo.tasks import TaskBuilder
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation, render_message

TASKS = "/v1/tasks"
# Seed 001 Resource Limits: each reference image at most 30 MB, JPG / PNG / WEBP.
MAX_IMAGE_BYTES = 30 * 1024 * 1024
IMAGE_FORMATS = frozenset({"jpeg", "png", "webp"})
IMAGE_FIELDS = ("image_urls", "mask_url")
# April 2026 field names (GEM-OLD / KX) and the names that replaced them.
LEGACY_NAMES = {"size": "aspect_ratio", "google_search_enhancement": "google_search"}


class QingboProvider(Provider):
    slug: ClassVar[str] = "qingbo"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.files = SignedFiles(self, "/output")  # the CDN path of the documented result URLs

    def routes(self) -> list[Endpoint]:
        r = self.route
        return [
            r(TASKS, self.submit, ["POST"], "SubmitTask", replay=self._replay),
            r(TASKS + "/sync", self.submit_sync, ["POST"], "SubmitTaskSync", replay=self._replay_sync),
            r(TASKS + "/{task_id}", self.get_task, ["GET"], "GetTask"),
            r(TASKS + "/{task_id}/cancel", self.cancel, ["POST"], "CancelTask"),
            self.files.route(),
        ]

    @property
    def builder(self) -> TaskBuilder:
        return TaskBuilder(self.engine, self.data, self.options)

    # -- error envelopes ---------------------------------------------------------------------------

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        """Task endpoints answer `{"error": {"message", "code"}}` with no `type` (RR)."""
        fallback = "server_error" if status >= 500 else "invalid_request"
        code = code or self.data["errorCodes"].get(str(status), fallback)
        return Answer.json({"error": {"message": message, "code": code}}, status)

    def validation_error(self, violations: list[Violation]) -> Answer:
        templates = self.data["messages"]
        messages = [
            render_message(templates, v if v.path else dataclasses.replace(v, path=("body",))) for v in violations
        ]
        return self.error(400, "; ".join(messages))

    def _message(self, kind: str, task_id: str | None = None) -> str:
        """The wording of an error kind (provider.json `faults`), shared by real and forced errors;
        `{task_id}` names the task of the route, and is left out where the route has none."""
        template = str(error_spec(self.data["faults"], {"error": kind})["message"])
        return template.replace("{task_id}", task_id) if task_id else template.replace(" {task_id}", "")

    def _task_not_found(self, exchange: Exchange) -> ProviderError:
        message = self._message("not_found", exchange.params["task_id"])
        return ProviderError("not_found", message, status=404, code="task_not_found")

    # -- forced errors (failure rehearsal) -----------------------------------------------------------

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """The shared rendering, plus what qingbo's documented bodies need beyond it: the 429
        `quota_window_exceeded` members, the 402/403 choice of option `insufficient_balance_status`,
        a plain 429 for concurrency limits, and the task's ID in task-route messages."""
        do = self._qingbo_fault(exchange, do)
        answer = super().render_fault(exchange, do)
        body = answer.value
        if body["error"]["code"] != QUOTA_WINDOW_CODE:
            return answer
        limit = self._fired_limit(exchange)
        if limit is not None and "reset_at" in do:
            window = QuotaWindow.of_limit(limit, float(do["reset_at"]))
        else:
            defaults = self.data["faults"]["rate_limited"]["quotaWindow"]
            window = QuotaWindow.of_rule(do, defaults, self.engine.now())
        return Answer.json({**body, **window.members()}, answer.status, headers=answer.headers)

    def _qingbo_fault(self, exchange: Exchange, do: dict[str, Any]) -> dict[str, Any]:
        kind = str(do.get("error"))
        if kind == "rate_limited":
            limit = self._fired_limit(exchange)
            if limit is not None and not self._window_full(exchange, limit):
                # Refused for tasks in flight, not for a full request window: RR's plain "rate limit" 429.
                return {**do, "error": "too_many_requests"}
        if kind == "insufficient_credits" and "status" not in do:
            status = int(self.options["insufficient_balance_status"])
            return {**do, "status": status, "code": do.get("code") or self.data["errorCodes"][str(status)]}
        if "message" not in do and kind in self.data["faults"]:
            return {**do, "message": self._message(kind, exchange.path_params.get("task_id"))}
        return do

    def _fired_limit(self, exchange: Exchange) -> Limit | None:
        """The rate limit that refused this request (the pipeline notes it by name), if one did."""
        names = [note["limit"] for note in exchange.faults if "limit" in note]
        return next((limit for limit in self.engine.limits.limits if names and limit.name == names[-1]), None)

    def _window_full(self, exchange: Exchange, limit: Limit) -> bool:
        if limit.requests is None:
            return False
        facts = RequestFacts(provider=self.slug, operation=exchange.operation, api_key=exchange.api_key)
        return self.engine.limits.remaining(facts, self.engine.now()).get(limit.name, 1) == 0

    # -- helpers -------------------------------------------------------------------------------------

    def _view(self, base_url: str, at: float | None = None) -> View:
        return View(self.engine.now() if at is None else at, base_url, self.files, self.options)

    def _task_of(self, exchange: Exchange) -> Task:
        """The caller's task named in the path, or the 404 the caller gets instead."""
        task = self.engine.tasks.get(exchange.params["task_id"])
        if task is None or task.provider != self.slug or task.owner != exchange.owner:
            raise self._task_not_found(exchange)
        exchange.task_id = task.id
        return task

    # -- submission ----------------------------------------------------------------------------------

    def _prefer_wait(self, exchange: Exchange) -> WaitPreference:
        wait = prefer_wait(exchange.headers.getlist("prefer"), int(self.options["prefer_wait_cap_seconds"]))
        if wait.note:
            exchange.note = wait.note
        return wait

    async def _replay(self, exchange: Exchange) -> Answer | None:
        wait = self._prefer_wait(exchange)
        task = self._replayed(exchange)
        return None if task is None else await self._submitted(exchange, task, wait)

    async def submit(self, exchange: Exchange) -> Answer:
        wait = self._prefer_wait(exchange)
        return await self._submitted(exchange, self._accepted(exchange), wait)

    async def _submitted(self, exchange: Exchange, task: Task, wait: WaitPreference) -> Answer:
        await self.engine.wait(task, wait.seconds)
        if self.options["submit_response"] == "code_data":
            return Answer.json(legacy_submit_object(task))
        return Answer.json(submit_object(self._view(exchange.base_url), task, waited=wait.asked))

    async def _replay_sync(self, exchange: Exchange) -> Answer | None:
        task = self._replayed(exchange)
        return None if task is None else await self._synced(exchange, task)

    async def submit_sync(self, exchange: Exchange) -> Answer:
        return await self._synced(exchange, self._accepted(exchange))

    async def _synced(self, exchange: Exchange, task: Task) -> Answer:
        await self.engine.wait(task, float(self.options["sync_timeout_seconds"]))
        return Answer.json(sync_object(self._view(exchange.base_url), task, exchange.prefix))

    def _replayed(self, exchange: Exchange) -> Task | None:
        """An earlier task of the caller's with this Idempotency-Key, whatever the body says now."""
        key = exchange.headers.get("idempotency-key", "").strip()
        existing = self.engine.tasks.by_key(self.slug, exchange.caller, key, self.engine.now()) if key else None
        if existing is not None:
            exchange.task_id = existing.id
            exchange.note = f"Idempotency-Key {key!r} matched {existing.id}; no new task, no charge"
        return existing

    def _accepted(self, exchange: Exchange) -> Task:
        """A new task for a submission that passed validation and was paid for (else the refusal)."""
        owner, raw = exchange.caller, exchange.body
        references, problems = self._semantic_checks(raw)
        if problems:
            raise ProviderError.invalid(problems)
        body = self.with_defaults(exchange, _renamed(raw))
        price = task_quota(self.builder.card(body["model"]), body, str(self.options["pricing"]),
                           int(self.data["quotaPerUsd"]))
        if price is None:
            raise ProviderError("price_not_configured", f"no price is configured for {body['model']} at "
                                f"{body['resolution']}", status=500, code="price_not_configured")
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, price):
            balance = int(wallets.balance(self.slug, owner))
            exchange.note = f"insufficient balance: needs {price} quota, holds {balance}"
            raise ProviderError("insufficient_credits", f"Insufficient balance: this task needs {price} quota and "
                                f"the account holds {balance}. Top up your account.",
                                status=int(self.options["insufficient_balance_status"]))
        task = self.builder.build(owner, body, price, exchange.base_url, references)
        self.engine.add_task(task)
        key = exchange.headers.get("idempotency-key", "").strip()
        if key:
            expires = self.engine.now() + float(self.options["idempotency_ttl_seconds"])
            self.engine.tasks.remember_key(self.slug, owner, key, task.id, expires)
        exchange.task_id = task.id
        return task

    def _semantic_checks(self, body: dict[str, Any]) -> tuple[list[ImageReference], list[Violation]]:
        """What the schema cannot say: the prompt limit of the day, readable images, legacy names."""
        problems: list[Violation] = []
        for old, new in LEGACY_NAMES.items():
            if old not in body:
                continue
            if not self.options["legacy_field_names"]:
                problems.append(Violation((old,), "additionalProperties", f"'{old}' is not a valid property",
                                          body[old], new))
            elif new in body and body[new] != body[old]:
                problems.append(Violation((old,), "conflict", f"'{old}' is the old name of '{new}'; send one of "
                                          f"them, not two different values", body[old], body[new]))
        problems.extend(self.callback_violations(("callback_url",), body.get("callback_url")))
        limit = int(self.options["prompt_max_chars"])
        if limit and len(body["prompt"]) > limit:
            problems.append(Violation(("prompt",), "maxLength", "too long", body["prompt"], limit, limit))
        references: list[ImageReference] = []
        for field in IMAGE_FIELDS:
            values = body.get(field)
            items = values if isinstance(values, list) else [] if values is None else [values]
            for index, value in enumerate(items):
                path = (field, index) if isinstance(values, list) else (field,)
                try:
                    reference = decode_image_reference(value, max_bytes=MAX_IMAGE_BYTES,
                                                       allowed_formats=IMAGE_FORMATS)
                except InvalidImageReference as exc:
                    problems.append(Violation(path, "image", exc.message, value, "an http(s) URL or a data URL"))
                    continue
                if reference.kind == "base64":
                    problems.append(Violation(path, "image", "expected an image URL (http(s) or data URL), "
                                              "not bare Base64", value, "an http(s) URL or a data URL"))
                    continue
                if field == "image_urls":
                    references.append(reference)
        return references, problems

    # -- reading and cancelling ----------------------------------------------------------------------

    async def get_task(self, exchange: Exchange) -> Answer:
        task = self._task_of(exchange)
        if not task.phase(self.engine.now()).terminal:
            return Answer.json(task_object(self._view(exchange.base_url), task))
        return self.settled_answer(exchange, task, lambda _: Answer.json(
            task_object(self._view(exchange.base_url), task)))

    async def cancel(self, exchange: Exchange) -> Answer:
        task = self._task_of(exchange)
        phase = wire_phase(task, self.engine.now())
        if phase not in (Phase.ACCEPTED, Phase.QUEUED):
            raise ProviderError("task_not_cancellable", f"task {task.id} is {STATUS[phase]}; only queued tasks "
                                "can be cancelled", status=400, code="task_not_cancellable")
        self.engine.cancel(task)  # the refund happens in on_event, like a failure's
        return Answer.json(cancel_object(task))

    # -- settlement and callbacks --------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        if not phase.terminal:
            return
        shown = wire_phase(task, at)
        # "failed / cancelled: pre-deducted quota is automatically refunded in full" (TS); a partly
        # blocked batch gets back the price of the images it did not deliver.
        refund = int(task.cost) - settled_cost(task, shown) - int(task.extra["refunded"])
        if refund > 0:
            self.engine.wallets.credit(self.slug, task.owner, refund, task_id=task.id)
            task.extra["refunded"] = int(task.extra["refunded"]) + refund
            task.touch()
        url = task.extra.get("callback_url")
        event = STATUS[shown]
        if not url or event not in task.extra["callback_events"]:
            return
        payload = task_object(self._view(task.extra["base_url"], at), task)
        self.engine.webhooks.enqueue(Delivery(
            stream=f"qingbo:{task.id}", url=url, payload=payload, provider=self.slug, event=event,
            task_id=task.id, policy=self.retry_policy(),
        ))


def _renamed(body: dict[str, Any]) -> dict[str, Any]:
    """Legacy names folded into the current ones (a conflict was already refused)."""
    out = dict(body)
    for old, new in LEGACY_NAMES.items():
        if old in out:
            out.setdefault(new, out[old])
            del out[old]
    return out


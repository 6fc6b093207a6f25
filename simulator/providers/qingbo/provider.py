"""qingbo.dev task API (`/v1/tasks`) for the Gemini Image Series: routes, auth, errors, callbacks."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from simulator.engine import Delivery, Phase, RetryPolicy, Task
from simulator.http.context import BodyError, context, public_base, read_json
from simulator.images import ImageReference, InvalidImageReference, decode_image_reference
from simulator.providers.base import Provider
from simulator.providers.qingbo.preferences import prefer_wait
from simulator.providers.qingbo.pricing import task_quota
from simulator.providers.qingbo.render import (
    STATUS,
    View,
    cancel_object,
    legacy_submit_object,
    submit_object,
    sync_object,
    task_object,
)
from simulator.providers.qingbo.tasks import TaskBuilder
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation, render_message

if TYPE_CHECKING:
    from simulator.sim import Simulator

TASKS = "/v1/tasks"
# Seed 001 Resource Limits: each reference image at most 30 MB, JPG / PNG / WEBP.
MAX_IMAGE_BYTES = 30 * 1024 * 1024
IMAGE_FORMATS = frozenset({"jpeg", "png", "webp"})
IMAGE_FIELDS = ("image_urls", "mask_url")
# April 2026 field names (GEM-OLD / KX) and the names that replaced them.
LEGACY_NAMES = {"size": "aspect_ratio", "google_search_enhancement": "google_search"}


class QingboProvider(Provider):
    slug: ClassVar[str] = "qingbo"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.files = SignedFiles(self, "/output")  # the CDN path of the documented result URLs

    def routes(self) -> list[BaseRoute]:
        r = self.route
        return [
            r(TASKS, self.submit, ["POST"], "SubmitTask"),
            r(TASKS + "/sync", self.submit_sync, ["POST"], "SubmitTaskSync"),
            r(TASKS + "/{task_id}", self.get_task, ["GET"], "GetTask"),
            r(TASKS + "/{task_id}/cancel", self.cancel, ["POST"], "CancelTask"),
            self.files.route(),
        ]

    @property
    def builder(self) -> TaskBuilder:
        return TaskBuilder(self.engine, self.data, self.options)

    # -- error envelopes ---------------------------------------------------------------------------

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        """Task endpoints answer `{"error": {"message", "code"}}` with no `type` (RR)."""
        code = code or self.data["errorCodes"].get(str(status), "server_error")
        return JSONResponse({"error": {"message": message, "code": code}}, status_code=status)

    def validation_error(self, violations: list[Violation]) -> Response:
        templates = self.data["messages"]
        messages = [
            render_message(templates, v if v.path else dataclasses.replace(v, path=("body",))) for v in violations
        ]
        return self.error(400, "; ".join(messages))

    def _unauthorized(self) -> Response:
        return self.error(401, "Invalid or missing API key: send Authorization: Bearer <API key>.")

    def _task_not_found(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        return self.error(404, f"task {task_id} does not exist or does not belong to this API key",
                          code="task_not_found")

    # -- helpers -------------------------------------------------------------------------------------

    def _view(self, base_url: str, at: float | None = None) -> View:
        return View(self.engine.now() if at is None else at, base_url, self.files, self.options)

    def _owned(self, request: Request, owner: str) -> Task | None:
        task = self.engine.tasks.get(request.path_params["task_id"])
        if task is None or task.provider != self.slug or task.owner != owner:
            return None
        context(request)["task_id"] = task.id
        return task

    # -- submission ----------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        wait = prefer_wait(request.headers.getlist("prefer"), int(self.options["prefer_wait_cap_seconds"]))
        if wait.note:
            context(request)["note"] = wait.note
        task = await self._accepted(request, owner)
        if isinstance(task, Response):
            return task
        await self.engine.wait(task, wait.seconds)
        if self.options["submit_response"] == "code_data":
            return JSONResponse(legacy_submit_object(task))
        return JSONResponse(submit_object(self._view(public_base(request)), task, waited=wait.asked))

    async def submit_sync(self, request: Request) -> Response:
        if not self.options["legacy_sync_endpoint"]:
            # Removed in contract v3.1: the path is then as unknown as any other.
            return self.error(404, f"No route for {request.method} {request.url.path}.")
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = await self._accepted(request, owner)
        if isinstance(task, Response):
            return task
        await self.engine.wait(task, float(self.options["sync_timeout_seconds"]))
        prefix = context(request).get("prefix", "")
        return JSONResponse(sync_object(self._view(public_base(request)), task, prefix))

    async def _accepted(self, request: Request, owner: str) -> Task | Response:
        """The task this submission stands for: an earlier one with the same Idempotency-Key, or a new
        one that passed validation and was paid for. Otherwise the error response."""
        key = request.headers.get("idempotency-key", "").strip()
        now = self.engine.now()
        if key:
            existing = self.engine.tasks.by_key(self.slug, owner, key, now)
            if existing is not None:
                context(request)["task_id"] = existing.id
                context(request)["note"] = f"Idempotency-Key {key!r} matched {existing.id}; no new task, no charge"
                return existing
        try:
            raw = await read_json(request)
        except BodyError as exc:
            return self.reject(request, [Violation((), "json", str(exc))])
        schema = f"request/task-{self.options['contract']}"
        report = self.schemas.validate(schema, raw)
        if not report.ok:
            return self.reject(request, report.violations)
        references, problems = self._semantic_checks(raw)
        if problems:
            return self.reject(request, problems)
        body = self.schemas.with_defaults(schema, _renamed(raw))
        price = task_quota(self.builder.card(body["model"]), body, str(self.options["pricing"]),
                           int(self.data["quotaPerUsd"]))
        if price is None:
            return self.error(500, f"no price is configured for {body['model']} at {body['resolution']}",
                              code="price_not_configured")
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, price):
            balance = int(wallets.balance(self.slug, owner))
            status = int(self.options["insufficient_balance_status"])
            context(request)["note"] = f"insufficient balance: needs {price} quota, holds {balance}"
            return self.error(status, f"Insufficient balance: this task needs {price} quota and the account "
                                      f"holds {balance}. Top up your account.")
        task = self.builder.build(owner, body, price, public_base(request), references)
        self.engine.add_task(task)
        if key:
            expires = now + float(self.options["idempotency_ttl_seconds"])
            self.engine.tasks.remember_key(self.slug, owner, key, task.id, expires)
        context(request)["task_id"] = task.id
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

    async def get_task(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = self._owned(request, owner)
        if task is None:
            return self._task_not_found(request)
        return JSONResponse(task_object(self._view(public_base(request)), task))

    async def cancel(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = self._owned(request, owner)
        if task is None:
            return self._task_not_found(request)
        phase = task.phase(self.engine.now())
        if phase not in (Phase.ACCEPTED, Phase.QUEUED):
            return self.error(400, f"task {task.id} is {STATUS[phase]}; only queued tasks can be cancelled",
                              code="task_not_cancellable")
        self.engine.cancel(task)  # the refund happens in on_event, like a failure's
        return JSONResponse(cancel_object(task))

    # -- settlement and callbacks --------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        if not phase.terminal:
            return
        if phase in (Phase.FAILED, Phase.CANCELED) and task.cost and not task.extra["refunded"]:
            # "failed / cancelled: pre-deducted quota is automatically refunded in full" (TS)
            self.engine.wallets.credit(self.slug, task.owner, task.cost)
            task.extra["refunded"] = int(task.cost)
        url = task.extra.get("callback_url")
        event = STATUS[phase]
        if not url or event not in task.extra["callback_events"]:
            return
        policy = RetryPolicy(
            tuple(float(d) for d in self.options["callback_retry_delays"]),
            float(self.options["callback_timeout_seconds"]),
        )
        payload = task_object(self._view(task.extra["base_url"], at), task)
        self.engine.webhooks.enqueue(Delivery(
            stream=f"qingbo:{task.id}", url=url, payload=payload, provider=self.slug, event=event,
            task_id=task.id, policy=policy,
        ))


def _renamed(body: dict[str, Any]) -> dict[str, Any]:
    """Legacy names folded into the current ones (a conflict was already refused)."""
    out = dict(body)
    for old, new in LEGACY_NAMES.items():
        if old in out:
            out.setdefault(new, out[old])
            del out[old]
    return out


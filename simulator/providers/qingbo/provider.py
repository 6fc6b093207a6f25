"""qingbo.dev task API (`/v1/tasks`) for the Gemini Image Series: routes, auth, errors, callbacks."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from simulator.engine import Delivery, Phase, RetryPolicy, Task
from simulator.faults.errors import error_spec
from simulator.faults.limits import Limit
from simulator.faults.plan import RequestFacts
from simulator.http.context import BodyError, context, public_base, read_json
from simulator.images import ImageReference, InvalidImageReference, decode_image_reference
from simulator.providers.base import Provider
from simulator.providers.qingbo.faults import QUOTA_WINDOW_CODE, QuotaWindow
from simulator.providers.qingbo.preferences import prefer_wait
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
        fallback = "server_error" if status >= 500 else "invalid_request"
        code = code or self.data["errorCodes"].get(str(status), fallback)
        return JSONResponse({"error": {"message": message, "code": code}}, status_code=status)

    def validation_error(self, violations: list[Violation]) -> Response:
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

    def _unauthorized(self) -> Response:
        return self.error(401, self._message("unauthorized"))

    def _task_not_found(self, request: Request) -> Response:
        return self.error(404, self._message("not_found", request.path_params["task_id"]), code="task_not_found")

    # -- forced errors (failure rehearsal) -----------------------------------------------------------

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """The shared rendering, plus what qingbo's documented bodies need beyond it: the 429
        `quota_window_exceeded` members, the 402/403 choice of option `insufficient_balance_status`,
        a plain 429 for concurrency limits, and the task's ID in task-route messages."""
        do = self._qingbo_fault(request, do)
        response = super().fault_response(request, do)
        body = json.loads(bytes(response.body))
        if body["error"]["code"] != QUOTA_WINDOW_CODE:
            return response
        limit = self._fired_limit(request)
        if limit is not None and "reset_at" in do:
            window = QuotaWindow.of_limit(limit, float(do["reset_at"]))
        else:
            defaults = self.data["faults"]["rate_limited"]["quotaWindow"]
            window = QuotaWindow.of_rule(do, defaults, self.engine.now())
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse({**body, **window.members()}, status_code=response.status_code, headers=headers)

    def _qingbo_fault(self, request: Request, do: dict[str, Any]) -> dict[str, Any]:
        kind = str(do.get("error"))
        if kind == "rate_limited":
            limit = self._fired_limit(request)
            if limit is not None and not self._window_full(request, limit):
                # Refused for tasks in flight, not for a full request window: RR's plain "rate limit" 429.
                return {**do, "error": "too_many_requests"}
        if kind == "insufficient_credits" and "status" not in do:
            status = int(self.options["insufficient_balance_status"])
            return {**do, "status": status, "code": do.get("code") or self.data["errorCodes"][str(status)]}
        if "message" not in do and kind in self.data["faults"]:
            return {**do, "message": self._message(kind, request.path_params.get("task_id"))}
        return do

    def _fired_limit(self, request: Request) -> Limit | None:
        """The rate limit that refused this request (the base wrapper notes it by name), if one did."""
        names = [note["limit"] for note in context(request).get("faults", []) if "limit" in note]
        return next((limit for limit in self.engine.limits.limits if names and limit.name == names[-1]), None)

    def _window_full(self, request: Request, limit: Limit) -> bool:
        if limit.requests is None:
            return False
        facts = RequestFacts(provider=self.slug, operation=context(request).get("operation"),
                             api_key=self.api_key_of(request, None))
        return self.engine.limits.remaining(facts, self.engine.now()).get(limit.name, 1) == 0

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

    def _task_of(self, request: Request) -> Task | Response:
        """The caller's task named in the path, or the 401 / 404 the caller gets instead."""
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized()
        task = self._owned(request, owner)
        return self._task_not_found(request) if task is None else task

    async def get_task(self, request: Request) -> Response:
        task = self._task_of(request)
        if isinstance(task, Response):
            return task
        return JSONResponse(task_object(self._view(public_base(request)), task))

    async def cancel(self, request: Request) -> Response:
        task = self._task_of(request)
        if isinstance(task, Response):
            return task
        phase = wire_phase(task, self.engine.now())
        if phase not in (Phase.ACCEPTED, Phase.QUEUED):
            return self.error(400, f"task {task.id} is {STATUS[phase]}; only queued tasks can be cancelled",
                              code="task_not_cancellable")
        self.engine.cancel(task)  # the refund happens in on_event, like a failure's
        return JSONResponse(cancel_object(task))

    # -- settlement and callbacks --------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        if not phase.terminal:
            return
        shown = wire_phase(task, at)
        # "failed / cancelled: pre-deducted quota is automatically refunded in full" (TS); a partly
        # blocked batch gets back the price of the images it did not deliver.
        refund = int(task.cost) - settled_cost(task, shown) - int(task.extra["refunded"])
        if refund > 0:
            self.engine.wallets.credit(self.slug, task.owner, refund)
            task.extra["refunded"] = int(task.extra["refunded"]) + refund
        url = task.extra.get("callback_url")
        event = STATUS[shown]
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


"""CRun unified task API (`/api/v1/client/...`), Nano Banana models: routes, auth, envelopes, callbacks."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute

from simulator.engine import Delivery, Phase, RetryPolicy, Task
from simulator.faults.errors import error_spec
from simulator.http.context import BodyError, bearer_token, context, public_base, read_json
from simulator.providers.base import Provider
from simulator.providers.crun.errors import ErrorWriter
from simulator.providers.crun.render import STATUS, View, number
from simulator.providers.crun.tasks import Ledger, TaskFactory, outcome
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation, dotted_path

if TYPE_CHECKING:
    from simulator.sim import Simulator

JOB = "/api/v1/client/job"
ACCOUNT = "/api/v1/client/account"
# Result media: plain CDN-style links (CRun serves results from its own file host, unauthenticated).
MEDIA = "/resources"

Parsed = tuple[dict[str, Any], dict[str, Any]]


class CrunProvider(Provider):
    slug: ClassVar[str] = "crun"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.files = SignedFiles(self, MEDIA)
        self.messages: dict[str, str] = self.data["messages"]
        self.errors = ErrorWriter(self.data)

    def routes(self) -> list[BaseRoute]:
        r = self.route
        return [
            r(f"{JOB}/CreateTask", self.create_task, ["POST"], "CreateTask"),
            r(f"{JOB}/TaskInfo", self.task_info, ["GET"], "TaskInfo"),
            r(f"{JOB}/estimate-credits", self.estimate_credits, ["POST"], "EstimateCredits"),
            r(f"{JOB}/EstimateTask", self.estimate_task, ["POST"], "EstimateTask"),
            r(f"{ACCOUNT}/balance", self.balance, ["GET"], "GetBalance"),
            self.files.route(),
        ]

    @property
    def factory(self) -> TaskFactory:
        return TaskFactory(self.engine, self.data, self.options)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.engine, self.options)

    def _view(self, base_url: str) -> View:
        ttl = float(self.options["media_url_ttl_seconds"])
        return View(self.engine, self.files, base_url, ttl, self.messages, self.data["taskFailures"])

    # -- envelopes -----------------------------------------------------------------------------------

    def _status(self, code: int) -> int:
        return code if self.options["error_http_status"] == "mirror" else 200

    def status_that_counts(self, status: int, body: Any) -> int:
        # With error_http_status=always_200 the body's code is the real status; it always equals it otherwise.
        code = body.get("code") if isinstance(body, dict) else None
        return code if isinstance(code, int) and not isinstance(code, bool) else status

    def _ok(self, data: dict[str, Any]) -> Response:
        return JSONResponse({"code": 200, "message": self.messages["success"], "data": data})

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        if status == 422:  # CRun's validation body: the message goes into errors[], and there is no data
            return self._unprocessable([message])
        return JSONResponse({"code": status, "message": message, "data": None}, status_code=self._status(status))

    def validation_error(self, violations: list[Violation], model: str | None = None) -> Response:
        return self._unprocessable([self.errors.describe(v, model) for v in violations])

    def _unprocessable(self, errors: list[str]) -> Response:
        body = {"code": 422, "message": self.messages["validation"], "errors": errors}
        return JSONResponse(body, status_code=self._status(422))

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """Forced errors in CRun's envelope, except `edge` kinds (502/504): CRun's code table has no such codes,
        while its CLI retries HTTP 502/503/504, so they come from a proxy in front of it, as an HTML page."""
        spec = error_spec(self.data.get("faults", {}), do)
        if not spec.get("edge"):
            return super().fault_response(request, do)
        page = str(self.data["edgePage"]).format(title=spec["message"])
        headers = {"Retry-After": str(do["retry_after"])} if do.get("retry_after") is not None else None
        return HTMLResponse(page, status_code=int(spec["status"]), headers=headers)

    def _invalid(self, request: Request, violations: list[Violation], model: str | None) -> Response:
        """`Provider.reject`, plus the model name CRun puts in front of every `input` field error."""
        context(request)["violations"] = [v.as_dict() for v in violations]
        return self.validation_error(violations, model)

    # -- auth ----------------------------------------------------------------------------------------

    def _key(self, request: Request) -> str:
        key = request.headers.get(self.data["apiKeyHeader"], "").strip()
        if not key and self.options["accept_bearer"]:
            key = bearer_token(request) or ""
        return key

    def api_key_of(self, request: Request, body: Any) -> str | None:
        """The key rules and rate limits count by: the one `_caller` will authenticate (Bearer if accepted)."""
        return self._key(request) or None

    def _caller(self, request: Request) -> str | Response:
        key = self._key(request)
        if not key:
            return self.error(401, self.messages["missingKey"])
        if key in self.options["disabled_api_keys"]:
            return self.error(403, self.messages["disabledKey"])
        owner = self.authenticate(request, key)
        return owner if owner is not None else self.error(401, self.messages["invalidKey"])

    # -- request bodies ------------------------------------------------------------------------------

    async def _task_body(self, request: Request, schema: str) -> Parsed | Response:
        """(body as sent, body with defaults) of a valid CreateTask-shaped body, or the 422."""
        try:
            body = await read_json(request)
        except BodyError as exc:
            return self._invalid(request, [Violation((), "json", str(exc))], None)
        model = body.get("model") if isinstance(body, dict) else None
        known = model if isinstance(model, str) and model in self.data["models"] else None
        violations = self.schemas.validate(schema, body).violations
        ignorable = [v for v in violations if v.rule == "additionalProperties"]
        if self.options["unknown_fields"] == "ignore":
            violations = [v for v in violations if v.rule != "additionalProperties"]
        if violations:
            return self._invalid(request, violations, known)
        cleaned = _without(body, [v.path for v in ignorable])
        if ignorable:
            context(request)["note"] = "ignored unknown fields: " + ", ".join(dotted_path(v.path) for v in ignorable)
            context(request)["ignored"] = [v.as_dict() for v in ignorable]
        return body, self.schemas.with_defaults(schema, cleaned)

    # -- routes --------------------------------------------------------------------------------------

    async def create_task(self, request: Request) -> Response:
        owner = self._caller(request)
        if isinstance(owner, Response):
            return owner
        parsed = await self._task_body(request, "request/create-task")
        if isinstance(parsed, Response):
            return parsed
        body, filled = parsed
        price = self.factory.quote(filled)
        if not self.ledger.reserve(owner, price):
            balance = self.engine.wallets.balance(self.slug, owner)
            context(request)["note"] = f"insufficient credits: cost {price}, balance {balance}"
            return self.error(402, self.messages["insufficientCredits"])
        task = self.engine.add_task(self.factory.build(owner, body, filled, public_base(request)))
        context(request)["task_id"] = task.id
        return self._ok({"task_id": task.id})

    async def task_info(self, request: Request) -> Response:
        owner = self._caller(request)
        if isinstance(owner, Response):
            return owner
        task_id = request.query_params.get("task_id", "")
        if not task_id:
            return self._invalid(request, [Violation(("task_id",), "required", "'task_id' is required")], None)
        task = self.engine.tasks.get(task_id)
        if task is None or task.provider != self.slug or task.owner != owner:
            return self.error(404, self.messages["taskNotFound"])
        context(request)["task_id"] = task.id
        self.ledger.settle(task)
        return self._ok(self._view(public_base(request)).task(task))

    async def balance(self, request: Request) -> Response:
        owner = self._caller(request)
        if isinstance(owner, Response):
            return owner
        return self._ok({"balance": number(self.engine.wallets.balance(self.slug, owner))})

    async def _estimate(self, request: Request) -> tuple[str, float] | Response:
        owner = self._caller(request)
        if isinstance(owner, Response):
            return owner
        parsed = await self._task_body(request, "request/estimate-credits")
        if isinstance(parsed, Response):
            return parsed
        return owner, self.factory.quote(parsed[1])

    async def estimate_credits(self, request: Request) -> Response:
        estimate = await self._estimate(request)
        if isinstance(estimate, Response):
            return estimate
        # Prices are fixed per model and tier, so the estimate is the actual charge (`estimated: false`).
        return self._ok({"credits": number(estimate[1]), "estimated": False})

    async def estimate_task(self, request: Request) -> Response:
        estimate = await self._estimate(request)
        if isinstance(estimate, Response):
            return estimate
        owner, price = estimate
        balance = self.engine.wallets.balance(self.slug, owner)
        return self._ok({
            "estimated_credits": number(price), "balance": number(balance), "affordable": balance >= price,
        })

    # -- callbacks -----------------------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        """'System will POST task status and results to this URL when generation completes.'"""
        if not phase.terminal:
            return
        phase = outcome(task, phase)
        self.ledger.settle(task)
        url = task.extra["param"].get("callback_url")
        if not url:
            return
        payload: dict[str, Any] = self._view(task.extra["base_url"]).task(task, at)
        if self.options["callback_body"] == "envelope":
            payload = {"code": 200, "message": self.messages["success"], "data": payload}
        policy = RetryPolicy(
            tuple(float(d) for d in self.options["callback_retry_delays"]),
            float(self.options["callback_timeout_seconds"]),
        )
        self.engine.webhooks.enqueue(Delivery(
            stream=f"{self.slug}:{task.id}", url=url, payload=payload, provider=self.slug,
            event=f"task:{STATUS[phase]}", task_id=task.id, policy=policy,
        ))


def _without(body: Any, paths: list[tuple[Any, ...]]) -> Any:
    """A copy of `body` with the fields at `paths` removed (unknown fields under unknown_fields=ignore)."""
    if not paths:
        return body
    cleaned = copy.deepcopy(body)
    for path in paths:
        parent = cleaned
        for part in path[:-1]:
            parent = parent[part]
        parent.pop(path[-1], None)
    return cleaned

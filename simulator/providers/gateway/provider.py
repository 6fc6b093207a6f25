"""The task-unified gateway family (FoxAPI/AIHubMax, Evolink): routes, auth, validation, credits, callbacks.

A provider of the family is this class plus its `provider.json` and schemas: the routes, field names,
wire templates, error table and named options are all read from there (see card.py).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from simulator.engine import Phase, Task
from simulator.faults.errors import DEFAULT_ERRORS, error_spec, fault_headers
from simulator.http.context import BodyError, bearer_token, context, public_base, read_json
from simulator.providers.base import Provider
from simulator.providers.gateway.callbacks import Callbacks
from simulator.providers.gateway.card import GatewayCard
from simulator.providers.gateway.errors import ErrorBook
from simulator.providers.gateway.planner import CreateRequest, TaskPlanner, read_request
from simulator.providers.gateway.render import TaskRenderer
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation, dotted_path

if TYPE_CHECKING:
    from simulator.sim import Simulator


class GatewayProvider(Provider):
    """Subclasses only set `slug`."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.card = GatewayCard.load(self.slug, self.data)
        self.files = SignedFiles(self, self.card.files_path)
        self.errors = ErrorBook(self.card, self.options)
        self.planner = TaskPlanner(self)
        self.renderer = TaskRenderer(self)
        self.callbacks = Callbacks(self)

    def routes(self) -> list[BaseRoute]:
        routes = self.card.routes
        return [
            self.route(routes["create"].path, self.create, ["POST"], routes["create"].operation),
            self.route(routes["task"].path, self.get_task, ["GET"], routes["task"].operation),
            self.route(routes["credits"].path, self.credits, ["GET"], routes["credits"].operation),
            self.files.route(),
        ]

    # -- envelopes -----------------------------------------------------------------------------------

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        return self.errors.response(self.errors.condition_for(status), status=status, code=code, detail=message)

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """A forced error rendered by the error condition that provider.json `faults` names for its kind.

        Status, code, type and wording come from the error table (per route); a kind the table does not
        list falls back to the generic kinds of simulator/faults/errors.py through `statusErrors`.
        """
        operation = context(request).get("operation")
        kind = str(do.get("error"))
        entry = self.card.fault_entry(kind, operation)
        table: dict[str, Any] = {}
        if entry is not None:
            condition = self.errors.entry(entry["condition"], operation)
            generic = DEFAULT_ERRORS.get(kind, {}).get("message", "")
            table[kind] = {
                "status": condition["status"],
                "code": entry.get("code", condition.get("code")),
                "message": entry.get("message")
                or self.errors.text(entry["condition"], operation, detail=generic, prefix=self.card.task_id.prefix),
                "headers": entry.get("headers", {}),
            }
        spec = error_spec(table, do)  # the rule's own status, message and code win; an unknown kind raises
        status = int(spec["status"])
        name = entry["condition"] if entry is not None else self.errors.condition_for(status)
        response = self.errors.response(
            name, operation=operation, status=status, message=str(spec["message"]), code=spec.get("code")
        )
        response.headers.update(fault_headers(spec, do))
        return response

    def validation_error(self, violations: list[Violation]) -> Response:
        return self.errors.violations(violations)

    def _fail(self, request: Request, condition: str, **details: Any) -> Response:
        return self.errors.response(condition, operation=context(request).get("operation"), **details)

    def _unauthorized(self, request: Request) -> Response:
        """The 401; a request that carries no bearer token at all is told which header to send."""
        return self._fail(request, "unauthorized" if bearer_token(request) else "missing_auth")

    # -- create --------------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized(request)
        content_type = request.headers.get("content-type", "")
        if self.card.require_json_content_type and "json" not in content_type.split(";")[0].lower():
            return self._fail(request, "bad_content_type", content_type=content_type or "(none)")
        try:
            raw = await read_json(request)
        except BodyError as exc:
            return self._fail(request, "invalid_json", detail=str(exc))
        body, violations = self._validate(request, raw)
        if violations:
            return self.reject(request, violations)
        parsed = read_request(self.card, body)
        problems = self._semantic_violations(parsed)
        if problems:
            return self.reject(request, problems)
        if parsed.model.name in self.options["denied_models"]:
            return self._fail(request, "model_access_denied", model=parsed.model.name)
        unsupported = [name for name in parsed.model.unsupported_options if body.get(name)]
        if unsupported:
            return self._fail(request, "unsupported_options", options=", ".join(unsupported))
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, parsed.cost):
            balance = wallets.balance(self.slug, owner)
            context(request)["note"] = f"insufficient credits: cost {parsed.cost}, balance {balance}"
            return self._fail(request, "insufficient_credits", cost=parsed.cost, balance=balance)
        task = self.planner.build(owner, body, parsed, public_base(request))
        self.engine.add_task(task)
        context(request)["task_id"] = task.id
        return JSONResponse(self.renderer.body("create", task, self.engine.now()))

    def _validate(self, request: Request, raw: Any) -> tuple[dict[str, Any], list[Violation]]:
        """Schema violations; undocumented fields are dropped instead when the provider ignores them."""
        name = self.card.request_schema
        violations = self.schemas.validate(name, raw).violations
        if self.options["unknown_fields"] == "ignore":
            ignored = [v for v in violations if v.rule == "additionalProperties"]
            violations = [v for v in violations if v.rule != "additionalProperties"]
            if ignored and not violations:
                raw = copy.deepcopy(raw)
                for violation in ignored:
                    _drop(raw, violation.path)
                paths = ", ".join(dotted_path(v.path) for v in ignored)
                context(request)["note"] = f"ignored undocumented fields: {paths}"
                context(request)["ignored"] = [v.as_dict() for v in ignored]
        if violations:
            return {}, violations
        return self.schemas.with_defaults(name, raw), []

    def _semantic_violations(self, parsed: CreateRequest) -> list[Violation]:
        """What the schema cannot say: unusable input images (when refused at submit) and callback targets."""
        out: list[Violation] = []
        fields = self.card.fields
        if self.options["invalid_image_handling"] == "reject":
            for index, problem in parsed.image_problems:
                out.append(Violation((fields.images, index), "image", problem.message, None,
                                     "a reachable http(s) URL or a data URL of a JPEG, PNG or WebP image"))
        if parsed.callback_url is not None:
            reason = self.callbacks.problem(parsed.callback_url)
            if reason is not None:
                out.append(Violation((fields.callback,), "callbackUrl", reason, parsed.callback_url, "https://…"))
        return out

    # -- reads ---------------------------------------------------------------------------------------

    async def get_task(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized(request)
        task_id = request.path_params["task_id"]
        prefix = self.card.task_id.prefix
        if self.errors.has("invalid_task_id") and not task_id.startswith(prefix):
            return self._fail(request, "invalid_task_id", prefix=prefix)
        task = self.engine.tasks.get(task_id)
        if task is None or task.provider != self.slug:
            return self._fail(request, "task_not_found")
        context(request)["task_id"] = task.id
        if task.owner != owner:
            # Providers that document no 403 for a foreign task answer as if it did not exist.
            return self._fail(request, "task_forbidden" if self.errors.has("task_forbidden") else "task_not_found")
        return JSONResponse(self.renderer.body("detail", task, self.engine.now()))

    async def credits(self, request: Request) -> Response:
        owner = self.authenticate(request)
        if owner is None:
            return self._unauthorized(request)
        used = sum(
            t.cost for t in self.engine.tasks.all(self.slug) if t.owner == owner and not t.extra["refunded"]
        )
        remaining = self.engine.wallets.balance(self.slug, owner)
        body = self.card.bodies["credits"].fill({"remaining": round(remaining, 4), "used": round(used, 4)})
        return JSONResponse(body)

    # -- lifecycle -----------------------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        failed = self.renderer.failure(task, phase) is not None
        if failed and self.options["refund_failed_tasks"] and not task.extra["refunded"]:
            self.engine.wallets.credit(self.slug, task.owner, task.cost)
            task.extra["refunded"] = True
        self.callbacks.on_event(task, phase, at)


def _drop(body: Any, path: tuple[Any, ...]) -> None:
    """Remove the value at `path` (its parents exist: the validator found the field there)."""
    *parents, last = path
    for part in parents:
        body = body[part]
    del body[last]

"""The task-unified gateway family (FoxAPI/AIHubMax, Evolink): routes, auth, validation, credits, callbacks.

A provider of the family is this class plus its `provider.json` and schemas: the routes, field names,
wire templates, error table and named options are all read from there (see card.py).
"""

from __future__ import annotations

from typing import Any

from simulator.engine import Engine, Phase, Task
from simulator.faults.errors import DEFAULT_ERRORS, error_spec, fault_headers
from simulator.pipeline import Answer, BadParameter, BodyError, Endpoint, Exchange, ProviderError
from simulator.providers.base import Provider
from simulator.providers.gateway.callbacks import Callbacks
from simulator.providers.gateway.card import GatewayCard
from simulator.providers.gateway.errors import ErrorBook
from simulator.providers.gateway.planner import CreateRequest, TaskPlanner, read_request
from simulator.providers.gateway.render import TaskRenderer
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation


class GatewayProvider(Provider):
    """Subclasses only set `slug`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.card = GatewayCard.load(self.slug, self.data)
        self.files = SignedFiles(self, self.card.files_path)
        self.errors = ErrorBook(self.card, self.options)
        self.planner = TaskPlanner(self)
        self.renderer = TaskRenderer(self)
        self.callbacks = Callbacks(self)

    def routes(self) -> list[Endpoint]:
        routes = self.card.routes
        return [
            self.route(routes["create"].path, self.create, ["POST"], routes["create"].operation),
            self.route(routes["task"].path, self.get_task, ["GET"], routes["task"].operation),
            self.route(routes["credits"].path, self.credits, ["GET"], routes["credits"].operation),
            self.files.route(),
        ]

    # -- envelopes -----------------------------------------------------------------------------------

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        return self.errors.response(self.errors.condition_for(status), status=status, code=code, detail=message)

    def validation_error(self, violations: list[Violation]) -> Answer:
        return self.errors.violations(violations)

    @staticmethod
    def _fail(condition: str, **details: Any) -> ProviderError:
        """A refusal by one of the error table's conditions (status, code, type and wording from the table)."""
        return ProviderError(condition, **details)

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        if error.status is None and self.errors.has(error.kind):
            return self.errors.response(error.kind, operation=exchange.operation, **error.details)
        return super().render_error(exchange, error)

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """A forced error rendered by the error condition that provider.json `faults` names for its kind.

        Status, code, type and wording come from the error table (per route); a kind the table does not
        list falls back to the generic kinds of simulator/faults/errors.py through `statusErrors`.
        """
        operation = exchange.operation
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
        answer = self.errors.response(
            name, operation=operation, status=status, message=str(spec["message"]), code=spec.get("code")
        )
        return answer.with_headers(fault_headers(spec, do))

    # -- how requests are refused ----------------------------------------------------------------------

    def unauthorized(self, exchange: Exchange) -> ProviderError:
        """A request that carries no key at all is told which header to send."""
        return self._fail("unauthorized" if exchange.api_key else "missing_auth")

    def refuse_media_type(self, exchange: Exchange) -> ProviderError | None:
        content_type = exchange.headers.get("content-type", "")
        if self.card.require_json_content_type and "json" not in content_type.split(";")[0].lower():
            return self._fail("bad_content_type", content_type=content_type or "(none)")
        return None

    def unreadable_body(self, exchange: Exchange, problem: BodyError) -> ProviderError:
        return self._fail("invalid_json", detail=str(problem))

    def bad_parameter(self, exchange: Exchange, bad: BadParameter) -> ProviderError:
        """A task ID not of the provider's form: refused as such where the table has a condition for it, else
        simply not found (no task has such an ID)."""
        if bad.name != "task_id":
            return super().bad_parameter(exchange, bad)
        if self.errors.has("invalid_task_id"):
            return self._fail("invalid_task_id", prefix=self.card.task_id.prefix)
        return self._fail("task_not_found")

    # -- create --------------------------------------------------------------------------------------

    async def create(self, exchange: Exchange) -> Answer:
        owner = exchange.caller
        body = self.with_defaults(exchange, exchange.body)
        parsed = read_request(self.card, body)
        problems = self._semantic_violations(parsed)
        if problems:
            raise ProviderError.invalid(problems)
        if parsed.model.name in self.options["denied_models"]:
            raise self._fail("model_access_denied", model=parsed.model.name)
        unsupported = [name for name in parsed.model.unsupported_options if body.get(name)]
        if unsupported:
            raise self._fail("unsupported_options", options=", ".join(unsupported))
        wallets = self.engine.wallets
        if not wallets.debit(self.slug, owner, parsed.cost):
            balance = wallets.balance(self.slug, owner)
            exchange.note = f"insufficient credits: cost {parsed.cost}, balance {balance}"
            raise self._fail("insufficient_credits", cost=parsed.cost, balance=balance)
        task = self.planner.build(owner, body, parsed, exchange.base_url)
        self.engine.add_task(task)
        exchange.task_id = task.id
        return Answer.json(self.renderer.body("create", task, self.engine.now()))

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
                out.append(Violation((fields.callback or "callback",), "callbackUrl", reason, parsed.callback_url, "https://…"))
        return out

    # -- reads ---------------------------------------------------------------------------------------

    async def get_task(self, exchange: Exchange) -> Answer:
        task = self.engine.tasks.get(exchange.params["task_id"])
        if task is None or task.provider != self.slug:
            raise self._fail("task_not_found")
        exchange.task_id = task.id
        if task.owner != exchange.owner:
            # Providers that document no 403 for a foreign task answer as if it did not exist.
            raise self._fail("task_forbidden" if self.errors.has("task_forbidden") else "task_not_found")
        now = self.engine.now()
        if self.renderer.moving(task, now):
            return Answer.json(self.renderer.body("detail", task, now))
        return self.settled_answer(exchange, task, lambda _: Answer.json(self.renderer.body("detail", task, now)))

    async def credits(self, exchange: Exchange) -> Answer:
        owner = exchange.caller
        used = sum(
            t.cost for t in self.engine.tasks.all(self.slug) if t.owner == owner and not t.extra["refunded"]
        )
        remaining = self.engine.wallets.balance(self.slug, owner)
        body = self.card.bodies["credits"].fill({"remaining": round(remaining, 4), "used": round(used, 4)})
        return Answer.json(body)

    # -- lifecycle -----------------------------------------------------------------------------------

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        failed = self.renderer.failure(task, phase) is not None
        if failed and self.options["refund_failed_tasks"] and not task.extra["refunded"]:
            self.engine.wallets.credit(self.slug, task.owner, task.cost, task_id=task.id)
            task.extra["refunded"] = True
            task.touch()
        self.callbacks.on_event(task, phase, at)


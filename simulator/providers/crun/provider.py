"""CRun unified task API (`/api/v1/client/...`), Nano Banana models: handlers, auth, envelopes, callbacks."""

from __future__ import annotations

from typing import Any, ClassVar

from simulator.engine import Delivery, Engine, Phase, Task
from simulator.faults.errors import error_spec
from simulator.pipeline import INVALID, Answer, Endpoint, Exchange, ProviderError
from simulator.providers.base import Provider
from simulator.providers.crun.errors import ErrorWriter
from simulator.providers.crun.render import STATUS, View, number
from simulator.providers.crun.tasks import Ledger, TaskFactory, outcome
from simulator.providers.signed_files import SignedFiles
from simulator.validation import Violation

JOB = "/api/v1/client/job"
ACCOUNT = "/api/v1/client/account"
# Result media: plain CDN-style links (CRun serves results from its own file host, unauthenticated).
MEDIA = "/resources"


class CrunProvider(Provider):
    slug: ClassVar[str] = "crun"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.files = SignedFiles(self, MEDIA)
        self.messages: dict[str, str] = self.data["messages"]
        self.errors = ErrorWriter(self.data)

    def routes(self) -> list[Endpoint]:
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

    def _ok(self, data: dict[str, Any]) -> Answer:
        return Answer.json({"code": 200, "message": self.messages["success"], "data": data})

    def error(self, status: int, message: str, *, code: str | None = None) -> Answer:
        if status == 422:  # CRun's validation body: the message goes into errors[], and there is no data
            return self._unprocessable([message])
        return Answer.json({"code": status, "message": message, "data": None}, self._status(status))

    def validation_error(self, violations: list[Violation], model: str | None = None) -> Answer:
        return self._unprocessable([self.errors.describe(v, model) for v in violations])

    def _unprocessable(self, errors: list[str]) -> Answer:
        body = {"code": 422, "message": self.messages["validation"], "errors": errors}
        return Answer.json(body, self._status(422))

    def render_error(self, exchange: Exchange, error: ProviderError) -> Answer:
        """Violations with the model name CRun puts in front of every `input` field error."""
        if error.kind == INVALID:
            sent = exchange.sent
            model = sent.get("model") if isinstance(sent, dict) else None
            known = model if isinstance(model, str) and model in self.data["models"] else None
            return self.validation_error(error.violations, known)
        return super().render_error(exchange, error)

    def render_fault(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """Forced errors in CRun's envelope, except `edge` kinds (502/504): CRun's code table has no such codes,
        while its CLI retries HTTP 502/503/504, so they come from a proxy in front of it, as an HTML page."""
        spec = error_spec(self.data.get("faults", {}), do)
        if not spec.get("edge"):
            return super().render_fault(exchange, do)
        page = str(self.data["edgePage"]).format(title=spec["message"])
        headers = {"Retry-After": str(do["retry_after"])} if do.get("retry_after") is not None else None
        return Answer.content(page, "text/html", int(spec["status"]), headers=headers)

    # -- auth ----------------------------------------------------------------------------------------

    def authenticate(self, exchange: Exchange) -> str:
        if exchange.api_key and exchange.api_key in self.options["disabled_api_keys"]:
            raise ProviderError("forbidden", self.messages["disabledKey"], status=403)
        return super().authenticate(exchange)

    def unauthorized(self, exchange: Exchange) -> ProviderError:
        return ProviderError("unauthorized", self.messages["invalidKey" if exchange.api_key else "missingKey"],
                             status=401)

    # -- routes --------------------------------------------------------------------------------------

    async def create_task(self, exchange: Exchange) -> Answer:
        owner = exchange.caller
        refused = self.callback_violations(("callback_url",), exchange.body.get("callback_url"))
        if refused:
            raise ProviderError.invalid(refused)
        filled = self.with_defaults(exchange, exchange.body)
        price = self.factory.quote(filled)
        if not self.ledger.reserve(owner, price):
            balance = self.engine.wallets.balance(self.slug, owner)
            exchange.note = f"insufficient credits: cost {price}, balance {balance}"
            raise ProviderError("insufficient_credits", self.messages["insufficientCredits"], status=402)
        # `param` echoes the body as sent, unknown fields (where they are ignored) included.
        task = self.engine.add_task(self.factory.build(owner, exchange.sent, filled, exchange.base_url))
        exchange.task_id = task.id
        return self._ok({"task_id": task.id})

    async def task_info(self, exchange: Exchange) -> Answer:
        task = self.engine.tasks.get(exchange.params["task_id"])
        if task is None or task.provider != self.slug or task.owner != exchange.owner:
            raise ProviderError("not_found", self.messages["taskNotFound"], status=404)
        exchange.task_id = task.id
        self.ledger.settle(task)
        if not task.phase(self.engine.now()).terminal:
            return self._ok(self._view(exchange.base_url).task(task))
        return self.settled_answer(exchange, task, lambda _: self._ok(self._view(exchange.base_url).task(task)))

    async def balance(self, exchange: Exchange) -> Answer:
        return self._ok({"balance": number(self.engine.wallets.balance(self.slug, exchange.caller))})

    async def estimate_credits(self, exchange: Exchange) -> Answer:
        price = self.factory.quote(self.with_defaults(exchange, exchange.body))
        # Prices are fixed per model and tier, so the estimate is the actual charge (`estimated: false`).
        return self._ok({"credits": number(price), "estimated": False})

    async def estimate_task(self, exchange: Exchange) -> Answer:
        price = self.factory.quote(self.with_defaults(exchange, exchange.body))
        balance = self.engine.wallets.balance(self.slug, exchange.caller)
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
        self.engine.webhooks.enqueue(Delivery(
            stream=f"{self.slug}:{task.id}", url=url, payload=payload, provider=self.slug,
            event=f"task:{STATUS[phase]}", task_id=task.id, policy=self.retry_policy(),
        ))


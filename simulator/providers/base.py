"""What every provider module is: HTTP translated to engine calls, engine state to the provider's wire format."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simulator import self_check
from simulator.clock import VirtualClock
from simulator.engine import Engine, Phase, Task
from simulator.faults.errors import error_spec, fault_headers
from simulator.faults.plan import RequestFacts, lookup
from simulator.faults.tasks import task_faults
from simulator.http.context import bearer_token, context
from simulator.options import ProviderOptions, provider_data
from simulator.validation import SchemaSet, Violation, schema_set

if TYPE_CHECKING:
    from simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]
Refuser = Callable[[Request, dict[str, Any]], Response]
log = logging.getLogger("nanobanana_sim")


class Provider:
    """Base for provider modules. Subclasses set `slug`, build `routes()` and render errors."""

    slug: ClassVar[str]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.data: dict[str, Any] = provider_data(self.slug)
        self.options = ProviderOptions(self.slug)
        self.schemas: SchemaSet = schema_set(self.slug)
        self.valid_tokens: set[str] | None = None
        self.attach()

    def attach(self) -> None:
        self.engine.listen(self.slug, self.on_event)
        if "defaultBalance" in self.data:
            # Each provider's own unit: a generic default would be a few images in one and millions in another.
            self.engine.wallets.set_default(self.slug, float(self.data["defaultBalance"]))

    @property
    def engine(self) -> Engine:
        return self.sim.engine

    @property
    def hosts(self) -> list[str]:
        return list(self.data.get("hosts", []))

    def reset(self) -> None:
        self.options.reset()
        self.valid_tokens = None
        self.attach()

    # -- to be provided by each provider -----------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        """The provider's own error envelope for a status (401, 404, 500 …)."""
        raise NotImplementedError

    def validation_error(self, violations: list[Violation]) -> Response:
        raise NotImplementedError

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        """A task of this provider reached `phase` at clock time `at` (callbacks hang off this)."""

    # -- shared plumbing -----------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, methods: list[str], operation: str,
              refuse: Refuser | None = None) -> Route:
        """A route whose requests meet rate limits, fault rules and the self-check first.

        `refuse` renders forced errors when the route is not the provider's API (a CDN link answers
        like an object store, not in the API's JSON envelope); by default `fault_response`.
        """
        render = refuse or self.fault_response

        async def endpoint(request: Request) -> Response:
            notes = context(request)
            notes["provider"] = self.slug
            notes["operation"] = operation
            try:
                clock = self.engine.clock
                if isinstance(clock, VirtualClock) and clock.tick > 0:
                    await self.engine.advance(clock.tick)
                refusal, actions = await self._faults(request, operation, render)
                if refusal is not None:
                    return self._self_checked(request, operation, refusal)
                with task_faults(actions):
                    return self._self_checked(request, operation, await handler(request))
            except Exception as exc:  # a bug must still answer in the provider's shape, and be seen
                log.exception("%s %s failed", self.slug, operation)
                notes["note"] = "".join(traceback.format_exception_only(exc)).strip()
                return self.error(500, "The simulator hit an internal error; see the journal note.")

        return Route(path, endpoint, methods=methods, name=f"{self.slug}:{operation}")

    def _self_checked(self, request: Request, operation: str, response: Response) -> Response:
        """The response, checked against the operations table (see simulator.self_check)."""
        mode = self.sim.self_check
        if mode is self_check.Mode.OFF or context(request).get("status_chosen"):
            return response  # a status the user's fault rule chose is outside the contract on purpose
        findings = self_check.check_response(self, operation, response.status_code,
                                             response.headers.get("content-type"), getattr(response, "body", None))
        if not findings:
            return response
        summary = self_check.describe(findings)
        context(request)["self_check"] = findings
        log.error("nanobanana-sim self-check: %s %s answered %s, which its contract does not allow: %s",
                  self.slug, operation, response.status_code, summary)
        if mode is self_check.Mode.STRICT:
            return self.error(500, f"nanobanana-sim self-check failed (a simulator bug): {summary}")
        return response

    def wrong_method_status(self) -> int:
        """What a known path answers to a method it does not serve: 404 unless the provider's option says 405."""
        return int(self.options["wrong_method_status"]) if self.options.has("wrong_method_status") else 404

    def status_that_counts(self, status: int, body: Any) -> int:
        """The status a response means (a provider may answer HTTP 200 with an error code in the body)."""
        return status

    # -- failure rehearsal -----------------------------------------------------------------------------

    def api_key_of(self, request: Request, body: Any) -> str | None:
        """The API key a request carries, for matching rules and limits (before authentication)."""
        header = self.data.get("apiKeyHeader")
        return request.headers.get(header) if header else bearer_token(request)

    def model_of(self, body: Any) -> str | None:
        for path in self.data.get("modelPaths", []):
            found = lookup(body, path)
            if isinstance(found, str):
                return found
        return None

    async def _faults(self, request: Request, operation: str,
                      render: Refuser) -> tuple[Response | None, tuple[dict[str, Any], ...]]:
        """Rate limits first, then fault rules: a refusal to send instead, and the task faults to apply."""
        engine = self.engine
        if not engine.faults.rules and not engine.limits.limits:
            return None, ()
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            body = None
        request.state.json_body = body  # for fault_response overrides that scope an error to the request
        facts = RequestFacts(
            provider=self.slug, operation=operation, method=request.method,
            path=request.url.path.removeprefix(context(request).get("prefix", "")),
            api_key=self.api_key_of(request, body), model=self.model_of(body), body=body,
        )
        now = engine.now()
        notes = context(request)
        fired_notes: list[dict[str, Any]] = notes.setdefault("faults", [])
        verdict = engine.limits.check(facts, now, self.submits(operation, body),
                                      lambda: self._in_flight(facts.api_key, now))
        if verdict is not None:
            fired_notes.append({"limit": verdict.limit.name, "reason": verdict.reason,
                                "retry_after": verdict.retry_after})
            do = {"error": "rate_limited", "retry_after": verdict.retry_after, "reset_at": verdict.reset_at,
                  "limit": verdict.value, "limit_kind": verdict.kind, "per": verdict.limit.per,
                  "limit_name": verdict.limit.name}
            return render(request, do), ()
        refusal: Response | None = None
        actions: list[dict[str, Any]] = []
        for rule in engine.faults.fire(facts, now):
            fired_notes.append({"rule": rule.name, "do": rule.do})
            if "error" in rule.do and refusal is None:
                refusal = render(request, rule.do)
                notes["status_chosen"] = "status" in rule.do or rule.do["error"] == "http"
            if "network" in rule.do:
                notes["network"] = rule.do
            if "task" in rule.do:
                actions.append(rule.do)
        return refusal, tuple(actions)

    def submits(self, operation: str, body: Any) -> bool:
        """Whether this request creates generation work (concurrency limits guard only such requests)."""
        return operation in self.data.get("submitOperations", [])

    def _in_flight(self, api_key: str | None, now: float) -> list[float]:
        return [
            task.terminal_at() for task in self.engine.tasks.all(self.slug)
            if task.owner == api_key and not task.phase(now).terminal
        ]

    def fault_response(self, request: Request, do: dict[str, Any]) -> Response:
        """A forced error in this provider's own envelope (kinds and wording from provider.json `faults`)."""
        spec = error_spec(self.data.get("faults", {}), do)
        response = self.error(int(spec["status"]), str(spec["message"]), code=spec.get("code"))
        response.headers.update(fault_headers(spec, do))
        return response

    def authenticate(self, request: Request, token: str | None = None) -> str | None:
        """The API key if it is acceptable (any non-empty one unless a list was set), else None."""
        token = token if token is not None else bearer_token(request)
        if not token or (self.valid_tokens is not None and token not in self.valid_tokens):
            return None
        context(request)["owner"] = token
        return token

    def reject(self, request: Request, violations: list[Violation]) -> Response:
        context(request)["violations"] = [v.as_dict() for v in violations]
        return self.validation_error(violations)

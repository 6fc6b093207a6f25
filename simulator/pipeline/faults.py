"""The pipeline's failure stage: rate limits first, then fault rules, matched on the exchange's facts.

A refused exchange gets the provider's own rendering of the forced error; `task` actions travel on to the
handler (simulator.faults.tasks), a `network` action to the transport, which acts it out on its wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.faults.plan import RequestFacts
from simulator.pipeline.answer import Answer
from simulator.pipeline.exchange import Endpoint, Exchange

if TYPE_CHECKING:
    from simulator.engine import Engine


@dataclass(frozen=True)
class Verdict:
    refusal: Answer | None = None
    task_actions: tuple[dict[str, Any], ...] = ()


NOTHING = Verdict()


def facts_of(exchange: Exchange, endpoint: Endpoint) -> RequestFacts:
    provider, body = endpoint.provider, exchange.sent
    return RequestFacts(
        provider=provider.slug, operation=endpoint.operation, method=exchange.method,
        # The provider's own path, however the request reached it (under /<slug>, or by the provider's hostname).
        path=exchange.routed_path.removeprefix(f"/{provider.slug}") or "/",
        api_key=exchange.api_key, model=provider.model_of(body, exchange.path_params), body=body,
    )


def judge(engine: Engine, exchange: Exchange, endpoint: Endpoint) -> Verdict:
    """Rate limits, then fault rules: what (if anything) to answer instead, and the task faults to apply."""
    if not engine.faults.rules and not engine.limits.limits:
        return NOTHING
    provider = endpoint.provider
    render = endpoint.refuse or provider.render_fault
    facts = facts_of(exchange, endpoint)
    now = engine.now()
    verdict = engine.limits.check(facts, now, provider.submits(endpoint.operation, facts.body),
                                  lambda: provider.in_flight(facts.api_key, now))
    if verdict is not None:
        exchange.faults.append({"limit": verdict.limit.name, "reason": verdict.reason,
                                "retry_after": verdict.retry_after})
        do = {"error": "rate_limited", "retry_after": verdict.retry_after, "reset_at": verdict.reset_at,
              "limit": verdict.value, "limit_kind": verdict.kind, "per": verdict.limit.per,
              "limit_name": verdict.limit.name}
        return Verdict(render(exchange, do))
    refusal: Answer | None = None
    actions: list[dict[str, Any]] = []
    for rule in engine.faults.fire(facts, now):
        exchange.faults.append({"rule": rule.name, "do": rule.do})
        if "error" in rule.do and refusal is None:
            refusal = render(exchange, rule.do)
            exchange.status_chosen = "status" in rule.do or rule.do["error"] == "http"
        if "network" in rule.do:
            exchange.network = rule.do
        if "task" in rule.do:
            actions.append(rule.do)
    return Verdict(refusal, tuple(actions))

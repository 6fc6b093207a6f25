"""One pipeline for every transport: each exchange meets the same stages, in the same order.

    clock tick → rate limits and fault rules (a forced error answers instead) → operation switched on?
    → authenticate → typed parameters → body (read once, validated against the operations table)
    → handler → a raised ProviderError rendered in the provider's envelope → self-check
    → delivered by the transport → journal

A transport adapter builds the `Exchange`, finds its `Endpoint` (simulator.pipeline.routing) and calls
`Pipeline.run(exchange, endpoint, deliver)`; `deliver` puts the answer on its own wire (and acts out a
network fault noted on the exchange). The journal entry is written after delivery, even when delivery fails
or the client gave up.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Protocol

from simulator import self_check
from simulator.clock import VirtualClock
from simulator.engine import Engine
from simulator.faults.tasks import task_faults
from simulator.pipeline import journal
from simulator.pipeline.answer import Answer
from simulator.pipeline.body import BodyError, read_json, too_large, without_unknown_fields
from simulator.pipeline.errors import ProviderError
from simulator.pipeline.exchange import Endpoint, Exchange
from simulator.pipeline.faults import judge
from simulator.pipeline.parameters import BadParameter, read_parameters

Deliver = Callable[[Answer], Awaitable[None]]
log = logging.getLogger("nanobanana_sim")


class Relay(Protocol):
    """Answers exchanges from elsewhere instead of the handlers: a real provider (the validating proxy) or a
    recording (replay); see simulator.proxy.relay."""

    async def answer(self, exchange: Exchange, endpoint: Endpoint) -> Answer: ...

    def pushed(self, exchange: Exchange, endpoint: Endpoint, answer: Answer) -> Answer:
        """A frame the upstream sent on its own on a connection (a WebSocket), checked and kept as the relay's."""
        ...


class Pipeline:
    def __init__(self, engine: Engine, self_check_mode: self_check.Mode) -> None:
        self.engine = engine
        self.self_check = self_check_mode
        self.relay: Relay | None = None  # set: the proxy (or a replay) answers after the fault rules

    async def run(self, exchange: Exchange, endpoint: Endpoint, deliver: Deliver, *, kind: str = "http") -> Answer:
        """Answer the exchange, hand the answer to `deliver`, journal both."""
        answer = None
        try:
            answer = await self.answer(exchange, endpoint)
            await deliver(answer)
            return answer
        finally:
            journal.record(self.engine.journal, exchange, answer, self.engine.now(), kind)

    async def settle(self, exchange: Exchange, answer: Answer, deliver: Deliver, *, kind: str = "http",
                     endpoint: Endpoint | None = None) -> None:
        """Deliver and journal an answer a transport made itself (a path no provider serves), or a frame a
        provider sends on its own on a connection (checked against `endpoint`'s operation first)."""
        if endpoint is not None:
            # Under a relay such a frame is the upstream's (or the transport's refusal): the relay checks it.
            answer = (self.relay.pushed(exchange, endpoint, answer) if self.relay is not None
                      else self._checked(exchange, endpoint, answer))
        try:
            await deliver(answer)
        finally:
            journal.record(self.engine.journal, exchange, answer, self.engine.now(), kind)

    async def answer(self, exchange: Exchange, endpoint: Endpoint) -> Answer:
        provider = endpoint.provider
        exchange.provider, exchange.operation = provider.slug, endpoint.operation
        try:
            clock = self.engine.clock
            if isinstance(clock, VirtualClock) and clock.tick > 0:
                await self.engine.advance(clock.tick)
            exchange.api_key = provider.presented_key(exchange)
            if too_large(exchange, provider.body_limit):
                return self._too_large(exchange, endpoint)
            verdict = judge(self.engine, exchange, endpoint)
            if verdict.refusal is not None:
                answer = verdict.refusal
            elif self.relay is not None:
                return await self.relay.answer(exchange, endpoint)  # checked by the relay, as the upstream's
            else:
                with task_faults(verdict.task_actions):
                    answer = await self._handled(exchange, endpoint)
            return self._checked(exchange, endpoint, answer)
        except Exception as exc:  # a bug must still answer in the provider's shape, and be seen
            log.exception("%s %s failed", provider.slug, endpoint.operation)
            exchange.note = "".join(traceback.format_exception_only(exc)).strip()
            return provider.error(500, "The simulator hit an internal error; see the journal note.")

    @staticmethod
    def _too_large(exchange: Exchange, endpoint: Endpoint) -> Answer:
        """A body over the provider's limit, refused as the provider's front end does, before anything reads it."""
        provider = endpoint.provider
        exchange.oversized = exchange.oversized or len(exchange.raw_body)
        exchange.raw_body = b""  # kept nowhere, journaled by size
        exchange.note = (f"request body of {exchange.oversized} bytes (as far as read) is over {provider.slug}'s "
                         f"limit of {provider.body_limit} bytes (provider.json bodyLimit): not read")
        # The front end's answer, outside the operations table on purpose (like a status a fault rule forces).
        exchange.status_chosen = True
        return provider.render_fault(exchange, {"error": "payload_too_large"})

    async def _handled(self, exchange: Exchange, endpoint: Endpoint) -> Answer:
        provider, spec = endpoint.provider, endpoint.spec
        try:
            if spec.enabled_by and not provider.options[spec.enabled_by]:
                # Switched off under the current options: the path is then as unknown as any other.
                raise ProviderError("not_found", f"No route for {exchange.method} {exchange.routed_path}.", status=404)
            if spec.auth == "required":
                provider.authenticate(exchange)
            try:
                exchange.params = read_parameters(exchange, spec.parameters)
            except BadParameter as bad:
                raise provider.bad_parameter(exchange, bad) from None
            if endpoint.replay is not None:
                replayed = await endpoint.replay(exchange)
                if replayed is not None:
                    return replayed
            if spec.request is not None and (exchange.raw_body.strip() or not spec.request_optional):
                self._read_body(exchange, endpoint)
            return await endpoint.handler(exchange)
        except ProviderError as error:
            exchange.violations.extend(violation.as_dict() for violation in error.violations)
            return provider.render_error(exchange, error)

    def _read_body(self, exchange: Exchange, endpoint: Endpoint) -> None:
        """The body, parsed once and validated against the operation's request schema (or its items' one)."""
        provider, spec = endpoint.provider, endpoint.spec
        refusal = provider.refuse_media_type(exchange)
        if refusal is not None:
            raise refusal
        try:
            value = read_json(exchange, provider.json_depth)
        except BodyError as problem:
            raise provider.unreadable_body(exchange, problem) from None
        exchange.schema = spec.request_schema(provider.options)
        if spec.each_item:  # one bad item does not refuse the others: the handler validates each (Provider.items)
            exchange.body = value
            return
        assert exchange.schema is not None
        report = provider.schemas.validate(exchange.schema, value)
        exchange.body, violations = without_unknown_fields(
            exchange, provider.data, provider.options, value, report.violations)
        if violations:
            raise ProviderError.invalid(violations)

    def _checked(self, exchange: Exchange, endpoint: Endpoint, answer: Answer) -> Answer:
        """The answer, checked against the operations table (see simulator.self_check)."""
        mode = self.self_check
        if mode is self_check.Mode.OFF or exchange.status_chosen:
            return answer  # a status the user's fault rule chose is outside the contract on purpose
        provider = endpoint.provider
        findings = self_check.check_answer(provider, endpoint.operation, answer)
        if not findings:
            return answer
        summary = self_check.describe(findings)
        exchange.self_check = findings
        log.error("nanobanana-sim self-check: %s %s answered %s, which its contract does not allow: %s",
                  provider.slug, endpoint.operation, answer.status, summary)
        if mode is self_check.Mode.STRICT:
            return provider.error(500, f"nanobanana-sim self-check failed (a simulator bug): {summary}")
        return answer

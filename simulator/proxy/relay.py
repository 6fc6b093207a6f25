"""The pipeline's relay stage: a request answered by an upstream (a real provider, or a cassette) instead of a
handler, checked against our contract on the way out and on the way back.

With a relay installed (`Pipeline.relay`), every exchange of every transport still meets the pipeline's first
stages (the clock, fault rules and limits, so failures can be layered over real traffic) and its last (the journal,
the access log); in between, this module:

1. checks the request as the simulator would (simulator.proxy.request_check) and, with `block_invalid`, refuses
   it in the provider's own words before it costs anything; otherwise it goes on, its violations journaled;
2. forwards it with the caller's key, which is remembered only to be scrubbed (from the cassette, and from the
   journal entry, whose headers and query are masked once the request has left);
3. checks the answer against the response schemas and documented error shapes (simulator.self_check): findings
   are the upstream's, kept as `proxied.response`, never mistaken for a simulator bug;
4. records the exchange, redacted, if a recorder is attached, and hands the answer back with the upstream's base
   URL rewritten to the proxy's own, so the links it carries (images, task URLs) come back through the proxy.

A frame a client sends on a WebSocket takes steps 1 and 2 alone, out on that connection's link to the upstream's
WebSocket (simulator.proxy.sockets); the upstream's frames come back as the connection's pushes, which the pipeline
hands to `pushed` for steps 3 and 4.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode
from weakref import WeakKeyDictionary

from starlette.datastructures import Headers

from simulator import self_check
from simulator.pipeline import Answer, Endpoint, Exchange, ProviderError
from simulator.pipeline.answer import JSON
from simulator.pipeline.conversation import Conversation
from simulator.proxy.callbacks import Callbacks
from simulator.proxy.cassette import Recorder, encode_body
from simulator.proxy.redaction import REDACTED, SECRET_HEADERS, SECRET_PARAMS, Redactor
from simulator.proxy.request_check import request_violations
from simulator.proxy.sockets import Link
from simulator.proxy.upstream import HttpUpstream, Upstream, UpstreamError
from simulator.transports.websocket import PUSH_METHOD
from simulator.validation import Violation


def provider_path(exchange: Exchange, slug: str) -> str:
    """The path as the provider itself serves it (`/v1/tasks`), whatever prefix the client used."""
    return exchange.routed_path[len(slug) + 1:]


class Relay:
    def __init__(self, upstream: Upstream, *, redactor: Redactor | None = None, recorder: Recorder | None = None,
                 block_invalid: bool = False, callbacks: Callbacks | None = None) -> None:
        self.upstream = upstream
        self.recorder = recorder
        self.redactor = redactor or (recorder.redactor if recorder is not None else Redactor())
        self.block_invalid = block_invalid
        self.callbacks = callbacks
        self._to_clients = HttpUpstream("")  # passes callbacks on to the clients' own URLs
        # Per client WebSocket: its link to the upstream, and its number in the recording.
        self._links: WeakKeyDictionary[Conversation, Link] = WeakKeyDictionary()
        self._connections: WeakKeyDictionary[Conversation, int] = WeakKeyDictionary()

    async def answer(self, exchange: Exchange, endpoint: Endpoint) -> Answer:
        provider = endpoint.provider
        engine = provider.engine
        rest = provider_path(exchange, provider.slug)
        token = self.callbacks.token(rest) if self.callbacks is not None else None
        if token is not None:
            return await self._callback(exchange, token, engine.now)
        self._remember_secrets(exchange)
        violations = request_violations(exchange, endpoint)
        exchange.violations.extend(violation.as_dict() for violation in violations)
        blocked = bool(violations) and self.block_invalid
        if exchange.conversation is not None:
            return await self._frame(exchange, endpoint, rest, violations, blocked)
        findings: list[dict[str, Any]] = []
        if blocked:
            answer = provider.render_error(exchange, ProviderError.invalid(violations))
            exchange.note = "blocked by the proxy (--block-invalid): the request breaks the documented contract"
        else:
            body = exchange.raw_body
            if self.callbacks is not None:
                body = self.callbacks.swap(body, exchange.base_url)
            try:
                answer = await self.upstream.send(exchange, rest, body)
            except UpstreamError as problem:
                answer = provider.error(problem.status, str(problem), code=problem.code)
                exchange.note = str(problem)
            else:
                findings = self_check.check_answer(provider, endpoint.operation, answer)
        exchange.proxied = {"upstream": self.redactor.text(self.upstream.base), "blocked": blocked,
                            "response": findings}
        if self.recorder is not None:
            self._record(exchange, answer, rest, engine.now(), [v.as_dict() for v in violations], findings,
                         blocked)
        self._mask(exchange)
        return _rebased(answer, self.upstream.base, exchange.base_url)

    async def _callback(self, exchange: Exchange, token: str, now: Callable[[], float]) -> Answer:
        """A callback the provider sent to the proxy: recorded, and passed on to the client's own URL."""
        assert self.callbacks is not None
        url = self.callbacks.routes[token]
        exchange.note = f"callback passed on to {self.redactor.text(url)}"
        try:
            answer = await self._to_clients.send_to(url, exchange, exchange.raw_body)
        except UpstreamError as problem:
            answer = Answer.content(str(problem), "text/plain", 502)
        exchange.proxied = {"upstream": self.redactor.text(url), "blocked": False, "response": [], "callback": True}
        if self.recorder is not None:
            request, response = self._parts(exchange, "", answer)
            self.recorder.record_callback(at=exchange.started, took=now() - exchange.started,
                                          to=self.redactor.text(url), request=request, response=response)
        self._mask(exchange)
        return answer

    async def _frame(self, exchange: Exchange, endpoint: Endpoint, rest: str, violations: list[Violation],
                     blocked: bool) -> Answer:
        """A frame the client sent on a WebSocket: out on the connection's link to the upstream, whose own frames
        are the answer (they come back through `pushed`); refused here only when blocked or the link fails."""
        conversation = exchange.conversation
        assert conversation is not None
        provider = endpoint.provider
        exchange.proxied = {"upstream": self.redactor.text(self.upstream.base), "blocked": blocked, "response": []}
        if self.recorder is not None:
            body, _ = encode_body(exchange.raw_body, JSON, self.redactor)
            self.recorder.record_frame(at=exchange.started, connection=self._connection(conversation),
                                       direction="sent", operation=endpoint.operation, path=rest, body=body,
                                       checks=[violation.as_dict() for violation in violations], blocked=blocked)
        if blocked:
            exchange.note = "blocked by the proxy (--block-invalid): the frame breaks the documented contract"
            answer = provider.render_error(exchange, ProviderError.invalid(violations))
        else:
            raw = exchange.raw_body
            if self.callbacks is not None:
                raw = self.callbacks.swap(raw, exchange.base_url)
            try:
                link = self._links.get(conversation)
                if link is None or link.closed:
                    link = await self.upstream.open_socket(exchange, rest, partial(_pass_on, conversation))
                    self._links[conversation] = link
                await link.send(raw.decode("utf-8", "replace"))
            except (UpstreamError, ConnectionError) as problem:  # the link would not open, or the upstream left
                failure = problem if isinstance(problem, UpstreamError) else UpstreamError(str(problem))
                answer = provider.error(failure.status, str(failure), code=failure.code)
                exchange.note = str(failure)
            else:
                conversation.then(_nothing, instead=True)
                exchange.note = "relayed on the upstream's WebSocket: its frames come back as pushes"
                answer = Answer(200)
        self._mask(exchange)
        return answer

    def pushed(self, exchange: Exchange, endpoint: Endpoint, answer: Answer) -> Answer:
        """A frame the upstream sent on a WebSocket: checked against the response schemas as its own, recorded,
        and passed on with its links to the upstream turned into links to us."""
        if exchange.method != PUSH_METHOD:  # the transport's own refusal of a client frame (binary, oversized)
            return answer
        provider = endpoint.provider
        findings = self_check.check_answer(provider, endpoint.operation, answer)
        exchange.proxied = {"upstream": self.redactor.text(self.upstream.base), "blocked": False,
                            "response": findings}
        if self.recorder is not None and exchange.conversation is not None:
            body, _ = encode_body(answer.body, JSON, self.redactor)
            self.recorder.record_frame(at=exchange.started, connection=self._connection(exchange.conversation),
                                       direction="received", operation=endpoint.operation,
                                       path=provider_path(exchange, provider.slug), body=body, checks=findings)
        self._mask(exchange)
        return _rebased(answer, self.upstream.base, exchange.base_url)

    def _connection(self, conversation: Conversation) -> int:
        """The number of a client connection in the recording (1, 2, … as they opened)."""
        number = self._connections.get(conversation)
        if number is None:
            number = self._connections[conversation] = len(self._connections) + 1
        return number

    def _remember_secrets(self, exchange: Exchange) -> None:
        self.redactor.remember(exchange.api_key)
        for name, value in exchange.headers.items():
            if name in SECRET_HEADERS:
                self.redactor.remember(value.split(" ", 1)[-1].strip())
        for name, value in parse_qsl(exchange.query_string.decode("latin-1"), keep_blank_values=True):
            if name.lower() in SECRET_PARAMS:
                self.redactor.remember(value)

    def _parts(self, exchange: Exchange, rest: str, answer: Answer) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request and the answer as the cassette keeps them (redacted; a binary answer kept by hash)."""
        assert self.recorder is not None
        redactor = self.redactor
        request_body, _ = encode_body(exchange.raw_body, exchange.headers.get("content-type", ""), redactor)
        response_body, raw = encode_body(answer.body, answer.content_type or "", redactor)
        self.recorder.keep(raw)
        request = {"method": exchange.method, "path": redactor.text(rest),
                   "query": redactor.query(parse_qsl(exchange.query_string.decode("latin-1"),
                                                     keep_blank_values=True)),
                   "headers": redactor.headers(exchange.headers.items(), redactor.request_headers),
                   "body": request_body}
        response = {"status": answer.status, "headers": redactor.headers(answer.wire_headers(),
                                                                         redactor.response_headers),
                    "body": response_body}
        return request, response

    def _record(self, exchange: Exchange, answer: Answer, rest: str, now: float,
                violations: list[dict[str, Any]], findings: list[dict[str, Any]], blocked: bool) -> None:
        assert self.recorder is not None and exchange.operation is not None
        request, response = self._parts(exchange, rest, answer)
        self.recorder.record(at=exchange.started, took=now - exchange.started, operation=exchange.operation,
                             request=request, response=response, request_checks=violations,
                             response_checks=findings, blocked=blocked, note=exchange.note)

    def _mask(self, exchange: Exchange) -> None:
        """The caller's credentials out of what the journal keeps, now that the request has left."""
        exchange.headers = Headers(raw=[
            (name, REDACTED.encode() if name.decode("latin-1").lower() in SECRET_HEADERS else value)
            for name, value in exchange.headers.raw])
        for secret in self.redactor.known:  # a key in the body (Runware's `authentication` task)
            exchange.raw_body = exchange.raw_body.replace(secret.encode(), REDACTED.encode())
        pairs = parse_qsl(exchange.query_string.decode("latin-1"), keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
            masked = [(name, REDACTED if name.lower() in SECRET_PARAMS else value) for name, value in pairs]
            exchange.query_string = urlencode(masked).encode("latin-1")

    async def aclose(self) -> None:
        for link in list(self._links.values()):
            await link.aclose()
        await self.upstream.aclose()
        await self._to_clients.aclose()
        if self.recorder is not None:
            self.recorder.close()


async def _nothing() -> None:
    return None


async def _pass_on(conversation: Conversation, text: str) -> bool:
    """One frame the upstream sent, on to the client (through the pipeline, which hands it to `Relay.pushed`)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return await conversation.push(Answer(200, text.encode(), JSON, {}, value))


def _rebased(answer: Answer, upstream: str, base: str) -> Answer:
    """The answer with links to the upstream turned into links to us (bodies of text, and `Location`)."""
    old, new = upstream.rstrip("/"), base.rstrip("/")
    if old == new:
        return answer
    headers = dict(answer.headers)
    if "location" in headers:
        headers["location"] = headers["location"].replace(old, new)
    body = answer.body
    content_type = answer.content_type or ""
    if old.encode() in body and ("json" in content_type or content_type.startswith("text/")):
        body = body.replace(old.encode(), new.encode())
    rebased = Answer(answer.status, body, answer.media_type, headers)
    if "json" in content_type:
        # Its JSON value too, for a transport that sends values rather than bytes (a WebSocket's frames).
        try:
            return replace(rebased, value=rebased.parsed())
        except ValueError:
            pass
    return rebased

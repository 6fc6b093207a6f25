"""The HTTP adapter: an ASGI app that turns each provider request into an Exchange and writes the answer back.

Everything a request meets on its way (limits, faults, auth, validation, the handler, the self-check, the
journal) is the pipeline's; this module only reads the request off ASGI, writes the answer (with a `Date`
from the simulator's clock, so a client comparing it with expiry times in bodies sees one time), and acts
out a network fault on the socket. The control plane (`/_sim`) and every non-HTTP scope go to `control`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.faults import network
from simulator.pipeline import DEFAULT_BODY_LIMIT, Answer, Exchange
from simulator.pipeline.body import BodyReader
from simulator.pipeline.pipeline import Pipeline
from simulator.pipeline.routing import Router
from simulator.providers.base import SHARED_TEXT

Clock = Callable[[], float]


def http_date(now: float) -> bytes:
    return _http_date(int(now))


@lru_cache(maxsize=64)  # whole seconds: every answer of the same second carries the same Date
def _http_date(second: int) -> bytes:
    return format_datetime(datetime.fromtimestamp(second, tz=UTC), usegmt=True).encode()


class HttpTransport:
    def __init__(self, router: Router, pipeline: Pipeline, control: ASGIApp, now: Clock) -> None:
        self.router = router
        self.pipeline = pipeline
        self.control = control
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.control(scope, receive, send)
            return
        scope, host = _origin_form(scope)
        headers = Headers(scope=scope)
        host = host or headers.get("host")
        query = scope.get("query_string", b"")
        target = self.router.resolve(scope["method"], scope["path"], host, query)
        if target is None:
            await self.control(scope, receive, self._dated(send))
            return
        started = self.now()
        limit = target.endpoint.provider.body_limit if target.endpoint is not None else DEFAULT_BODY_LIMIT
        reader = BodyReader(limit, _content_length(headers),
                            expects_continue=headers.get("expect", "").lower() == "100-continue")
        await _read(receive, reader)
        exchange = Exchange(
            method=scope["method"], path=scope["path"], routed_path=target.path, prefix=target.prefix,
            base_url=_base_url(scope, headers, target.prefix), started=started,
            query_string=query, headers=headers, raw_body=reader.body(),
            path_params=target.path_params, oversized=reader.oversized,
        )

        async def deliver(answer: Answer) -> None:
            if not reader.complete:
                # Part of an oversized body was left unread: the connection cannot carry another request.
                answer = answer.with_headers({"connection": "close"})
            await self._write(send, answer, exchange.network)

        if target.endpoint is None:
            exchange.provider = target.provider
            await self.pipeline.settle(exchange, self.router.unknown(scope["path"]), deliver)
        else:
            await self.pipeline.run(exchange, target.endpoint, deliver)

    def _dated(self, send: Send) -> Send:
        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", http_date(self.now()))]}
            await send(message)

        return dated_send

    async def _write(self, send: Send, answer: Answer, fault: dict[str, Any] | None) -> None:
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.wire_headers()]
        start: Message = {"type": "http.response.start", "status": answer.status,
                          "headers": [*headers, (b"date", http_date(self.now()))]}
        body = answer.body
        kind = fault["network"] if fault is not None else None
        if kind is None or kind == "latency":
            if fault is not None:
                await asyncio.sleep(network.latency(fault))
            await send(start)
            for frame in answer.frames():  # a stream's events go out one by one
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif kind in ("reset", "empty", "close"):
            cut_connection(send, reset=kind == "reset")
        elif kind == "malformed":
            broken = network.malformed(body)
            await send(_with_length(start, len(broken)))
            await send({"type": "http.response.body", "body": broken})
        elif kind == "truncate":
            await send(start)
            await send({"type": "http.response.body", "body": network.truncated(body, fault or {}),
                        "more_body": True})
            cut_connection(send, reset=False)
        else:  # trickle
            chunks, interval = network.trickled(body, fault or {})
            await send(start)
            for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(interval)
            await send({"type": "http.response.body", "body": b""})


async def _read(receive: Receive, reader: BodyReader) -> None:
    """Read the body into `reader` for as long as it wants more (past its limit it only counts and drops)."""
    while reader.reading:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away
        reader.add(message.get("body", b""), bool(message.get("more_body")))


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers.get("content-length", ""))
    except ValueError:
        return None


def _origin_form(scope: Scope) -> tuple[Scope, str | None]:
    """A request target in absolute form (`GET http://host/path`, as sent to a proxy) as the origin-form path it
    names, with its authority, which takes the place of `Host` (RFC 9112 section 3.2.2)."""
    path = scope["path"]
    if path.startswith("/") or "://" not in path:
        return scope, None
    parts = urlsplit(path)
    origin = parts.path or "/"
    return {**scope, "path": origin, "raw_path": origin.encode("latin-1", "replace")}, parts.netloc or None


def _base_url(scope: Scope, headers: Headers, prefix: str) -> str:
    """Scheme, host and prefix as the client addressed us, for URLs we hand back."""
    host = headers.get("host")
    if not host:
        server_host, server_port = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server_host}:{server_port}"
    base = f"{scope.get('scheme', 'http')}://{host}{prefix}"
    return sys.intern(base) if len(base) <= SHARED_TEXT else base  # each task keeps it: one string for them all


def _with_length(start: Message, length: int) -> Message:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    return {**start, "headers": [*headers, (b"content-length", str(length).encode())]}


def _transport(send: Send) -> asyncio.Transport | None:
    # uvicorn's `send` is a bound method of the request cycle, which holds the connection's transport.
    return getattr(getattr(send, "__self__", None), "transport", None)


def cut_connection(send: Send, *, reset: bool) -> None:
    cycle = getattr(send, "__self__", None)
    transport = _transport(send)
    if transport is None:
        # No socket under this ASGI server (an app called in-process): the caller sees the connection drop.
        raise ConnectionResetError("nanobanana-sim: the connection was dropped by a network fault")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: the kernel answers the close with RST, as a crashed peer or a middlebox would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    if cycle is not None:
        # Tell uvicorn the exchange is over, so it neither logs nor tries to send a 500 on a dead socket.
        for flag in ("response_started", "response_complete"):
            if hasattr(cycle, flag):
                setattr(cycle, flag, True)

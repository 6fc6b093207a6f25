"""The WebSocket adapter: every text frame a client sends is one exchange through the pipeline.

A provider with a WebSocket API (`Provider.socket_terms`) is reached at the same paths and hostnames as its
REST API (Runware: `/runware/v1`, or `/v1` at the root for `Host: ws-api.runware.ai`). Auth, limits, fault
rules, validation, the handler, the self-check and the journal are the pipeline's, frame by frame; this module
only reads frames off ASGI and writes answers as text frames, keeps the idle timer on the simulator's clock,
refuses what it cannot hand on (a binary or oversized frame) with the provider's own error, runs what a handler
asked to follow its answer (`Conversation.then`), and acts out network faults on the socket:

- `latency` / `trickle`: the frame goes out that much later (a frame cannot dribble, so a trickle is its
  whole duration);
- `reset` / `empty` / `truncate`: the socket is dropped with no close frame (`reset` with a TCP RST);
- `close` (`close_code`, `reason`): the socket is closed with that close code;
- `malformed`: the frame sent is cut short and followed by junk, so it is no longer JSON.

A path whose provider has no WebSocket API refuses the handshake (HTTP 403, as the ASGI server answers a close
before accept).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.clock import Timer
from simulator.engine import Engine
from simulator.faults import network
from simulator.pipeline import Answer, BodyError, Endpoint, Exchange
from simulator.pipeline.conversation import SocketTerms, Work
from simulator.pipeline.pipeline import Pipeline
from simulator.pipeline.routing import Router, Target
from simulator.transports.http import cut_connection

FRAME_METHOD = "WS"  # a frame the client sent, as the journal names it
PUSH_METHOD = "PUSH"  # a frame the server sent on its own (a result as it is ready)
POLICY_VIOLATION = 1008
DEFAULT_FAULT_CLOSE = 1011  # a `close` network fault without a close_code: "internal error"


class WebSocketTransport:
    """WebSocket scopes onto the pipeline; everything else to `other` (the HTTP transport)."""

    def __init__(self, router: Router, pipeline: Pipeline, engine: Engine, other: ASGIApp) -> None:
        self.router = router
        self.pipeline = pipeline
        self.engine = engine
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.other(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # A frame carries what a POST body carries on the provider's REST API, at the same path.
        target = self.router.resolve("POST", scope["path"], headers.get("host"))
        endpoint = target.endpoint if target is not None else None
        offered = endpoint.provider.socket_terms() if endpoint is not None else None
        if target is None or endpoint is None or offered is None or offered[0] != endpoint.operation:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        await Socket(self, scope, receive, send, target, endpoint, offered[1]).serve()


class Socket:
    """One client connection: the `Conversation` its exchanges see."""

    def __init__(self, transport: WebSocketTransport, scope: Scope, receive: Receive, send: Send, target: Target,
                 endpoint: Endpoint, terms: SocketTerms) -> None:
        self.transport = transport
        self.pipeline = transport.pipeline
        self.engine = transport.engine
        self.scope = scope
        self.receive = receive
        self.send = send
        self.target = target
        self.endpoint = endpoint
        self.terms = terms
        self.credential: str | None = None
        self.open = False
        self._after: list[tuple[Work, bool]] = []  # asked by the current frame's handler
        self._closing: tuple[int, str] | None = None
        self._writing = asyncio.Lock()
        self._idle: Timer | None = None
        self._work: set[asyncio.Task[None]] = set()
        headers = Headers(scope=scope)
        scheme = "https" if scope.get("scheme") == "wss" else "http"
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("127.0.0.1", 80)))
        self.base_url = f"{scheme}://{host}{target.prefix}"

    # -- the Conversation a handler sees ------------------------------------------------------------------

    def then(self, work: Work, *, instead: bool = False) -> None:
        self._after.append((work, instead))

    def close(self, code: int, reason: str) -> None:
        self._closing = (code, reason)

    async def push(self, answer: Answer, *, task_id: str | None = None) -> bool:
        if not self.open:
            return False
        exchange = self._exchange(PUSH_METHOD, b"", None)
        exchange.provider, exchange.operation = self.endpoint.provider.slug, self.endpoint.operation
        exchange.owner, exchange.task_id = self.credential, task_id
        delivered = False

        async def deliver(checked: Answer) -> None:
            nonlocal delivered
            delivered = await self._write(checked, None)

        await self.pipeline.settle(exchange, answer, deliver, kind="ws", endpoint=self.endpoint)
        return delivered

    # -- the connection -----------------------------------------------------------------------------------

    async def serve(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        await self.send({"type": "websocket.accept"})
        self.open = True
        self._touch()
        try:
            while self.open:
                message = await self.receive()
                if message["type"] != "websocket.receive":
                    break
                self._touch()
                await self._frame(message)
        finally:
            self.open = False
            if self._idle is not None:
                self._idle.cancel()

    async def _frame(self, message: Message) -> None:
        text = message.get("text")
        raw = text.encode() if text is not None else (message.get("bytes") or b"")
        media_type = "application/json" if text is not None else "application/octet-stream"
        exchange = self._exchange(FRAME_METHOD, raw, media_type)

        async def deliver(answer: Answer) -> None:
            silent = any(instead for _, instead in self._after)
            await self._write(answer, exchange.network, silent=silent)

        problem = None
        if text is None:
            problem = "Got a binary frame; every message must be a JSON text frame."
        elif len(raw) > self.terms.max_frame_bytes:
            problem = f"Got a frame of {len(raw)} bytes; the limit is {self.terms.max_frame_bytes} bytes."
        if problem is None:
            await self.pipeline.run(exchange, self.endpoint, deliver, kind="ws")
        else:
            provider = self.endpoint.provider
            exchange.provider, exchange.operation = provider.slug, self.endpoint.operation
            answer = provider.render_error(exchange, provider.unreadable_body(exchange, BodyError(problem)))
            await self.pipeline.settle(exchange, answer, deliver, kind="ws", endpoint=self.endpoint)
        after, self._after = self._after, []
        for work, _ in after:
            self._spawn(work())
        if self._closing is not None:
            await self._shut(*self._closing)

    def _exchange(self, method: str, raw: bytes, media_type: str | None) -> Exchange:
        headers = list(self.scope.get("headers", []))
        if media_type is not None:
            headers.append((b"content-type", media_type.encode()))
        return Exchange(
            method=method, path=self.scope["path"], routed_path=self.target.path, prefix=self.target.prefix,
            base_url=self.base_url, started=self.engine.now(), query_string=self.scope.get("query_string", b""),
            headers=Headers(raw=headers), raw_body=raw, transport="ws", credential=self.credential,
            conversation=self,
        )

    async def _write(self, answer: Answer, fault: dict[str, Any] | None, *, silent: bool = False) -> bool:
        """Send the answer as a text frame (acting out a network fault); False if it did not go out."""
        async with self._writing:
            if not self.open:
                return False
            kind = fault["network"] if fault is not None else None
            if kind == "latency":
                await asyncio.sleep(network.latency(fault or {}))
            elif kind == "trickle":
                chunks, interval = network.trickled(answer.body, fault or {})
                await asyncio.sleep(len(chunks) * interval)
            if kind == "close":
                do = fault or {}
                await self._closed(int(do.get("close_code", DEFAULT_FAULT_CLOSE)), str(do.get("reason", "")))
                return False
            if kind in network.DROPS:
                self.open = False
                cut_connection(self.send, reset=kind == "reset")
                return False
            if silent:
                return True
            body = network.malformed(answer.body) if kind == "malformed" else answer.body
            try:
                await self.send({"type": "websocket.send", "text": body.decode("utf-8", "replace")})
            except (OSError, RuntimeError):  # the client is gone (uvicorn raises ClientDisconnected, an OSError)
                self.open = False
                return False
            self._touch()
            return True

    def _touch(self) -> None:
        """Restart the idle timer: the socket closes that many clock seconds after the last frame either way."""
        if self._idle is not None:
            self._idle.cancel()
        deadline = self.engine.now() + self.terms.idle_seconds
        self._idle = self.engine.clock.call_at(deadline, lambda: self._shut(self.terms.idle_close_code, "idle timeout"))

    async def _shut(self, code: int, reason: str) -> None:
        async with self._writing:
            await self._closed(code, reason)

    async def _closed(self, code: int, reason: str) -> None:
        if not self.open:
            return
        self.open = False
        with contextlib.suppress(OSError, RuntimeError):  # the client went first
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    def _spawn(self, work: Awaitable[None]) -> None:
        # Work outlives the socket (results are kept for a client that resumes): hold it until it is done.
        task = asyncio.ensure_future(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

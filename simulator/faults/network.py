"""Network faults on the HTTP response, applied on the wire by the outermost ASGI middleware.

A fired rule's `{"network": …}` action (noted by the provider route for this request) says what happens:

- `latency` (`seconds`): the response starts that much later.
- `trickle` (`chunk` bytes every `interval` seconds): the body dribbles out.
- `reset`: the connection is reset (TCP RST) before any byte of the response.
- `empty`: the connection is closed before any byte of the response.
- `truncate` (`fraction`, default 0.5): headers and part of the body, then the connection closes.
- `malformed`: the body is cut short and followed by junk, so it is no longer valid JSON.

These are real seconds, not simulator time: they exist to exercise the client's own timeouts and
socket handling, which run on the wall clock whatever the simulator's clock does. In-process (no
socket), `reset`/`empty`/`truncate` raise `ConnectionResetError` into the calling client instead.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.faults.plan import PlanError
from simulator.http.context import SCOPE_KEY

NETWORK_ACTIONS = frozenset({"latency", "trickle", "reset", "empty", "truncate", "malformed"})
JUNK = b"\x00<html><body>502 Bad Gateway</body></html>"


def check_network_action(do: Mapping[str, Any], rule: str) -> None:
    if do.get("network") not in NETWORK_ACTIONS:
        raise PlanError(f"{rule}: network action must be one of {sorted(NETWORK_ACTIONS)}, not {do.get('network')!r}")


def _transport(send: Send) -> asyncio.Transport | None:
    # uvicorn's `send` is a bound method of the request cycle, which holds the connection's transport.
    return getattr(getattr(send, "__self__", None), "transport", None)


def _cut(send: Send, *, reset: bool) -> None:
    cycle = getattr(send, "__self__", None)
    transport = _transport(send)
    if transport is None:
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


def _with_length(start: Message, length: int) -> Message:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    return {**start, "headers": [*headers, (b"content-length", str(length).encode())]}


class NetworkFaults:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes: dict[str, Any] = scope.setdefault(SCOPE_KEY, {})
        held: dict[str, Any] = {"start": None, "body": []}

        async def faulty_send(message: Message) -> None:
            do = notes.get("network")
            if do is None:
                await send(message)
                return
            kind = do["network"]
            if kind == "latency":
                if message["type"] == "http.response.start":
                    await asyncio.sleep(float(do.get("seconds", 1)))
                await send(message)
                return
            if message["type"] == "http.response.start":
                held["start"] = message
                if kind in ("reset", "empty"):
                    _cut(send, reset=kind == "reset")
                return
            if kind in ("reset", "empty") or held["start"] is None:
                return
            held["body"].append(message.get("body", b""))
            if not message.get("more_body"):
                await self._deliver(do, held["start"], b"".join(held["body"]), send)

        await self.app(scope, receive, faulty_send)

    async def _deliver(self, do: Mapping[str, Any], start: Message, body: bytes, send: Send) -> None:
        kind = do["network"]
        if kind == "malformed":
            broken = body[: len(body) // 2] + JUNK
            await send(_with_length(start, len(broken)))
            await send({"type": "http.response.body", "body": broken})
        elif kind == "truncate":
            await send(start)
            share = min(0.99, max(0.0, float(do.get("fraction", 0.5))))
            await send({"type": "http.response.body", "body": body[: int(len(body) * share)], "more_body": True})
            _cut(send, reset=False)
        elif kind == "trickle":
            await send(start)
            chunk, interval = max(1, int(do.get("chunk", 16))), float(do.get("interval", 0.1))
            for offset in range(0, len(body), chunk):
                await send({"type": "http.response.body", "body": body[offset:offset + chunk], "more_body": True})
                await asyncio.sleep(interval)
            await send({"type": "http.response.body", "body": b""})

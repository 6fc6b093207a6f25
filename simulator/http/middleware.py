"""ASGI middleware: route by Host to a provider, and record every exchange in the journal."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.engine import Journal
from simulator.http.context import MAX_JSON_DEPTH, SCOPE_KEY, BodyError, unreadable_json

CONTROL_PREFIX = "/_sim"
# Bodies larger than this are journaled by size only (image uploads, huge prompts).
MAX_JOURNALED_BODY = 1024 * 1024


class HostRouting:
    """`Host: orchestration.civitai.com` reaches /civitai/...; `--provider` serves one slug at the root."""

    def __init__(self, app: ASGIApp, hosts: Mapping[str, str], slugs: set[str], default: str | None) -> None:
        self.app = app
        self.hosts = {host.lower(): slug for host, slug in hosts.items()}
        self.slugs = slugs
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes: dict[str, Any] = scope.setdefault(SCOPE_KEY, {})
        path: str = scope["path"]
        first = path.split("/", 2)[1] if path.startswith("/") else ""
        slug = self._slug_for_host(scope)
        if slug is None and first not in self.slugs and not path.startswith(CONTROL_PREFIX):
            slug = self.default
        notes["client_path"] = path
        if slug is not None and not path.startswith(CONTROL_PREFIX):
            scope = dict(scope, path=f"/{slug}{path}", raw_path=f"/{slug}{path}".encode())
            notes["prefix"] = ""
            notes["provider"] = slug
        elif first in self.slugs:
            notes["prefix"] = f"/{first}"
            notes["provider"] = first
        await self.app(scope, receive, send)

    def _slug_for_host(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1").lower()
                if not host.startswith("["):
                    host = host.split(":", 1)[0]
                return self.hosts.get(host)
        return None


def _decode(raw: bytes, content_type: str, *, trusted: bool = False) -> Any:
    """A body as the journal keeps it; `trusted` bodies (our own JSON responses) skip the value checks."""
    if not raw:
        return None
    if len(raw) > MAX_JOURNALED_BODY:
        return {"bytes": len(raw)}
    if "json" in content_type:
        try:
            value = json.loads(raw)
            if not trusted:
                unreadable_json(value, MAX_JSON_DEPTH)  # NaN or a lone surrogate could not be served back as JSON
            return value
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, BodyError):
            pass
    if content_type.startswith(("image/", "application/octet-stream")):
        return {"bytes": len(raw), "content_type": content_type}
    return raw.decode("utf-8", "replace")


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}


class JournalRecorder:
    """Records request and response of every provider exchange, timed on the simulator's clock."""

    def __init__(self, app: ASGIApp, journal: Journal, now: Callable[[], float]) -> None:
        self.app = app
        self.journal = journal
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        started = self.now()
        scope.setdefault(SCOPE_KEY, {})
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []
        response: dict[str, Any] = {}

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = _headers(message.get("headers", []))
            elif message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            notes: dict[str, Any] = scope.get(SCOPE_KEY, {})
            request_headers = _headers(scope.get("headers", []))
            response_headers = response.get("headers", {})
            self.journal.record(
                "http",
                started,
                provider=notes.get("provider"),
                operation=notes.get("operation"),
                method=scope["method"],
                path=scope["path"],
                query=_query(scope),
                owner=notes.get("owner"),
                request_headers=request_headers,
                request_body=_decode(b"".join(request_chunks), request_headers.get("content-type", "")),
                status=response.get("status"),
                response_headers=response_headers,
                response_body=_decode(
                    b"".join(response_chunks), response_headers.get("content-type", ""), trusted=True
                ),
                finished_at=self.now(),
                task_id=notes.get("task_id"),
                note=notes.get("note"),
                violations=notes.get("violations", []),
                ignored=notes.get("ignored", []),
                faults=notes.get("faults", []),
                self_check=notes.get("self_check", []),
            )


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


class SimulatedDate:
    """The `Date` header from the simulator's clock (uvicorn's own is switched off), so a client that
    reads expiry or Retry-After dates against the server's Date sees the same time as the bodies."""

    def __init__(self, app: ASGIApp, now: Callable[[], float]) -> None:
        self.app = app
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                stamp = format_datetime(datetime.fromtimestamp(self.now(), tz=UTC), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self.app(scope, receive, dated_send)

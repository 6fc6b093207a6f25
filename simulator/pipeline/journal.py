"""The pipeline's last stage: what an exchange leaves in the journal, whichever transport carried it.

Headers, query and bodies are kept as the bytes the exchange already holds (shared, not copied) and read
into JSON only when someone reads the entry: the same values as before, at a fraction of the memory and
none of the per-request parsing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from simulator.engine import Journal
from simulator.engine.journal import Deferred
from simulator.pipeline.answer import Answer
from simulator.pipeline.body import MAX_JSON_DEPTH, BodyError, unreadable_json
from simulator.pipeline.exchange import Exchange

# Bodies larger than this are journaled by size only (image uploads, huge prompts).
MAX_JOURNALED_BODY = 1024 * 1024


def record(journal: Journal, exchange: Exchange, answer: Answer | None, finished_at: float,
           kind: str = "http") -> None:
    """Journal the exchange (`answer` None: it never got one, e.g. its client gave up first)."""
    journal.record(
        kind,
        exchange.started,
        provider=exchange.provider,
        operation=exchange.operation,
        method=exchange.method,
        path=exchange.path,
        query=_Query(exchange.query_string) if exchange.query_string else {},
        owner=exchange.owner,
        request_headers=_Headers.received(exchange.headers.raw),
        request_body=_request_body(exchange),
        status=answer.status if answer is not None else None,
        response_headers=_Headers.answered(answer.wire_headers()) if answer is not None else {},
        response_body=_response_body(answer) if answer is not None else None,
        finished_at=finished_at,
        task_id=exchange.task_id,
        note=exchange.note,
        violations=exchange.violations,
        ignored=exchange.ignored,
        faults=exchange.faults,
        self_check=exchange.self_check,
        proxied=exchange.proxied,
    )


class _Headers(Deferred):
    """Header lines as one block of `name: value` lines (bytes as received, or text as answered); read back as
    a dict, the last value of a name winning, as before."""

    __slots__ = ("_block", "_size")

    def __init__(self, block: bytes | str) -> None:
        self._block = block
        lines = block.count(b"\n") if isinstance(block, bytes) else block.count("\n")
        self._size = len(block) + 4 * lines + 6  # counted once: one block serves many entries

    @property
    def size(self) -> int:
        return self._size

    @classmethod
    def received(cls, raw: list[tuple[bytes, bytes]]) -> _Headers | dict[str, str]:
        block = b"\n".join([name + b": " + value for name, value in raw])
        if raw and block.count(b"\n") != len(raw) - 1:  # a line break in a name or value (not over HTTP): as is
            return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}
        return cls.shared(block)

    @classmethod
    def answered(cls, pairs: list[tuple[str, str]]) -> _Headers | dict[str, str]:
        block = "\n".join([f"{name}: {value}" for name, value in pairs])
        if pairs and block.count("\n") != len(pairs) - 1:
            return dict(pairs)
        return cls.shared(block)

    @classmethod
    def shared(cls, block: bytes | str) -> _Headers:
        """One object per distinct block: a client sends the same headers request after request, and most
        answers carry the same ones, so 50,000 entries hold a handful of blocks."""
        found = _SHARED.get(block)
        if found is None:
            if len(_SHARED) >= _SHARED_BLOCKS:
                _SHARED.clear()
            found = _SHARED[block] = cls(block)
        return found

    def value(self) -> dict[str, str]:
        block = self._block.decode("latin-1") if isinstance(self._block, bytes) else self._block
        if not block:
            return {}
        return dict(line.split(": ", 1) for line in block.split("\n"))


_SHARED: dict[bytes | str, _Headers] = {}
_SHARED_BLOCKS = 4096


class _Query(Deferred):
    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def size(self) -> int:
        return 2 * len(self._raw) + 8

    def value(self) -> dict[str, list[str]]:
        return parse_qs(self._raw.decode("latin-1"), keep_blank_values=True)

    def fingerprint(self) -> bytes:
        return self._raw


class _Body(Deferred):
    """A request or response body: JSON as its own copy (a handler may keep and later change parts of the value
    it was given), anything else as text or a size note."""

    __slots__ = ("_checked", "_content_type", "_raw")

    def __init__(self, raw: bytes, content_type: str, checked: bool) -> None:
        self._raw = raw
        self._content_type = content_type
        self._checked = checked  # a request body must be plain JSON to be kept as JSON (NaN, lone surrogates)

    @property
    def size(self) -> int:
        return len(self._raw)

    def value(self) -> Any:
        if "json" in self._content_type:
            try:
                value = json.loads(self._raw)
                if self._checked:
                    # NaN or a lone surrogate could not be served back as JSON
                    unreadable_json(value, MAX_JSON_DEPTH, self._raw)
                return value
            except (ValueError, RecursionError, BodyError):
                pass
        return self._raw.decode("utf-8", "replace")


def _request_body(exchange: Exchange) -> Any:
    raw = exchange.raw_body
    if not raw:
        return None
    if len(raw) > MAX_JOURNALED_BODY:
        return {"bytes": len(raw)}
    return _kept(raw, exchange.headers.get("content-type", ""), checked=True)


def _response_body(answer: Answer) -> Any:
    body = answer.body
    if not body:
        return None
    if answer.events is not None and len(body) <= MAX_JOURNALED_BODY:
        return {"events": list(answer.events)}  # each event as the client parses it
    if len(body) > MAX_JOURNALED_BODY:
        return {"bytes": len(body)}
    return _kept(body, answer.content_type or "", checked=False)


def _kept(raw: bytes, content_type: str, checked: bool) -> Any:
    if content_type.startswith(("image/", "application/octet-stream")):
        return {"bytes": len(raw), "content_type": content_type}
    return _Body(raw, content_type, checked)

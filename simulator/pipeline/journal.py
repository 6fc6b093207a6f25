"""The pipeline's last stage: what an exchange leaves in the journal, whichever transport carried it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from simulator.engine import Journal
from simulator.pipeline.answer import Answer
from simulator.pipeline.body import MAX_JSON_DEPTH, BodyError, unreadable_json
from simulator.pipeline.exchange import Exchange

# Bodies larger than this are journaled by size only (image uploads, huge prompts).
MAX_JOURNALED_BODY = 1024 * 1024


def record(journal: Journal, exchange: Exchange, answer: Answer | None, finished_at: float,
           kind: str = "http") -> None:
    """Journal the exchange (`answer` None: it never got one, e.g. its client gave up first)."""
    request_headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in exchange.headers.raw}
    journal.record(
        kind,
        exchange.started,
        provider=exchange.provider,
        operation=exchange.operation,
        method=exchange.method,
        path=exchange.path,
        query=parse_qs(exchange.query_string.decode("latin-1"), keep_blank_values=True),
        owner=exchange.owner,
        request_headers=request_headers,
        request_body=_request_body(exchange, request_headers.get("content-type", "")),
        status=answer.status if answer is not None else None,
        response_headers=dict(answer.wire_headers()) if answer is not None else {},
        response_body=_response_body(answer) if answer is not None else None,
        finished_at=finished_at,
        task_id=exchange.task_id,
        note=exchange.note,
        violations=exchange.violations,
        ignored=exchange.ignored,
        faults=exchange.faults,
        self_check=exchange.self_check,
    )


def _request_body(exchange: Exchange, content_type: str) -> Any:
    raw = exchange.raw_body
    if not raw:
        return None
    if len(raw) > MAX_JOURNALED_BODY:
        return {"bytes": len(raw)}
    if "json" in content_type and exchange.loaded()[1] is None:
        try:
            # Its own copy, not the exchange's: handlers may keep (and later change) parts of what they were given.
            value = json.loads(raw)
            unreadable_json(value, MAX_JSON_DEPTH)  # NaN or a lone surrogate could not be served back as JSON
            return value
        except BodyError:
            pass
    return _other(raw, content_type)


def _response_body(answer: Answer) -> Any:
    body = answer.body
    if not body:
        return None
    if answer.events is not None and len(body) <= MAX_JOURNALED_BODY:
        return {"events": list(answer.events)}  # each event as the client parses it
    if len(body) > MAX_JOURNALED_BODY:
        return {"bytes": len(body)}
    content_type = answer.content_type or ""
    if "json" in content_type:
        try:
            return answer.parsed()
        except ValueError:
            pass
    return _other(body, content_type)


def _other(raw: bytes, content_type: str) -> Any:
    if content_type.startswith(("image/", "application/octet-stream")):
        return {"bytes": len(raw), "content_type": content_type}
    return raw.decode("utf-8", "replace")

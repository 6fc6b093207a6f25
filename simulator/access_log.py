"""The access log: one readable line per journal entry, written as the journal records it.

It observes the journal rather than a transport, so a request over HTTP, a WebSocket frame or a webhook attempt
is logged the same way. Each line carries the provider, the operation, the status, the task and the simulator's
clock; a rejected request names each field and rule it broke (and the nearest valid value), a faulted exchange
the rule or limit that fired and what it did:

    civitai SubmitWorkflow POST /civitai/v2/consumer/workflows?wait=60 -> 400 clock=2026-01-01T00:00:00.000Z
        rejected: steps[0].input.aspectRatio [enum] nearest "16:9"
    qingbo SubmitTask POST /qingbo/v1/tasks -> 429 clock=… fault: rule 'storm-1' error rate_limited

(one line each in the log). Under `--log-format json` the same facts are keys of the line's JSON object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from simulator.engine.journal import Deferred, JournalEntry, entry_head, entry_troubles
from simulator.formats import iso_utc_finite
from simulator.logs import ACCESS

SHOWN_VIOLATIONS = 3
MAX_TARGET = 200
ACTIONS = ("error", "task", "network", "webhook")


def clock_text(t: float) -> str:
    """`2026-01-01T00:00:00.000Z`: the clock time `t`, to the millisecond."""
    return iso_utc_finite(t)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _target(entry: JournalEntry) -> str:
    query = _query_text(entry)
    target = f"{entry.path}?{query}" if query else str(entry.path)
    return target if len(target) <= MAX_TARGET else target[:MAX_TARGET] + "…"


def _query_text(entry: JournalEntry) -> str:
    kept = entry.kept("query")
    if not kept:
        return ""
    if isinstance(kept, Deferred):
        fingerprint = kept.fingerprint()
        if fingerprint is not None:  # a client polling one task sends the same query again and again
            return _encoded_query(kept, fingerprint)
    return urlencode(entry.query, doseq=True)


_QUERIES: dict[Hashable, str] = {}
_KEPT_QUERIES = 1024


def _encoded_query(kept: Deferred, fingerprint: Hashable) -> str:
    text = _QUERIES.get(fingerprint)
    if text is None:
        if len(_QUERIES) >= _KEPT_QUERIES:
            _QUERIES.clear()
        text = _QUERIES[fingerprint] = urlencode(kept.value(), doseq=True)
    return text


def _violation(violation: dict[str, Any]) -> str:
    text = f"{violation.get('path') or '(body)'} [{violation.get('rule')}]"
    nearest = violation.get("nearest")
    return f"{text} nearest {_value(nearest)}" if nearest is not None else text


def _fault(fired: dict[str, Any]) -> str:
    if "limit" in fired:
        return f"limit '{fired['limit']}' ({fired.get('reason')})"
    do = fired.get("do", {})
    action = next((f"{key} {do[key]}" for key in ACTIONS if key in do), _value(do))
    if do.get("error") == "http":
        action = f"error http {do.get('status')}"
    return f"rule '{fired.get('rule')}' {action}"


def _proxied(proxied: dict[str, Any]) -> str:
    text = f"proxied: {proxied.get('upstream')}"
    if proxied.get("blocked"):
        return text + " blocked (the request breaks the contract)"
    findings = proxied.get("response") or []
    return text + (f" answer outside the contract: {len(findings)} finding(s)" if findings else "")


def line(entry: JournalEntry) -> str:
    """The entry's log line, without the time (which the formatter adds)."""
    kind, provider, operation, method, path, status, task_id, at, finished_at = entry_head(entry)
    where = provider or "-"
    if kind == "http" or kind == "ws":  # a WebSocket frame: method WS (from the client) or PUSH (from the server)
        text = f"{where} {operation or '-'} {method} {_target(entry)} -> {status}"
    elif kind == "webhook":
        detail = entry.detail
        answer = status if status is not None else "no answer"
        text = (f"{where} webhook {detail.get('event')} {method} {path} -> {answer} "
                f"{detail.get('outcome')} attempt={detail.get('attempt')}")
    else:
        text = f"{where} {kind}"
    if task_id:
        text += f" task={task_id}"
    text += f" clock={clock_text(at)}"
    took = (finished_at - at) if finished_at is not None else 0.0
    if took >= 0.001:
        text += f" took={took:.3f}s"
    if not any(entry_troubles(entry)):
        return text  # most lines: nothing went wrong
    parts = [text]
    if entry.violations:
        shown = "; ".join(_violation(v) for v in entry.violations[:SHOWN_VIOLATIONS])
        more = len(entry.violations) - SHOWN_VIOLATIONS
        parts.append(f"rejected: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if entry.faults:
        parts.append("fault: " + "; ".join(_fault(fired) for fired in entry.faults))
    if entry.self_check:
        parts.append(f"self-check: {len(entry.self_check)} finding(s), a simulator bug (see the journal)")
    if entry.proxied is not None:
        parts.append(_proxied(entry.proxied))
    if entry.note:
        parts.append(f"note: {entry.note}")
    return " ".join(parts)


def facts(entry: JournalEntry) -> dict[str, Any]:
    """The entry's facts as JSON-ready fields (the keys of its line under `--log-format json`)."""
    took = (entry.finished_at - entry.at) if entry.finished_at is not None else 0.0
    fields: dict[str, Any] = {
        "kind": entry.kind, "seq": entry.seq, "provider": entry.provider, "operation": entry.operation,
        "method": entry.method, "path": entry.path, "query": _query_text(entry) or None,
        "status": entry.status, "task_id": entry.task_id, "clock": clock_text(entry.at),
        "clock_seconds": round(took, 3),
    }
    if entry.kind == "webhook":
        detail = entry.detail
        fields.update(event=detail.get("event"), attempt=detail.get("attempt"), outcome=detail.get("outcome"))
    if entry.violations:
        fields["violations"] = [
            {key: v.get(key) for key in ("path", "rule", "message", "nearest")} for v in entry.violations
        ]
    if entry.faults:
        fields["faults"] = entry.faults
    if entry.self_check:
        fields["self_check"] = entry.self_check
    if entry.proxied is not None:
        fields["proxied"] = entry.proxied
    if entry.note:
        fields["note"] = entry.note
    return fields


def describe(entry: JournalEntry) -> tuple[str, dict[str, Any]]:
    """The entry's log line (without the time) and its facts as JSON-ready fields."""
    return line(entry), facts(entry)


class AccessLog:
    """A journal observer: logs each entry on `nanobanana_sim.access` and counts the requests served."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS)
        self.requests = 0

    def __call__(self, entry: JournalEntry) -> None:
        self.requests += entry.kind == "http"
        logger = self.logger
        if logger.isEnabledFor(logging.INFO):
            described = _Described(entry)
            # What `logger.info` does, less its search of the stack for the calling source line (a frame walk
            # per request, for a file and line number no access line shows).
            logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, described, (), None,
                                            extra={"fields": described}))


class _Described(Mapping[str, Any]):
    """An entry's log line (its str) and facts (its items), each worked out when a handler formats the record
    (under `serve`, the log's writer thread, not the event loop serving requests), and only the one it asks for:
    a text log never builds the facts."""

    __slots__ = ("_entry", "_facts")

    def __init__(self, entry: JournalEntry) -> None:
        self._entry = entry
        self._facts: dict[str, Any] | None = None

    def _fields(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = facts(self._entry)
        return self._facts

    def __str__(self) -> str:
        return line(self._entry)

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

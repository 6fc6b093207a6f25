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
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from simulator.clock import to_datetime
from simulator.engine.journal import JournalEntry
from simulator.logs import ACCESS

SHOWN_VIOLATIONS = 3
MAX_TARGET = 200
ACTIONS = ("error", "task", "network", "webhook")


def clock_text(t: float) -> str:
    return to_datetime(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _target(entry: JournalEntry) -> str:
    query = urlencode(entry.query, doseq=True)
    target = f"{entry.path}?{query}" if query else str(entry.path)
    return target if len(target) <= MAX_TARGET else target[:MAX_TARGET] + "…"


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


def describe(entry: JournalEntry) -> tuple[str, dict[str, Any]]:
    """The entry's log line (without the time, which the formatter adds) and its facts as JSON-ready fields."""
    took = (entry.finished_at - entry.at) if entry.finished_at is not None else 0.0
    clock = clock_text(entry.at)
    fields: dict[str, Any] = {
        "kind": entry.kind, "seq": entry.seq, "provider": entry.provider, "operation": entry.operation,
        "method": entry.method, "path": entry.path, "query": urlencode(entry.query, doseq=True) or None,
        "status": entry.status, "task_id": entry.task_id, "clock": clock,
        "clock_seconds": round(took, 3),
    }
    where = f"{entry.provider or '-'}"
    if entry.kind == "webhook":
        detail = entry.detail
        fields.update(event=detail.get("event"), attempt=detail.get("attempt"), outcome=detail.get("outcome"))
        answer = entry.status if entry.status is not None else "no answer"
        line = (f"{where} webhook {detail.get('event')} {entry.method} {entry.path} -> {answer} "
                f"{detail.get('outcome')} attempt={detail.get('attempt')}")
    elif entry.kind in ("http", "ws"):  # a WebSocket frame: method WS (from the client) or PUSH (from the server)
        line = f"{where} {entry.operation or '-'} {entry.method} {_target(entry)} -> {entry.status}"
    else:
        line = f"{where} {entry.kind}"
    if entry.task_id:
        line += f" task={entry.task_id}"
    line += f" clock={clock}"
    if took >= 0.001:
        line += f" took={took:.3f}s"
    parts = []
    if entry.violations:
        shown = "; ".join(_violation(v) for v in entry.violations[:SHOWN_VIOLATIONS])
        more = len(entry.violations) - SHOWN_VIOLATIONS
        parts.append(f"rejected: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        fields["violations"] = [
            {key: v.get(key) for key in ("path", "rule", "message", "nearest")} for v in entry.violations
        ]
    if entry.faults:
        parts.append("fault: " + "; ".join(_fault(fired) for fired in entry.faults))
        fields["faults"] = entry.faults
    if entry.self_check:
        parts.append(f"self-check: {len(entry.self_check)} finding(s), a simulator bug (see the journal)")
        fields["self_check"] = entry.self_check
    if entry.proxied is not None:
        parts.append(_proxied(entry.proxied))
        fields["proxied"] = entry.proxied
    if entry.note:
        parts.append(f"note: {entry.note}")
        fields["note"] = entry.note
    return " ".join([line, *parts]), fields


class AccessLog:
    """A journal observer: logs each entry on `nanobanana_sim.access` and counts the requests served."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS)
        self.requests = 0

    def __call__(self, entry: JournalEntry) -> None:
        self.requests += entry.kind == "http"
        if self.logger.isEnabledFor(logging.INFO):
            described = _Described(entry)
            self.logger.info(described, extra={"fields": described})


class _Described(Mapping[str, Any]):
    """An entry's log line (its str) and facts (its items), worked out when a handler formats the record:
    under `serve` that is the log's writer thread, not the event loop serving requests."""

    def __init__(self, entry: JournalEntry) -> None:
        self._entry = entry
        self._described: tuple[str, dict[str, Any]] | None = None

    def _facts(self) -> tuple[str, dict[str, Any]]:
        if self._described is None:
            self._described = describe(self._entry)
        return self._described

    def __str__(self) -> str:
        return self._facts()[0]

    def __getitem__(self, key: str) -> Any:
        return self._facts()[1][key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts()[1])

    def __len__(self) -> int:
        return len(self._facts()[1])

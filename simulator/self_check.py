"""The response self-check: every answer the simulator gives is checked against the provider's own schemas.

A simulator is only worth testing against while what it sends is what the provider documents. Each
provider's operations table (`simulator.operations`) names the response schema per status; before a
response leaves, its status and body are checked against that table. What fails is a simulator bug,
never the client's fault, so it is reported as such:

- `off`: nothing is checked (the fastest serving);
- `record` (the default): findings go into the journal entry (`self_check`) and the log;
- `strict`: as record, and the response is replaced by the provider's own 500, so no test can pass on it.

Callback payloads are checked the same way (provider.json `webhookPayloads`, by event); in strict mode a
broken one is withheld instead of sent.

`NANOBANANA_SELF_CHECK` sets the default mode of every simulator the process creates.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from simulator.operations import Operation, ResponseSpec

if TYPE_CHECKING:
    from simulator.pipeline import Answer
    from simulator.providers.base import Provider

ENV = "NANOBANANA_SELF_CHECK"
# Answers already found valid, by (provider, schemas, exact bytes): a client polling a task that has not changed
# gets the same bytes again and again, and validating costs far more than hashing them.
KNOWN_GOOD_SIZE = 2048
_KNOWN_GOOD: OrderedDict[tuple[str, tuple[str, ...], bytes], None] = OrderedDict()


class Mode(StrEnum):
    OFF = "off"
    RECORD = "record"
    STRICT = "strict"


def default_mode() -> Mode:
    value = os.environ.get(ENV, Mode.RECORD.value).strip().lower()
    try:
        return Mode(value)
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: choose one of {[mode.value for mode in Mode]}") from None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def check_answer(provider: Provider, operation: str, answer: Answer) -> list[dict[str, Any]]:
    """Findings for one answer of `provider`'s `operation` (empty when it is what the table says)."""
    verdict = answer.verdict
    if verdict is not None and verdict.checked_for == (provider.slug, operation):
        return []  # an answer filled from a kept rendering already found valid (see simulator.pipeline.settled)
    findings = _answer_findings(provider, operation, answer)
    if verdict is not None and not findings:
        verdict.checked_for = (provider.slug, operation)
    return findings


def _answer_findings(provider: Provider, operation: str, answer: Answer) -> list[dict[str, Any]]:
    spec_of: Operation | None = provider.operations.get(operation)
    if spec_of is None:
        return [{"problem": f"operation {operation!r} is not in {provider.slug}'s operations table"}]
    status, body = answer.status, answer.body
    media_type = _media_type(answer.content_type)
    parsed: Any = None
    if body and _is_json(media_type):
        try:
            # The value the body was just encoded from reads the same, and costs no parse; the detailed path
            # below still validates the bytes as sent.
            parsed = answer.value if answer.value is not None else answer.parsed()
        except ValueError as exc:
            return [{"status": status, "problem": f"the body is not valid JSON: {exc}"}]
    counted = provider.status_that_counts(status, parsed)
    spec = spec_of.response(counted)
    if spec is None:
        return [{"status": counted, "problem": f"{operation} does not document status {counted}"}]
    findings = _against(provider, spec, counted, media_type, body, parsed, answer.value)
    if answer.events is not None and spec_of.stream_events and not findings:
        for number, event in enumerate(answer.events):
            findings += _schema_findings(provider, spec_of.stream_events, event, {"status": status, "event": number})
    return findings


def _against(provider: Provider, spec: ResponseSpec, status: int, media_type: str, body: bytes,
             parsed: Any, value: Any = None) -> list[dict[str, Any]]:
    if spec.empty or (spec.or_empty and not body):
        return [] if not body else [{"status": status, "problem": f"a body ({len(body)} bytes) where none is due"}]
    if spec.media:
        if media_type in spec.media:
            return []
        problem = f"media type {media_type or 'none'!r}, expected one of {list(spec.media)}"
        return [{"status": status, "problem": problem}]
    if not _is_json(media_type) or not body:
        return [{"status": status, "problem": f"expected a JSON body ({' or '.join(spec.schemas)}), "
                                              f"got {media_type or 'no media type'} with {len(body)} bytes"}]
    remembered = (provider.slug, spec.schemas, body)
    if remembered in _KNOWN_GOOD:
        return []
    if value is not None and any(provider.schemas.accepts(name, value) for name in spec.schemas):
        return []  # the value the body was encoded from just now fits: no need to read the bytes back
    findings = _schema_findings(provider, spec.schemas, parsed if value is None else json.loads(body),
                                {"status": status})
    if not findings:
        _KNOWN_GOOD[remembered] = None
        if len(_KNOWN_GOOD) > KNOWN_GOOD_SIZE:
            _KNOWN_GOOD.popitem(last=False)
    return findings


def _schema_findings(provider: Provider, schemas: tuple[str, ...], instance: Any,
                     where: dict[str, Any]) -> list[dict[str, Any]]:
    """Nothing when `instance` fits one of `schemas`, else what is wrong with it against each."""
    if any(provider.schemas.is_valid(name, instance) for name in schemas):
        return []  # the compiled validator decides this, the common case, without wording any violation
    reports = [(name, provider.schemas.validate(name, instance)) for name in schemas]
    return [{**where, "schema": name, "violations": [v.as_dict() for v in report.violations[:5]]}
            for name, report in reports]


def check_payload(provider: Provider, event: str, payload: Any) -> list[dict[str, Any]]:
    """Findings for a callback payload, against the schema provider.json `webhookPayloads` names for its event."""
    table: dict[str, Any] = provider.data.get("webhookPayloads", {})
    pattern = next((p for p in table if p != "$comment" and fnmatchcase(event, p)), None)
    if pattern is None:
        return [{"event": event, "problem": f"{provider.slug} documents no callback for event {event!r}"}]
    spec = ResponseSpec.parse(table[pattern])
    if spec.empty or spec.media:
        return []  # not JSON (an upload's bytes): nothing to check
    return _schema_findings(provider, spec.schemas, payload, {"event": event})


def describe(findings: list[dict[str, Any]]) -> str:
    """One line per finding, for a log line or an error message."""
    lines = []
    for finding in findings:
        if "problem" in finding:
            lines.append(finding["problem"])
            continue
        first = finding["violations"][0] if finding["violations"] else {}
        lines.append(f"not a valid {finding['schema']}: {first.get('path') or '(root)'}: {first.get('message')}")
    return "; ".join(lines)

"""The contract check: which of a test's requests broke the provider's documented contract, and a report.

The providers already validate every request against their schemas and documented rules and journal each
rejection's `violations` (JSON path, rule, expected and nearest valid value, doc reference); this module
reads them back from the journal, adds requests to routes the provider does not have, and in strict mode
headers and query parameters its documents do not list (`documentedRequest` in `provider.json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from simulator import self_check
from simulator.options import provider_data

# Transport-level headers every HTTP client sends on its own; never part of a provider's contract.
STANDARD_HEADERS = frozenset({
    "host", "user-agent", "accept", "accept-encoding", "connection", "content-length", "content-type",
    "transfer-encoding",
})
UNKNOWN_ROUTE = "UnknownRoute"  # the operation of each provider's fallback route (simulator.http.app)
BODY_EXCERPT = 600
MAX_LISTED = 12


@dataclass(frozen=True)
class Problem:
    path: str  # JSON path in the body, or `header X` / `query X` / the route
    rule: str
    message: str
    value: Any = None
    expected: Any = None
    nearest: Any = None
    doc: str | None = None
    source: str | None = None  # the file in this package that holds the rule


@dataclass(frozen=True)
class Finding:
    """One request and everything wrong with it."""

    entry: Mapping[str, Any]
    problems: tuple[Problem, ...]


def _documented(slug: str) -> Mapping[str, Any]:
    return provider_data(slug).get("documentedRequest", {})


def _per_operation(table: Mapping[str, Sequence[str]], operation: str) -> set[str]:
    return {*table.get("*", ()), *table.get(operation, ())}


def _schema_problems(entry: Mapping[str, Any]) -> list[Problem]:
    slug = entry.get("provider")
    return [
        Problem(
            path=v.get("path") or "$", rule=str(v.get("rule")), message=str(v.get("message", "")),
            value=v.get("value"), expected=v.get("expected"), nearest=v.get("nearest"), doc=v.get("doc"),
            source=f"schemas/{slug}/{v['schema']}.json" if v.get("schema") else None,
        )
        for v in entry.get("violations", [])
    ]


def _route_problems(entry: Mapping[str, Any]) -> list[Problem]:
    route = f"{entry.get('method')} {entry.get('path')}"
    if entry.get("provider") is None:
        return [Problem(route, "route", "no simulated provider serves this path (is the base URL right?)")]
    if entry.get("operation") == UNKNOWN_ROUTE:
        return [Problem(route, "route", f"{entry['provider']} has no such route")]
    return []


def _strict_problems(entry: Mapping[str, Any], allow_headers: Iterable[str]) -> list[Problem]:
    slug, operation = entry.get("provider"), entry.get("operation")
    if slug is None or operation in (None, UNKNOWN_ROUTE):
        return []
    documented = _documented(slug)
    where = f"schemas/{slug}/provider.json (documentedRequest)"
    headers = _per_operation(documented.get("headers", {}), operation)
    allowed = STANDARD_HEADERS | headers | {name.lower() for name in allow_headers}
    problems = [
        Problem(f"header {name}", "undocumented-header",
                f"{slug} documents no {name!r} header on {operation}", value=value,
                expected=sorted(headers), source=where)
        for name, value in entry.get("request_headers", {}).items() if name.lower() not in allowed
    ]
    parameters = _per_operation(documented.get("query", {}), operation)
    problems += [
        Problem(f"query {name}", "undocumented-query",
                f"{slug} documents no query parameter {name!r} on {operation}",
                value=values[0] if len(values) == 1 else values,
                expected=sorted(parameters), source=where)
        for name, values in entry.get("query", {}).items() if name not in parameters
    ]
    return problems


def check(
    entries: Iterable[Mapping[str, Any]], *, strict: bool = False, allow_headers: Iterable[str] = (),
    expected_paths: Iterable[str] | None = None,
) -> list[Finding]:
    """Findings for the provider requests among journal entries.

    `expected_paths`: violations the test provoked on purpose (`None`: none; empty: any) are left out.
    """
    expected = None if expected_paths is None else set(expected_paths)
    allow = tuple(allow_headers)
    findings = []
    for entry in entries:
        if entry.get("kind") != "http":
            continue
        problems = _route_problems(entry) + _schema_problems(entry)
        if strict:
            problems += _strict_problems(entry, allow)
        if expected is not None:
            problems = [p for p in problems if expected and p.path not in expected]
        if problems:
            findings.append(Finding(entry, tuple(problems)))
    return findings


def self_check_report(entries: Iterable[Mapping[str, Any]]) -> str | None:
    """The simulator's own answers and callbacks that broke the provider's contract (journal `self_check`)."""
    broken = [entry for entry in entries if entry.get("self_check")]
    if not broken:
        return None
    count = len(broken)
    lines = [
        f"nanobanana self-check: {count} of the simulator's answers or callbacks fell outside the provider's "
        "documented contract.",
        "This is a nanobanana-sim bug, not your client's: please report it with this text "
        "(--nanobanana-self-check=off lets the tests go on meanwhile).",
    ]
    for number, entry in enumerate(broken, 1):
        lines += ["", f"{number}. {request_line(entry)}"]
        lines += [f"   ✗ {self_check.describe([finding])}" for finding in entry["self_check"]]
    return "\n".join(lines)


def missing_expected(entries: Iterable[Mapping[str, Any]], expected_paths: Iterable[str]) -> list[str]:
    """Violation paths a test said it would provoke that no request broke."""
    seen = {p.path for finding in check(entries) for p in finding.problems}
    return [path for path in expected_paths if path not in seen]


# -- the report ---------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)


def _listing(expected: Any) -> str:
    if isinstance(expected, list):
        shown = ", ".join(str(item) for item in expected[:MAX_LISTED])
        more = f", … ({len(expected) - MAX_LISTED} more)" if len(expected) > MAX_LISTED else ""
        return f"one of {shown}{more}" if expected else "(none documented)"
    return str(expected)


def request_line(entry: Mapping[str, Any]) -> str:
    query = entry.get("query") or {}
    host = str((entry.get("request_headers") or {}).get("host", ""))
    # In-process the host says which real hostname the client used; on loopback it only repeats the port.
    shown_host = "" if host.startswith(("127.", "localhost", "[")) else host
    target = shown_host + str(entry.get("path"))
    if query:
        target += "?" + urlencode([(name, value) for name, values in query.items() for value in values])
    where = " ".join(str(part) for part in (entry.get("provider"), entry.get("operation")) if part)
    return f"{entry.get('method')} {target} → {entry.get('status')}" + (f"  [{where}]" if where else "")


def body_excerpt(body: Any, limit: int = BODY_EXCERPT) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _problem_lines(problem: Problem) -> list[str]:
    lines = [f"   ✗ {problem.path}  [{problem.rule}] {problem.message}"]
    details = [
        ("sent", _show(problem.value) if problem.value is not None else None),
        ("expected", _listing(problem.expected) if problem.expected is not None else None),
        ("nearest valid", _show(problem.nearest) if problem.nearest is not None else None),
        ("doc", problem.doc),
        ("rule file", problem.source),
    ]
    lines += [f"       {label + ':':<15} {text}" for label, text in details if text]
    return lines


def render(findings: Sequence[Finding], *, title: str | None = None) -> str:
    count = len(findings)
    heading = title or (
        f"nanobanana contract check: {count} request{'s' if count != 1 else ''} "
        "broke the provider's documented contract"
    )
    lines = [heading]
    for number, finding in enumerate(findings, 1):
        entry = finding.entry
        lines += ["", f"{number}. {request_line(entry)}"]
        if entry.get("request_body") not in (None, ""):
            lines.append(f"   body: {body_excerpt(entry['request_body'])}")
        for problem in finding.problems:
            lines += _problem_lines(problem)
    return "\n".join(lines)

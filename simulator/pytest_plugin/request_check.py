"""The contract check: which of a test's requests broke the provider's documented contract.

The providers already validate every request against their schemas and documented rules and journal each
rejection's `violations` (JSON path, rule, expected and nearest valid value, doc reference), and each
undocumented field they dropped without a word (`ignored`: Evolink and FoxAPI under `unknown_fields=ignore`,
Runware under `unknown_parameters=ignore`). This module reads them back from the journal and adds requests
to routes the provider does not have. Strict mode adds the ignored fields (the real API would have answered
as if they were never sent) and headers and query parameters the provider's documents do not list
(`documentedRequest` in `provider.json`); otherwise the ignored fields are warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator import field_names
from simulator.options import provider_data

# Transport-level headers every HTTP client sends on its own; never part of a provider's contract.
STANDARD_HEADERS = frozenset({
    "host", "user-agent", "accept", "accept-encoding", "connection", "content-length", "content-type",
    "transfer-encoding",
})
UNKNOWN_ROUTE = "UnknownRoute"  # the operation of each provider's fallback route (simulator.http.app)
IGNORED_RULE = "ignored-field"


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


def _ignored_problems(entry: Mapping[str, Any]) -> list[Problem]:
    slug = entry.get("provider")
    problems = []
    for field in entry.get("ignored", []):
        path = str(field.get("path") or "$")
        name = path.rpartition(".")[2].rpartition("]")[2] or path
        meant = field.get("nearest")
        concept = field_names.concept_of(name) or (field_names.concept_of(meant) if meant else None)
        hint = f": did you mean {_fields(meant)}" + (f" (the {concept.label})" if concept else "") if meant else ""
        problems.append(Problem(
            path=path, rule=IGNORED_RULE, value=field.get("value"), nearest=meant, doc=field.get("doc"),
            message=f"{slug} does not document {name!r} and ignores it: the real API answers as if it was never "
                    f"sent{hint}",
            source=f"schemas/{slug}/{field['schema']}.json" if field.get("schema") else None,
        ))
    return problems


def _fields(meant: str) -> str:
    return " and ".join(repr(part) for part in meant.split(field_names.JOINED))


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
            problems += _ignored_problems(entry) + _strict_problems(entry, allow)
        if expected is not None:
            problems = [p for p in problems if expected and p.path not in expected]
        if problems:
            findings.append(Finding(entry, tuple(problems)))
    return findings


def missing_expected(entries: Iterable[Mapping[str, Any]], expected_paths: Iterable[str]) -> list[str]:
    """Violation paths a test said it would provoke that no request broke."""
    seen = {p.path for finding in check(entries) for p in finding.problems}
    return [path for path in expected_paths if path not in seen]


def ignored(entries: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """The requests whose undocumented fields the provider dropped: warnings outside strict mode."""
    findings = []
    for entry in entries:
        problems = _ignored_problems(entry) if entry.get("kind") == "http" else []
        if problems:
            findings.append(Finding(entry, tuple(problems)))
    return findings

"""The contract check's words: each request that broke the contract, what was wrong, and where it is written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from simulator import self_check
from simulator.pytest_plugin.request_check import IGNORED_RULE, Finding, Problem

BODY_EXCERPT = 600
MAX_LISTED = 12


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


def _problem_lines(problem: Problem, mark: str) -> list[str]:
    lines = [f"   {mark} {problem.path}  [{problem.rule}] {problem.message}"]
    # An ignored field has no valid value, only the documented field it probably stood for.
    nearest = "did you mean" if problem.rule == IGNORED_RULE else "nearest valid"
    details = [
        ("sent", _show(problem.value) if problem.value is not None else None),
        ("expected", _listing(problem.expected) if problem.expected is not None else None),
        (nearest, _show(problem.nearest) if problem.nearest is not None else None),
        ("doc", problem.doc),
        ("rule file", problem.source),
    ]
    lines += [f"       {label + ':':<15} {text}" for label, text in details if text]
    return lines


def render(findings: Sequence[Finding], *, title: str | None = None, mark: str = "✗") -> str:
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
            lines += _problem_lines(problem, mark)
    return "\n".join(lines)


def ignored_report(findings: Sequence[Finding]) -> str:
    count = len(findings)
    title = (f"nanobanana contract check: {count} request{'s' if count != 1 else ''} carried fields the provider "
             "silently ignores (--nanobanana-strict fails the test for them)")
    return render(findings, title=title, mark="!")

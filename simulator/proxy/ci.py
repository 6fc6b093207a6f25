"""The drift report for a CI job: only what is new since a previous report, and JUnit XML.

- `against_baseline(found, previous)`: the report with the findings a previous JSON report (`drift --format json`)
  already had taken out and counted, so a job fails on new drift only. A finding is the same finding when its
  provider, kind, operation, location, severity and the real and simulated values are; measured seconds (a timing
  finding's values) are left out, since every recording measures them anew, and so are the exchange numbers and
  the cassette's path, which change when a session is recorded again.
- `junit(found, strict)`: one `<testcase>` per recorded interaction, a `<failure>` per drift it showed that fails
  the job (an error, or with `strict` a warning); other findings are the test case's `<system-out>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from simulator.proxy.drift import fails, summarize

IDENTITY = ("provider", "kind", "operation", "location", "severity")


class BaselineError(ValueError):
    """A previous report that cannot be read: the message names the file and the problem."""


def _without_measurements(value: Any) -> Any:
    if isinstance(value, float):
        return None
    if isinstance(value, list):
        return [_without_measurements(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_measurements(item) for key, item in value.items()}
    return value


def identity(finding: dict[str, Any]) -> str:
    """What makes two findings of two runs the same drift."""
    kept = {name: finding.get(name) for name in IDENTITY}
    kept |= {side: _without_measurements(finding.get(side)) for side in ("real", "simulator")}
    return json.dumps(kept, sort_keys=True, default=str)


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read: {exc}") from exc
    except ValueError as exc:
        raise BaselineError(f"{path}: not a JSON drift report (drift --format json): {exc}") from exc
    if not isinstance(previous, dict) or not isinstance(previous.get("findings"), list):
        raise BaselineError(f"{path}: not a JSON drift report (drift --format json): it has no `findings` list")
    return previous


def against_baseline(found: dict[str, Any], previous: dict[str, Any], source: str) -> dict[str, Any]:
    known = {identity(finding) for finding in previous["findings"] if isinstance(finding, dict)}
    new = [finding for finding in found["findings"] if identity(finding) not in known]
    return {**found, "findings": new, "summary": summarize(new),
            "baseline": {"report": source, "known": len(found["findings"]) - len(new)}}


def _describe(finding: dict[str, Any]) -> str:
    return (f"{finding['kind']} at {finding['location']} (moved: {finding['side']})\n"
            f"documented: {finding['fact']}\n"
            f"real: {json.dumps(finding['real'], default=str)}  "
            f"simulator: {json.dumps(finding['simulator'], default=str)}"
            + (f"\nnote: {finding['note']}" if finding.get("note") else ""))


def junit(found: dict[str, Any], *, strict: bool = False) -> str:
    """The report as JUnit XML: a suite per cassette, a test case per interaction."""
    suites = ElementTree.Element("testsuites", name="nanobanana-sim drift")
    for cassette in found["cassettes"]:
        interactions = [i for i in found["interactions"] if i["cassette"] == cassette]
        findings = [f for f in found["findings"] if f["cassette"] == cassette]
        suite = ElementTree.SubElement(suites, "testsuite", name=Path(cassette).name, tests=str(len(interactions)))
        failed = 0
        for interaction in interactions:
            seq = interaction["seq"]
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"drift.{Path(cassette).stem}",
                name=f"#{seq} {interaction['operation']} {interaction['request']}")
            shown = [finding for finding in findings if finding["exchanges"][0] == seq]
            failing = [finding for finding in shown if fails(finding, strict=strict)]
            for finding in failing:
                failure = ElementTree.SubElement(case, "failure", type=finding["kind"],
                                                 message=f"{finding['kind']}: {finding['location']}")
                failure.text = _describe(finding)
            others = [finding for finding in shown if not fails(finding, strict=strict)]
            if others:
                ElementTree.SubElement(case, "system-out").text = "\n\n".join(
                    f"{finding['severity']}: {_describe(finding)}" for finding in others)
            failed += bool(failing)
        suite.set("failures", str(failed))
    suites.set("tests", str(len(found["interactions"])))
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

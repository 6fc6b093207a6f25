"""Rehearsal files (`contracts/rehearsals/*.yaml`): what failure a rehearsal arranges and what it expects.

    # <header comment: what happens, and when a client passes>
    name: retry-after-429
    title: retries a 429 no sooner than Retry-After         # the scorecard's line
    requires: [batch]                                       # batch / callbacks / downloads / idempotency
    scenario: expired-urls                                  # shipped scenario(s) to load
    options: {civitai: {url_ttl_seconds: 15}}               # provider options
    faults: [{match: {operation: $submit}, when: {times: 1}, do: {error: rate_limited, retry_after: 7}}]
    adapter: {images: 2, callback_url: $receiver}           # options the adapter is called with
    tick: 0.5                                               # clock seconds before every provider request
    expect: {outcome: result, retry_after: true}            # the checks (checks.py), with their parameters

`$submit`, `$poll` and `$download` stand for the provider's own operations (and Runware's task type);
`$receiver` is the URL of a webhook receiver the rehearsal runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator import data_formats
from simulator.faults.actions import check_action
from simulator.faults.plan import FaultPlan, PlanError
from simulator.faults.scenario import header
from simulator.resources import contracts_dir

# The clock moves this much before every provider request, so a client that never sleeps (and so never moves
# the virtual clock) still sees its task progress and ends. Gaps are measured from an answer (journaled after
# the tick) to the next request (journaled before it), so the tick never counts as the client's own pause.
DEFAULT_TICK = 0.5
ALIASES = ("$submit", "$poll", "$download")
RECEIVER = "$receiver"
FORMAT = "rehearsal"  # schemas/_formats/rehearsal.json


class RehearsalError(ValueError):
    """A rehearsal file the runner cannot use (unknown key, expectation or alias)."""


def rehearsals_dir() -> Path:
    return contracts_dir() / "rehearsals"


@dataclass(frozen=True)
class Rehearsal:
    name: str
    title: str
    description: str
    requires: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    faults: tuple[Mapping[str, Any], ...] = ()
    adapter: Mapping[str, Any] = field(default_factory=dict)
    tick: float = DEFAULT_TICK
    expect: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str) -> Rehearsal:
        document = data_formats.load_yaml(text, FORMAT, source, RehearsalError)
        name = document["name"]
        scenario = document.get("scenario")
        faults = tuple(document.get("faults") or ())
        try:  # the rules as the fault plan will take them, so a broken one stops the load, not a rehearsal
            FaultPlan(check=check_action).add(faults, source=name)
        except PlanError as exc:
            raise RehearsalError(f"{source}: {exc}") from exc
        return cls(
            name=name, title=document["title"], description=header(text), requires=tuple(document.get("requires", ())),
            scenarios=() if scenario is None else (scenario,) if isinstance(scenario, str) else tuple(scenario),
            options=dict(document.get("options") or {}), faults=faults, adapter=dict(document.get("adapter") or {}),
            tick=float(document.get("tick", DEFAULT_TICK)), expect=dict(document["expect"]),
        )

    @classmethod
    def load(cls, path: Path) -> Rehearsal:
        return cls.parse(path.read_text(encoding="utf-8"), path.stem)


def shipped() -> list[Rehearsal]:
    return [Rehearsal.load(path) for path in sorted(rehearsals_dir().glob("*.yaml"))]

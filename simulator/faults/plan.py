"""Fault plans: provider-neutral rules saying which requests meet which failure, and when.

A rule has three parts, all plain data (so they load from JSON, YAML scenario files or the control plane):

- `match`: which requests it applies to — `provider`, `operation`, `method`, `path` (glob), `api_key`,
  `model`, and `body` (dotted path → exact value); every given key must match.
- `when`: which of the matching requests fire it — `after` (skip the first N matches), `times` (fire at most
  N times), `every` (every Nth match), `window` ([from, to) seconds on the simulator clock, counted from when
  the rule was added), `probability` (0..1, drawn from the plan's seed, so a run repeats exactly).
- `do`: what happens — e.g. `{"error": "rate_limited", "retry_after": 2}`; each provider renders the kind in
  its own wire format. The plan itself does not interpret `do`; it only decides whether a rule fires.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MATCH_KEYS = frozenset({"provider", "operation", "method", "path", "api_key", "model", "body"})
WHEN_KEYS = frozenset({"after", "times", "every", "window", "probability"})


class PlanError(ValueError):
    """A rule that cannot be understood; the message names the rule and the key."""


@dataclass(frozen=True)
class RequestFacts:
    """What a rule can match on, gathered once per request."""

    provider: str | None = None
    operation: str | None = None
    method: str | None = None
    path: str | None = None
    api_key: str | None = None
    model: str | None = None
    body: Any = None


def lookup(document: Any, dotted: str) -> Any:
    """`steps.0.input.model` → document["steps"][0]["input"]["model"]; a missing step gives `_MISSING`."""
    current = document
    for part in dotted.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


_MISSING = object()


@dataclass
class Rule:
    name: str
    match: dict[str, Any]
    when: dict[str, Any]
    do: dict[str, Any]
    matched: int = 0
    fired: int = 0
    origin: float = 0.0  # clock time the rule was added; windows count from here

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default_name: str) -> Rule:
        if not isinstance(raw, Mapping):
            raise PlanError(f"{default_name}: a rule is an object with match / when / do")
        name = str(raw.get("name") or default_name)
        unknown = set(raw) - {"name", "match", "when", "do"}
        if unknown:
            raise PlanError(f"{name}: unknown keys {sorted(unknown)} (a rule has name, match, when, do)")
        match, when, do = dict(raw.get("match") or {}), dict(raw.get("when") or {}), dict(raw.get("do") or {})
        if set(match) - MATCH_KEYS:
            raise PlanError(f"{name}: unknown match keys {sorted(set(match) - MATCH_KEYS)}; use {sorted(MATCH_KEYS)}")
        if set(when) - WHEN_KEYS:
            raise PlanError(f"{name}: unknown when keys {sorted(set(when) - WHEN_KEYS)}; use {sorted(WHEN_KEYS)}")
        if not do:
            raise PlanError(f"{name}: `do` says what happens and cannot be empty")
        for key in ("after", "times", "every"):
            value = when.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise PlanError(f"{name}: when.{key} must be a whole number ≥ 0")
        probability = when.get("probability")
        if probability is not None and not (isinstance(probability, (int, float)) and 0 <= probability <= 1):
            raise PlanError(f"{name}: when.probability must be between 0 and 1")
        window = when.get("window")
        if window is not None and not (
            isinstance(window, list) and len(window) == 2 and all(isinstance(x, (int, float)) for x in window)
        ):
            raise PlanError(f"{name}: when.window must be [from, to] in clock seconds")
        if "body" in match and not isinstance(match["body"], Mapping):
            raise PlanError(f"{name}: match.body maps dotted paths to values")
        return cls(name, match, when, do)

    def matches(self, facts: RequestFacts) -> bool:
        for key, wanted in self.match.items():
            if key == "body":
                if any(lookup(facts.body, path) != value for path, value in wanted.items()):
                    return False
                continue
            actual = getattr(facts, key)
            if key == "path":
                if actual is None or not fnmatch.fnmatchcase(actual, str(wanted)):
                    return False
            elif key == "method":
                if actual is None or actual.upper() != str(wanted).upper():
                    return False
            elif isinstance(wanted, list):
                if actual not in wanted:
                    return False
            elif actual != wanted:
                return False
        return True

    def due(self, now: float, rng: random.Random) -> bool:
        """Called once per matching request, in order; counts the match and says whether to fire."""
        self.matched += 1
        when = self.when
        if self.matched <= int(when.get("after", 0)):
            return False
        if "times" in when and self.fired >= int(when["times"]):
            return False
        every = int(when.get("every", 1) or 1)
        if (self.matched - int(when.get("after", 0))) % every:  # every Nth: the Nth, 2Nth, … match
            return False
        window = when.get("window")
        if window is not None and not (window[0] <= now - self.origin < window[1]):
            return False
        probability = when.get("probability")
        # Draw for every eligible match, fired or not, so the sequence depends only on the seed and the requests.
        if probability is not None and rng.random() >= float(probability):
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "match": self.match, "when": self.when, "do": self.do,
                "matched": self.matched, "fired": self.fired, "origin": self.origin}


@dataclass
class FaultPlan:
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    check: Callable[[Mapping[str, Any], str], None] = lambda do, rule: None  # validates each `do`

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults:{self.seed}")

    def add(self, raw_rules: Iterable[Mapping[str, Any]], source: str = "rule", now: float = 0.0) -> list[Rule]:
        """Parse and check every rule first, so a bad one adds none of them."""
        parsed = [Rule.parse(raw, f"{source}-{len(self.rules) + i + 1}") for i, raw in enumerate(raw_rules)]
        for rule in parsed:
            self.check(rule.do, rule.name)
            rule.origin = now
        self.rules.extend(parsed)
        return parsed

    def clear(self, seed: int | None = None) -> None:
        self.rules.clear()
        if seed is not None:
            self.seed = seed
        self._rng = random.Random(f"faults:{self.seed}")

    def fire(self, facts: RequestFacts, now: float) -> list[Rule]:
        """Every rule that fires for this request, in plan order."""
        return [rule for rule in self.rules if rule.matches(facts) and rule.due(now, self._rng)]

    def describe(self) -> list[dict[str, Any]]:
        return [rule.describe() for rule in self.rules]

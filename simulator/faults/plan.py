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

from simulator import checks
from simulator.checks import Invalid

MATCH_KEYS = frozenset({"provider", "operation", "method", "path", "api_key", "model", "body"})
WHEN_KEYS = frozenset({"after", "times", "every", "window", "probability"})
RULE_KEYS = frozenset({"name", "match", "when", "do"})
# Counts beyond this are for ever in any test; windows are clock seconds since the rule was added.
MAX_COUNT = 1_000_000_000
MAX_WINDOW = 10 * 365 * 86400.0
# Every request is matched against every rule in force: a plan is a rehearsal, not a rule base.
MAX_RULES = 1000


class PlanError(Invalid):
    """A rule that cannot be understood; the message names the field (`rules[0].when.times`)."""


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


def _check_match(match: Mapping[str, Any], field: str) -> None:
    for key, wanted in match.items():
        where = checks.join(field, key)
        if key == "body":
            for path in checks.mapping(wanted, where, None, "an object of dotted paths to values"):
                checks.text(path, where, max_length=500, empty=False)
        else:
            checks.texts(wanted, where, max_length=2000)


def _check_when(when: Mapping[str, Any], field: str) -> None:
    for key in ("after", "times", "every"):
        if when.get(key) is not None:
            checks.number(when[key], checks.join(field, key), low=0, high=MAX_COUNT, integer=True)
    if when.get("probability") is not None:
        checks.number(when["probability"], checks.join(field, "probability"), low=0, high=1)
    window = when.get("window")
    if window is not None:
        where = checks.join(field, "window")
        if not (isinstance(window, list) and len(window) == 2):
            raise checks.refuse(where, f"must be [from, to] in clock seconds, not {checks.quote(window)}")
        start, end = (checks.number(bound, checks.join(where, i), low=0, high=MAX_WINDOW, unit="seconds")
                      for i, bound in enumerate(window))
        if end < start:
            raise checks.refuse(where, f"must be [from, to] with from ≤ to, not {window}")


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
    def parse(cls, raw: Mapping[str, Any], default_name: str, field: str = "rule") -> Rule:
        """A rule from plain data, every part checked (the `do` part by the plan's own check)."""
        try:
            name = checks.named(raw, field, RULE_KEYS, "a rule (match / when / do)", default_name)
            match, when, do = (
                dict(checks.mapping({} if raw.get(part) is None else raw[part], checks.join(field, part), keys, part))
                for part, keys in (("match", MATCH_KEYS), ("when", WHEN_KEYS), ("do", None))
            )
            _check_match(match, checks.join(field, "match"))
            _check_when(when, checks.join(field, "when"))
        except PlanError:
            raise
        except Invalid as exc:
            raise PlanError(str(exc), exc.field) from None
        if not do:
            raise PlanError(f"{checks.join(field, 'do')}: `do` says what happens and cannot be empty",
                            checks.join(field, "do"))
        return cls(name, match, when, do)

    def matches(self, facts: RequestFacts) -> bool:
        for key, wanted in self.match.items():
            if key == "body":
                if any(lookup(facts.body, path) != value for path, value in wanted.items()):
                    return False
                continue
            actual = getattr(facts, key)
            if actual is None:
                return False
            choices = wanted if isinstance(wanted, list) else [wanted]  # a list means any of
            if key == "path":
                if not any(fnmatch.fnmatchcase(actual, choice) for choice in choices):
                    return False
            elif key == "method":
                if actual.upper() not in {choice.upper() for choice in choices}:
                    return False
            elif actual not in choices:
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
    # Validates each `do`, given its field (`rules[0].do`), the rule's match and the providers a rule without
    # `match.provider` reaches; the plan itself never interprets `do`.
    check: Callable[[Mapping[str, Any], str, Mapping[str, Any], list[str] | None], None] = (
        lambda do, field, match, providers: None
    )

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults:{self.seed}")

    def add(
        self, raw_rules: Iterable[Mapping[str, Any]], source: str = "rule", now: float = 0.0, field: str = "rules",
        providers: list[str] | None = None,
    ) -> list[Rule]:
        """Parse and check every rule first, so a bad one adds none of them. `providers` are those a rule without
        `match.provider` reaches (the served ones; None: every known provider)."""
        raw_rules = list(raw_rules)
        if len(self.rules) + len(raw_rules) > MAX_RULES:
            raise PlanError(f"{field}: at most {MAX_RULES} rules may be in force, and {len(self.rules)} already are",
                            field)
        parsed = []
        for i, raw in enumerate(raw_rules):
            where = f"{field}[{i}]"
            rule = Rule.parse(raw, f"{source}-{len(self.rules) + i + 1}", where)
            try:
                self.check(rule.do, checks.join(where, "do"), rule.match, providers)
            except PlanError:
                raise
            except Invalid as exc:
                raise PlanError(str(exc), exc.field) from None
            rule.origin = now
            parsed.append(rule)
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

"""Rate limits per provider and API key: requests per window and tasks in flight, recovering on the clock."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator import checks
from simulator.checks import Invalid
from simulator.faults.plan import MAX_COUNT, MAX_WINDOW, PlanError, RequestFacts
from simulator.options import known_provider

LIMIT_KEYS = frozenset({"provider", "api_key", "operations", "requests", "per", "concurrent", "name"})
# Every request is checked against every limit in force.
MAX_LIMITS = 100


@dataclass
class Limit:
    """`requests` per `per` seconds (sliding window) and/or at most `concurrent` unfinished tasks."""

    name: str
    provider: str | None = None
    api_key: str | None = None
    operations: list[str] | None = None
    requests: int | None = None
    per: float = 60.0
    concurrent: int | None = None
    _windows: dict[str | None, deque[float]] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default_name: str, field: str = "limit") -> Limit:
        try:
            name = checks.named(raw, field, LIMIT_KEYS, "a rate limit", default_name)
            provider = raw.get("provider")
            if provider is not None:
                known_provider(provider, checks.join(field, "provider"))
            api_key = raw.get("api_key")
            if api_key is not None:
                checks.text(api_key, checks.join(field, "api_key"), max_length=4096)
            requests, concurrent, per = raw.get("requests"), raw.get("concurrent"), raw.get("per", 60)
            if requests is None and concurrent is None:
                raise checks.refuse(field, "give `requests` (per `per` seconds) and/or `concurrent`")
            if requests is not None:
                checks.number(requests, checks.join(field, "requests"), low=0, high=MAX_COUNT, integer=True)
            if concurrent is not None:
                checks.number(concurrent, checks.join(field, "concurrent"), low=0, high=MAX_COUNT, integer=True)
            per = checks.number(60 if per is None else per, checks.join(field, "per"), low=0, high=MAX_WINDOW,
                                above=True, unit="seconds")
            operations = raw.get("operations")
            if operations is not None:
                checks.items(operations, checks.join(field, "operations"), max_items=1000,
                             what="a list of operation names")
                for i, operation in enumerate(operations):
                    checks.text(operation, checks.join(checks.join(field, "operations"), i), max_length=200)
        except PlanError:
            raise
        except Invalid as exc:
            raise PlanError(str(exc), exc.field) from None
        return cls(name, provider, api_key, operations, requests, float(per), concurrent)

    def applies(self, facts: RequestFacts, submits: bool) -> bool:
        if self.provider is not None and facts.provider != self.provider:
            return False
        if self.api_key is not None and facts.api_key != self.api_key:
            return False
        if self.operations is not None:
            return facts.operation in self.operations
        return self.requests is not None or submits  # a bare concurrency limit guards task creation

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "provider": self.provider, "api_key": self.api_key, "operations": self.operations,
            "requests": self.requests, "per": self.per, "concurrent": self.concurrent,
        }


@dataclass(frozen=True)
class Verdict:
    """A refusal: which limit, how long until a retry can succeed, and what the headers should say."""

    limit: Limit
    retry_after: int
    reset_at: float
    reason: str
    kind: str  # "requests" (a full window) or "concurrent" (too many tasks in flight)

    @property
    def value(self) -> int:
        return int((self.limit.requests if self.kind == "requests" else self.limit.concurrent) or 0)


class RateLimits:
    def __init__(self) -> None:
        self.limits: list[Limit] = []

    def set(self, raw_limits: Iterable[Mapping[str, Any]], field: str = "limits") -> list[Limit]:
        """Replace every limit; all are checked first, so a bad one changes nothing."""
        raw_limits = list(raw_limits)
        if len(raw_limits) > MAX_LIMITS:
            raise PlanError(f"{field}: at most {MAX_LIMITS} limits, not {len(raw_limits)}", field)
        parsed = [Limit.parse(raw, f"limit-{i + 1}", f"{field}[{i}]") for i, raw in enumerate(raw_limits)]
        self.limits = parsed
        return parsed

    def clear(self) -> None:
        self.limits = []

    def check(
        self,
        facts: RequestFacts,
        now: float,
        submits: bool,
        in_flight: Callable[[], list[float]],
    ) -> Verdict | None:
        """None if the request may go ahead (and it is counted); else the first limit it breaks.

        `submits` says whether the request creates work; `in_flight()` gives the moments the key's
        unfinished tasks will finish, for concurrency limits.
        """
        applicable = [limit for limit in self.limits if limit.applies(facts, submits)]
        for limit in applicable:
            if limit.requests is not None:
                window = limit._windows.setdefault(facts.api_key, deque())
                while window and window[0] <= now - limit.per:
                    window.popleft()
                if len(window) >= limit.requests:
                    reset_at = window[0] + limit.per
                    return Verdict(limit, max(1, math.ceil(reset_at - now)), reset_at,
                                   f"{limit.requests} requests per {limit.per:g} s", "requests")
            if limit.concurrent is not None and submits:
                finishing = sorted(in_flight())
                if len(finishing) >= limit.concurrent:
                    reset_at = finishing[len(finishing) - limit.concurrent]
                    wait = reset_at - now if math.isfinite(reset_at) else limit.per
                    return Verdict(limit, max(1, math.ceil(wait)), now + wait,
                                   f"{limit.concurrent} tasks in flight", "concurrent")
        for limit in applicable:
            if limit.requests is not None:
                limit._windows.setdefault(facts.api_key, deque()).append(now)
        return None

    def remaining(self, facts: RequestFacts, now: float) -> dict[str, int]:
        """Requests left in each applicable window (for X-RateLimit-Remaining style headers)."""
        out = {}
        for limit in self.limits:
            if limit.requests is not None and limit.applies(facts, False):
                window = limit._windows.get(facts.api_key, deque())
                out[limit.name] = max(0, limit.requests - sum(1 for t in window if t > now - limit.per))
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [limit.describe() for limit in self.limits]

    def windows(self, now: float) -> list[dict[str, Any]]:
        """Each request window as it stands: per limit and API key, the requests counted in the last `per`
        seconds and when the oldest of them leaves the window."""
        out = []
        for limit in self.limits:
            for api_key, window in limit._windows.items():
                recent = [t for t in window if t > now - limit.per]
                if recent:
                    out.append({"limit": limit.name, "api_key": api_key, "used": len(recent),
                                "requests": limit.requests, "per": limit.per, "frees_at": recent[0] + limit.per})
        return out

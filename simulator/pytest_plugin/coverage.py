"""Contract coverage: what a run's tests made each provider do, gathered from each test's journal.

Per provider: the routes (operations) called, out of those the provider serves; the statuses answered;
the error kinds met (forced by fault rules or limits, schema violations, or the provider's own refusals);
the lifecycle modes the client used (how it waited: wait / sync / async / poll / callback …, matched by
the `lifecycle` rules in `documentedRequest` of each `provider.json`); webhook delivery outcomes; and how
the tasks ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.faults.errors import DEFAULT_ERRORS
from simulator.options import provider_data
from simulator.sim import Simulator

_ABSENT = object()


@dataclass(frozen=True)
class Catalogue:
    """What a provider offers, for reading its journal entries."""

    operations: tuple[str, ...]
    lifecycle: Mapping[str, Mapping[str, Any]]
    kinds_by_status: Mapping[int, str]

    @classmethod
    def of(cls, sim: Simulator) -> dict[str, Catalogue]:
        catalogues = {}
        for slug, provider in sim.providers.items():
            names = [getattr(route, "name", "") or "" for route in provider.routes()]
            operations = tuple(dict.fromkeys(
                name.partition(":")[2] for name in names if name.startswith(f"{slug}:")
            ))
            data = provider_data(slug)
            # The provider's own statuses for each error kind (422 is CRun's bad_request, 455 its 503 …), the
            # generic table filling the gaps; the first kind listed for a status names it.
            kinds: dict[int, str] = {}
            for table in (data.get("faults", {}), DEFAULT_ERRORS):
                for kind, spec in table.items():
                    if isinstance(spec, Mapping) and isinstance(spec.get("status"), int):
                        kinds.setdefault(int(spec["status"]), kind)
            lifecycle = data.get("documentedRequest", {}).get("lifecycle", {})
            catalogues[slug] = cls(operations, lifecycle, kinds)
        return catalogues


def _at(document: Any, dotted: str) -> Any:
    """`steps.0.input.model` in a body; a JSON null counts as absent, as it does for the providers."""
    current = document
    for part in dotted.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _ABSENT
    return _ABSENT if current is None else current


def _header(entry: Mapping[str, Any], name: str) -> Any:
    headers = {key.lower(): value for key, value in entry.get("request_headers", {}).items()}
    return headers.get(name.lower(), _ABSENT)


def _query(entry: Mapping[str, Any], name: str) -> Any:
    values = entry.get("query", {}).get(name)
    return values[0] if values else _ABSENT


def _holds(entry: Mapping[str, Any], item: Any, key: str, want: Any) -> bool:
    """`want`: true = present, false = absent, a list = one of these values (null in it = absent)."""
    source, _, name = key.partition(".")
    if source == "header":
        found = _header(entry, name)
    elif source == "query":
        found = _query(entry, name)
    else:
        found = _at(item, name)
    if want is True:
        return found is not _ABSENT
    if want is False:
        return found is _ABSENT
    if found is _ABSENT:
        return None in want
    # Header and query values are text on the wire; compare them as the server would parse them.
    return any(str(found).lower() == str(option).lower() for option in want if option is not None)


def lifecycle_modes(entry: Mapping[str, Any], rules: Mapping[str, Mapping[str, Any]]) -> list[str]:
    modes = []
    for mode, rule in rules.items():
        operations = rule.get("operation", [])
        if entry.get("operation") not in ([operations] if isinstance(operations, str) else operations):
            continue
        body = entry.get("request_body")
        # `items`: the body is an array of tasks (Runware) and one task must meet every condition.
        items = (body if isinstance(body, list) else []) if rule.get("items") else [body]
        when = rule.get("when", {})
        if any(all(_holds(entry, item, key, want) for key, want in when.items()) for item in items):
            modes.append(mode)
    return modes


def error_kinds(entry: Mapping[str, Any], catalogue: Catalogue | None) -> list[str]:
    kinds = []
    for fired in entry.get("faults", []):
        do = fired.get("do") or {}
        if "limit" in fired:
            kinds.append(f"limit:{fired.get('reason') or fired['limit']}")
        elif "error" in do:
            kinds.append(f"forced:{do['error'] if do['error'] != 'http' else do.get('status')}")
        else:
            kinds += [f"{key}:{do[key]}" for key in ("task", "network", "webhook") if key in do]
    status = entry.get("status")
    if kinds or not isinstance(status, int) or status < 400:
        return kinds
    if entry.get("violations"):
        return ["validation"]
    known = catalogue.kinds_by_status.get(status) if catalogue else None
    return [known or f"http {status}"]


@dataclass
class ProviderCoverage:
    routes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lifecycle: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    tests: int = 0


class Coverage:
    def __init__(self) -> None:
        self.providers: dict[str, ProviderCoverage] = {}
        self.catalogues: dict[str, Catalogue] = {}
        self.tests = 0

    def add(self, entries: Iterable[Mapping[str, Any]], tasks: Iterable[Mapping[str, Any]],
            catalogues: Mapping[str, Catalogue]) -> None:
        """One test's journal and tasks, read before the next test resets the simulator."""
        self.tests += 1
        self.catalogues.update(catalogues)
        touched: set[str] = set()
        for entry in entries:
            slug = entry.get("provider")
            if slug is None:
                continue
            seen = self.providers.setdefault(slug, ProviderCoverage())
            touched.add(slug)
            catalogue = catalogues.get(slug)
            if entry.get("kind") == "webhook":
                seen.webhooks[str(entry.get("detail", {}).get("outcome", "sent"))] += 1
            elif entry.get("kind") == "http":
                seen.routes[str(entry.get("operation"))] += 1
                if entry.get("status") is not None:
                    seen.statuses[int(entry["status"])] += 1
                seen.errors.update(error_kinds(entry, catalogue))
                if isinstance(entry.get("status"), int) and entry["status"] < 400:  # a refused request ran nothing
                    seen.lifecycle.update(lifecycle_modes(entry, catalogue.lifecycle if catalogue else {}))
            for fired in entry.get("faults", []) if entry.get("kind") == "event" else ():
                seen.errors[f"webhook:{(fired.get('do') or {}).get('webhook', 'rule')}"] += 1
        for task in tasks:
            slug = task.get("provider")
            if slug in self.providers:
                failure = task.get("failure") or {}
                ending = task.get("phase", "?")
                seen = self.providers[slug]
                seen.tasks[f"{ending} ({failure['kind']})" if failure.get("kind") else str(ending)] += 1
        for slug in touched:
            self.providers[slug].tests += 1

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tests": self.tests, "providers": {}}
        for slug, seen in sorted(self.providers.items()):
            known = self.catalogues[slug].operations if slug in self.catalogues else ()
            out["providers"][slug] = {
                "tests": seen.tests,
                "routes": dict(seen.routes),
                "routes_not_exercised": [op for op in known if op not in seen.routes],
                "statuses": {str(status): count for status, count in sorted(seen.statuses.items())},
                "errors": dict(seen.errors),
                "lifecycle": dict(seen.lifecycle),
                "lifecycle_not_exercised": [
                    mode for mode in self.catalogues[slug].lifecycle if mode not in seen.lifecycle
                ] if slug in self.catalogues else [],
                "webhooks": dict(seen.webhooks),
                "tasks": dict(seen.tasks),
            }
        out["providers_not_exercised"] = sorted(set(self.catalogues) - set(self.providers))
        return out

    def render(self) -> list[str]:
        data = self.as_dict()
        lines = [f"{data['tests']} test(s) used the simulator"]
        for slug, seen in data["providers"].items():
            known = len(seen["routes"]) + len(seen["routes_not_exercised"])
            lines += [
                f"{slug} ({seen['tests']} test(s))",
                f"  routes     {len(seen['routes'])}/{known}: {_counts(seen['routes'])}",
            ]
            if seen["routes_not_exercised"]:
                lines.append(f"             not exercised: {', '.join(seen['routes_not_exercised'])}")
            lines.append(f"  statuses   {_counts(seen['statuses'])}")
            lines.append(f"  errors     {_counts(seen['errors'])}")
            lines.append(f"  lifecycle  {_counts(seen['lifecycle'])}")
            if seen["lifecycle_not_exercised"]:
                lines.append(f"             not exercised: {', '.join(seen['lifecycle_not_exercised'])}")
            lines.append(f"  webhooks   {_counts(seen['webhooks'])}")
            lines.append(f"  tasks      {_counts(seen['tasks'])}")
        if data["providers_not_exercised"]:
            lines.append(f"not exercised: {', '.join(data['providers_not_exercised'])}")
        return lines


def _counts(counter: Mapping[Any, int]) -> str:
    if not counter:
        return "—"
    return ", ".join(f"{key} ({count})" for key, count in counter.items())

"""Scenario files: one YAML document combining fault rules, rate limits, wallets, options and moderation.

    # <header comment: what the scenario rehearses and what a client should do about it>
    name: rate-limit-storm
    options:      {civitai: {url_ttl_seconds: 30}}          # named provider options
    wallets:      [{provider: crun, balance: 0}]            # no api_key: every key's starting balance
    rate_limits:  [{requests: 5, per: 10}]                  # see simulator/faults/limits.py
    moderation:   {patterns: ["(?i)forbidden"]}
    faults:       [{match: {...}, when: {...}, do: {...}}]  # see simulator/faults/plan.py

Shipped scenarios live in `contracts/scenarios/<name>.yaml`; `serve --scenario NAME|FILE` and the
control plane load them. A loaded scenario survives `POST /_sim/reset` (its counters start again).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator import data_formats
from simulator.faults.actions import check_action
from simulator.faults.limits import RateLimits
from simulator.faults.plan import FaultPlan, PlanError
from simulator.options import ProviderOptions
from simulator.providers import REGISTRY
from simulator.resources import contracts_dir

if TYPE_CHECKING:
    from simulator.sim import Simulator

FORMAT = "scenario"  # schemas/_formats/scenario.json: the keys, wallets, moderation and options tables


def scenarios_dir() -> Path:
    return contracts_dir() / "scenarios"


def header(text: str) -> str:
    """The leading comment block, which is the scenario's documentation."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.removeprefix("#").removeprefix(" "))
    return "\n".join(lines).strip()


def shipped() -> list[dict[str, str]]:
    return [
        {"name": path.stem, "description": header(path.read_text(encoding="utf-8"))}
        for path in sorted(scenarios_dir().glob("*.yaml"))
    ]


def parse(text: str, source: str) -> dict[str, Any]:
    return {"name": source, **data_formats.load_yaml(text, FORMAT, source, PlanError)}


def load(name_or_file: str) -> dict[str, Any]:
    """A shipped scenario by name, or a YAML file by path."""
    path = Path(name_or_file)
    if not path.is_file():
        path = scenarios_dir() / f"{name_or_file}.yaml"
    if not path.is_file():
        names = ", ".join(s["name"] for s in shipped())
        raise PlanError(f"no scenario file {name_or_file!r} and no shipped scenario of that name (shipped: {names})")
    return parse(path.read_text(encoding="utf-8"), path.stem)


def _served(sim: Simulator, slug: str, name: str) -> list[str]:
    """The served slugs a scenario entry means: `*` is all of them; a known provider that is not being
    served is skipped (a shipped scenario covers every provider), an unknown one is a mistake."""
    if slug == "*":
        return list(sim.providers)
    if slug not in REGISTRY:
        raise PlanError(f"{name}: unknown provider {slug!r}; known: {sorted(REGISTRY)}")
    return [slug] if slug in sim.providers else []


def check(sim: Simulator, scenario: Mapping[str, Any], name: str) -> None:
    """Dry run of every part on throwaway state, so a bad scenario changes nothing."""
    for slug, values in (scenario.get("options") or {}).items():
        for served in _served(sim, slug, name):
            trial = ProviderOptions(served)
            for option, value in values.items():
                trial.set(option, value)
    for wallet in scenario.get("wallets") or []:
        _served(sim, str(wallet["provider"]), name)
    RateLimits().set(scenario.get("rate_limits") or [])
    FaultPlan(check=check_action).add(scenario.get("faults") or [], source=name)


def apply(sim: Simulator, scenario: Mapping[str, Any]) -> None:
    """Put the scenario into force on the simulator as it is now (checked before anything changes)."""
    name = str(scenario.get("name", "scenario"))
    engine = sim.engine
    check(sim, scenario, name)
    for slug, values in (scenario.get("options") or {}).items():
        for served in _served(sim, slug, name):
            for option, value in values.items():
                sim.provider(served).options.set(option, value)
    for wallet in scenario.get("wallets") or []:
        for served in _served(sim, str(wallet["provider"]), name):
            if wallet.get("api_key") in (None, "*"):
                engine.wallets.set_default(served, float(wallet["balance"]))
            else:
                engine.wallets.set_balance(served, str(wallet["api_key"]), float(wallet["balance"]))
    if scenario.get("rate_limits"):
        engine.limits.set([*engine.limits.describe(), *scenario["rate_limits"]])
    moderation = scenario.get("moderation") or {}
    if "patterns" in moderation:
        engine.moderation.patterns = [*engine.moderation.patterns, *moderation["patterns"]]
    engine.faults.add(scenario.get("faults") or [], source=name, now=engine.now())

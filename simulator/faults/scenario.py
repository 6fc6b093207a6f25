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

import yaml

from simulator import checks, data_formats
from simulator.checks import Invalid
from simulator.engine.moderation import Moderation
from simulator.engine.wallets import check_balance
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
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"{source}: not valid YAML: {exc}", source) from exc
    except RecursionError:
        raise PlanError(f"{source}: not valid YAML: nested too deep", source) from None
    try:
        # YAML can hold what JSON cannot (dates, aliases that multiply); a scenario is served back as JSON.
        # Checked before the format, whose validator would walk every multiplied alias.
        checks.plain(document, source)
    except Invalid as exc:
        raise PlanError(str(exc), exc.field) from None
    data_formats.check(document, FORMAT, source, PlanError)
    return {"name": source, **document}


def load(name_or_file: str) -> dict[str, Any]:
    """A shipped scenario by name, or a YAML file by path."""
    path = Path(name_or_file)
    if path.is_file():
        return parse(path.read_text(encoding="utf-8"), path.stem)
    if name_or_file not in _shipped_names():
        raise PlanError(f"no scenario file {name_or_file!r} and no shipped scenario of that name "
                        f"(shipped: {', '.join(_shipped_names())})")
    return load_shipped(name_or_file)


def load_shipped(name: str) -> dict[str, Any]:
    """A shipped scenario by name only: what the control plane may load (it never reads the server's files)."""
    if name not in _shipped_names():
        raise PlanError(f"name: no shipped scenario {checks.quote(name)} (shipped: {', '.join(_shipped_names())}); "
                        'send a scenario file as {"yaml": its text}', "name")
    return parse((scenarios_dir() / f"{name}.yaml").read_text(encoding="utf-8"), name)


def _shipped_names() -> list[str]:
    return sorted(path.stem for path in scenarios_dir().glob("*.yaml"))


def _served(sim: Simulator, slug: str, name: str) -> list[str]:
    """The served slugs a scenario entry means: `*` is all of them; a known provider that is not being
    served is skipped (a shipped scenario covers every provider), an unknown one is a mistake."""
    if slug == "*":
        return list(sim.providers)
    if slug not in REGISTRY:
        raise PlanError(f"{name}: unknown provider {slug!r}; known: {sorted(REGISTRY)}")
    return [slug] if slug in sim.providers else []


def _wallets(scenario: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    wallets = checks.items(scenario.get("wallets") or [], f"{name}.wallets", max_items=1000)
    for i, wallet in enumerate(wallets):
        where = f"{name}.wallets[{i}]"
        # Its keys follow the format (checked when the file was read); their values are checked here.
        checks.text(wallet["provider"], f"{where}.provider", max_length=200)
        check_balance(wallet["balance"], f"{where}.balance")
        if wallet.get("api_key") is not None:
            checks.text(wallet["api_key"], f"{where}.api_key", max_length=4096)
    return wallets


def check(sim: Simulator, scenario: Mapping[str, Any], name: str) -> None:
    """Dry run of every part on throwaway copies of the simulator's state, so a bad scenario changes nothing
    (counted together with what is in force: a scenario that would pass a bound is refused whole)."""
    engine = sim.engine
    try:
        options = checks.mapping(scenario.get("options") or {}, f"{name}.options", None, "an object of providers")
        for slug, values in options.items():
            checks.mapping(values, f"{name}.options.{slug}", None, "an object of option names to values")
            for served in _served(sim, slug, name):
                ProviderOptions(served).update(values, f"{name}.options.{slug}")
        for wallet in _wallets(scenario, name):
            _served(sim, str(wallet["provider"]), name)
        RateLimits().set([*engine.limits.describe(), *(scenario.get("rate_limits") or [])], f"{name}.rate_limits")
        moderation = checks.mapping(scenario.get("moderation") or {}, f"{name}.moderation", {"patterns"},
                                    "moderation")
        Moderation.compile(moderation.get("patterns") or [], f"{name}.moderation.patterns",
                           len(engine.moderation.patterns))
        FaultPlan(rules=list(engine.faults.rules), check=check_action).add(
            scenario.get("faults") or [], source=name, field=f"{name}.faults", providers=list(sim.providers))
    except PlanError:
        raise
    except Invalid as exc:
        raise PlanError(str(exc), exc.field) from None


def apply(sim: Simulator, scenario: Mapping[str, Any]) -> None:
    """Put the scenario into force on the simulator as it is now (checked before anything changes)."""
    name = str(scenario.get("name", "scenario"))
    engine = sim.engine
    check(sim, scenario, name)
    for slug, values in (scenario.get("options") or {}).items():
        for served in _served(sim, slug, name):
            sim.provider(served).options.update(values)
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
        engine.moderation.set([*engine.moderation.patterns, *moderation["patterns"]])
    engine.faults.add(scenario.get("faults") or [], source=name, now=engine.now(), field=f"{name}.faults",
                      providers=list(sim.providers))

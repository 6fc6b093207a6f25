"""`--nanobanana-rehearse=PROVIDER`: the rehearsals replace the collected tests, each run against the user's
adapter on a freshly reset simulator, judged, and summed up in the scorecard."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from simulator.pytest_plugin.rehearsals.adapter import Adapter, attribute
from simulator.pytest_plugin.rehearsals.checks import judge
from simulator.pytest_plugin.rehearsals.evidence import Check, Evidence, Outcome, client_requests
from simulator.pytest_plugin.rehearsals.files import RECEIVER, Rehearsal, RehearsalError, shipped
from simulator.pytest_plugin.rehearsals.guidance import Guidance
from simulator.pytest_plugin.rehearsals.scorecard import Scorecard, Verdict
from simulator.pytest_plugin.settings import MARKER, Settings, SettingsError

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

ADAPTER_FIXTURE = "nanobanana_adapter"
PROMPT = "a banana astronaut"

_SCORECARD: pytest.StashKey[Scorecard] = pytest.StashKey()
_REHEARSAL: pytest.StashKey[tuple[Rehearsal, str]] = pytest.StashKey()
_MODULES: pytest.StashKey[list[pytest.Module]] = pytest.StashKey()


def note_module(module: pytest.Module) -> None:
    """Remember each test module as collection reaches it (items alone would miss a module that holds only
    the adapter fixture)."""
    module.config.stash.setdefault(_MODULES, []).append(module)


def _anchors(session: pytest.Session, items: Sequence[pytest.Item]) -> list[pytest.Module]:
    """The test modules to hang rehearsals from: for each distinct `nanobanana_adapter` fixture, the first
    collected module that sees it. Hanging them there gives them the user's fixture, conftest and markers,
    and node IDs that read like the user's own tests."""
    manager = session._fixturemanager  # pytest's own resolver: visibility follows conftests and overrides exactly
    modules = [*session.config.stash.get(_MODULES, []), *(item.getparent(pytest.Module) for item in items)]
    anchors: dict[int, pytest.Module] = {}
    for module in modules:
        if module is None:
            continue
        definitions = manager.getfixturedefs(ADAPTER_FIXTURE, module)
        if definitions:
            anchors.setdefault(id(definitions[-1]), module)  # the last one is the closest override
    return list(anchors.values())


def collect(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Replace the collected tests with one item per (adapter, provider, rehearsal)."""
    from simulator.providers import REGISTRY

    slugs = list(dict.fromkeys(config.option.nanobanana_rehearse))
    unknown = [slug for slug in slugs if slug not in REGISTRY]
    if unknown:
        raise pytest.UsageError(f"--nanobanana-rehearse: unknown provider {unknown}; use one of {sorted(REGISTRY)}")
    anchors = _anchors(session, items)
    if not anchors:
        raise pytest.UsageError(
            f"--nanobanana-rehearse: no collected test module sees a `{ADAPTER_FIXTURE}` fixture; define it in a "
            "test module or in a conftest.py next to one"
        )
    try:
        rehearsals = shipped()
        for slug in slugs:
            Guidance.load(slug)
    except RehearsalError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_SCORECARD] = Scorecard()
    generated: list[pytest.Item] = []
    for anchor, slug, rehearsal in itertools.product(anchors, slugs, rehearsals):
        item = pytest.Function.from_parent(anchor, name=f"rehearse[{slug}-{rehearsal.name}]", callobj=run_rehearsal)
        item.stash[_REHEARSAL] = (rehearsal, slug)
        generated.append(item)
    # The user's own tests are not what this run is for; they are reported as deselected, as with -k.
    config.hook.pytest_deselected(items=list(items))
    items[:] = generated


def _settings(item: pytest.Item, rehearsal: Rehearsal, slug: str) -> Settings:
    """The user's settings (mode, seed, strict …) with the rehearsal's provider, clock, scenario and options."""
    settings = Settings.from_config(item.config).checked().with_markers(item.iter_markers(MARKER))
    options: dict[str, dict[str, Any]] = {name: dict(values) for name, values in settings.options.items()}
    for name, values in rehearsal.options.items():
        options.setdefault(name, {}).update(values)
    # A virtual clock always: the rehearsals wait minutes of provider time, and the tick keeps clients that
    # never sleep moving. The rehearsal's own scenarios replace any the command line asked for.
    return replace(settings, provider=slug, scenarios=rehearsal.scenarios, clock="autojump", tick=rehearsal.tick,
                   options=options).checked()


def _adapter_options(rehearsal: Rehearsal, sim: Nanobanana) -> tuple[dict[str, Any], Any]:
    receiver = None
    options: dict[str, Any] = {}
    for name, value in rehearsal.adapter.items():
        if value == RECEIVER:
            receiver = receiver or sim.receiver()
            value = receiver.url
        options[name] = value
    return options, receiver


def run_rehearsal(request: pytest.FixtureRequest, nanobanana_adapter: Adapter) -> None:
    """One rehearsal against the adapter: arrange the failure, run one generation, judge the journal."""
    from simulator.control_client import ControlError
    from simulator.pytest_plugin import _collect_coverage, _pool
    from simulator.pytest_plugin.session import Nanobanana

    item = request.node
    rehearsal, slug = item.stash[_REHEARSAL]
    scorecard = item.config.stash[_SCORECARD]
    where = item.parent.nodeid if item.parent is not None else ""
    # Failed until judged: if the runner itself breaks, the scorecard must not show the rehearsal as passed.
    verdict = Verdict(rehearsal, slug, where, "failed", [Check("runner", False, "the rehearsal did not run to the "
                                                               "end (see the test's error)")])
    scorecard.verdicts.append(verdict)
    started = time.perf_counter()
    try:
        guidance = Guidance.load(slug)
        lacking = [note for need in rehearsal.requires if (note := guidance.lacks(need))]
        if lacking:
            verdict.status, verdict.reason = "skipped", f"n/a for {slug}: {lacking[0]}"
            pytest.skip(verdict.reason)
        try:
            settings = _settings(item, rehearsal, slug)
        except SettingsError as exc:
            verdict.status, verdict.checks = "failed", [Check("settings", False, str(exc))]
            pytest.fail(str(exc), pytrace=False)
        sim = Nanobanana(_pool(item.config).get(settings.mode, False), settings)
        try:
            sim.start()
            sim.control.add_faults(*(guidance.expand(rule) for rule in rehearsal.faults))
        except (KeyError, ControlError) as exc:
            sim.finish()
            message = f"nanobanana rehearsal {rehearsal.name}: {exc.args[0] if exc.args else exc}"
            verdict.status, verdict.checks = "failed", [Check("setup", False, message)]
            pytest.fail(message, pytrace=False)
        try:
            evidence = _rehearse(sim, rehearsal, guidance, nanobanana_adapter, verdict)
            _collect_coverage(item.config, sim)
        finally:
            sim.finish()
        verdict.checks = judge(rehearsal, evidence)
        verdict.status = "failed" if verdict.failed else "passed"
    finally:
        verdict.seconds = time.perf_counter() - started
    if verdict.failed:
        pytest.fail(verdict.report(), pytrace=False)


def _rehearse(sim: Nanobanana, rehearsal: Rehearsal, guidance: Guidance, adapter: Adapter,
              verdict: Verdict) -> Evidence:
    options, receiver = _adapter_options(rehearsal, sim)
    clock_start = sim.now()
    outcome = Outcome()
    try:
        outcome.value = adapter(sim, PROMPT, **options)
    except pytest.skip.Exception as exc:
        # The adapter may opt out (`pytest.skip("no callbacks")`): the scorecard says so instead of failing.
        verdict.status, verdict.reason = "skipped", f"skipped by the adapter: {exc.msg}"
        raise
    except Exception as exc:  # a clear error is a legitimate outcome of several rehearsals; it is judged
        outcome.error = exc
    outcome.elapsed = sim.now() - clock_start
    deliveries: list[bytes] = []
    handled: list[Any] = []
    if receiver is not None:
        sim.flush_webhooks()  # callbacks already under way when the generation ended
        deliveries = [request.body for request in receiver.requests]
        handler = attribute(outcome.value, "on_callback")
        if callable(handler):
            for body in deliveries:
                try:
                    handled.append(handler(body))
                except Exception as exc:  # judged as a wrong answer to that delivery
                    handled.append(exc)
    entries, housekeeping = client_requests(sim.journal(provider=guidance.slug), guidance)
    return Evidence(
        guidance=guidance, entries=entries, housekeeping=housekeeping, webhooks=sim.webhooks(guidance.slug),
        tasks=sim.tasks(guidance.slug), outcome=outcome, line=sim._line, deliveries=deliveries, handled=handled,
        findings=sim.findings() if sim.settings.contract else (),
    )


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    scorecard = config.stash.get(_SCORECARD, None)
    if scorecard is None or not scorecard.verdicts:
        return
    terminalreporter.write_sep("=", "nanobanana rehearsal scorecard")
    for line in scorecard.render():
        terminalreporter.write_line(line)

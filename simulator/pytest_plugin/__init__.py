"""pytest plugin: run a real client against the simulated Nano Banana providers.

Registered through the `pytest11` entry point, so installing `nanobanana-sim` is enough:

    def test_generates(nanobanana):
        base = nanobanana.base_url("qingbo")                    # live: http://127.0.0.1:P/qingbo
        client = httpx.Client(base_url=base, headers=nanobanana.auth_headers("qingbo"))
        task = client.post("/v1/tasks", json={...}, headers={"Prefer": "wait=60"}).json()
        assert task["status"] == "completed"

One simulator per mode is started on first use and kept for the session; each test gets it reset (seed,
clock, scenario, options from the command line and the `nanobanana` marker). After the test body, every
request the client sent is checked against the provider's contract: one that broke it fails the test with
a report naming the request, the JSON path, the rule, the expected and nearest valid values and the doc.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.pytest_plugin import coverage_file
from simulator.pytest_plugin.settings import MARKER, MARKER_DOC, Settings, SettingsError, add_options
from simulator.pytest_plugin.warning_types import IgnoredFieldWarning

if TYPE_CHECKING:  # the simulator itself is imported only when a test asks for it
    from simulator.pytest_plugin.coverage import Catalogue, Coverage
    from simulator.pytest_plugin.harness import HarnessPool
    from simulator.pytest_plugin.session import Nanobanana

__all__ = ["IgnoredFieldWarning", "Settings", "nanobanana"]

_POOL: pytest.StashKey[HarnessPool] = pytest.StashKey()
_COVERAGE: pytest.StashKey[Coverage] = pytest.StashKey()
_CATALOGUES: pytest.StashKey[dict[int, dict[str, Catalogue]]] = pytest.StashKey()  # by id() of the simulator
_ACTIVE: pytest.StashKey[Nanobanana] = pytest.StashKey()
_COVERAGE_FILE: pytest.StashKey[Path] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    if config.option.nanobanana_coverage_json is not None:
        try:  # before any test runs: a wrong name must not cost a whole run, nor destroy a file at its end
            config.stash[_COVERAGE_FILE] = coverage_file.checked(config.option.nanobanana_coverage_json)
        except coverage_file.CoverageFileError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.option.nanobanana_coverage or _COVERAGE_FILE in config.stash:
        from simulator.pytest_plugin.coverage import Coverage

        config.stash[_COVERAGE] = Coverage()


def pytest_unconfigure(config: pytest.Config) -> None:
    pool = config.stash.get(_POOL, None)
    if pool is not None:
        pool.close()
        del config.stash[_POOL]


def _pool(config: pytest.Config) -> HarnessPool:
    if _POOL not in config.stash:
        from simulator.pytest_plugin.harness import HarnessPool

        config.stash[_POOL] = HarnessPool(config.getoption("nanobanana_self_check"))
    return config.stash[_POOL]


def _start(request: pytest.FixtureRequest) -> Nanobanana | str:
    """The simulator set up for this test, or why the test's settings cannot be met (an unknown marker keyword,
    provider, scenario or option), to be reported without a traceback."""
    from simulator.control_client import ControlError
    from simulator.proxy.cassette import CassetteError
    from simulator.pytest_plugin.session import Nanobanana

    try:
        settings = Settings.from_config(request.config).checked().with_markers(request.node.iter_markers(MARKER))
    except SettingsError as exc:
        return str(exc)
    harness = _pool(request.config).get(settings.mode, settings.real_clock)
    simulator = Nanobanana(harness, settings, here=Path(request.path).parent)
    try:
        simulator.start()
    except (KeyError, ControlError, CassetteError) as exc:
        return f"nanobanana: {exc.args[0] if exc.args else exc}"
    return simulator


@pytest.fixture
def nanobanana(request: pytest.FixtureRequest) -> Iterator[Nanobanana]:
    """The simulator, reset for this test: `base_url(slug)`, `api_key(slug)`, `auth_headers(slug)`,
    `control`, `advance`/`sleep`/`now`, `journal`/`requests`/`webhooks`, `receiver()`, `assert_*` helpers."""
    simulator = _start(request)
    if isinstance(simulator, str):
        pytest.fail(simulator, pytrace=False)
    config = request.config
    request.node.stash[_ACTIVE] = simulator
    try:
        yield simulator
    finally:
        try:
            _collect_coverage(config, simulator)
        finally:
            simulator.finish()
            del request.node.stash[_ACTIVE]


def _collect_coverage(config: pytest.Config, simulator: Nanobanana) -> None:
    coverage = config.stash.get(_COVERAGE, None)
    if coverage is None:
        return
    from simulator.pytest_plugin.coverage import Catalogue

    catalogues = config.stash.setdefault(_CATALOGUES, {})
    sim = simulator.harness.sim
    if id(sim) not in catalogues:
        catalogues[id(sim)] = Catalogue.of(sim)
    coverage.add(simulator.journal(), simulator.tasks(), catalogues[id(sim)])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The contract check runs right after the test body, so a broken contract fails the test itself (not
    its teardown); when the test failed anyway, the report goes along as a section of its output."""
    try:
        result = yield
    except (Exception, pytest.fail.Exception):
        simulator = item.stash.get(_ACTIVE, None)
        report = simulator.contract_report() if simulator is not None else None
        if report:
            item.add_report_section("call", "nanobanana contract", report)
        raise
    simulator = item.stash.get(_ACTIVE, None)
    report = simulator.contract_report() if simulator is not None else None
    if report:
        pytest.fail(report, pytrace=False)
    ignored = simulator.ignored_fields_report() if simulator is not None else None
    if ignored:  # shown against the test itself, not this hook
        path, line, _ = item.location
        warnings.warn_explicit(IgnoredFieldWarning(ignored), IgnoredFieldWarning, path, (line or 0) + 1)
    return result


def pytest_collectstart(collector: pytest.Collector) -> None:
    # Rehearsals hang from a test module that sees the adapter fixture, even one with no tests of its own.
    if collector.config.option.nanobanana_rehearse and isinstance(collector, pytest.Module):
        from simulator.pytest_plugin.rehearsals.runner import note_module

        note_module(collector)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--nanobanana-rehearse=PROVIDER`: the rehearsals replace the collected tests. First, so that `-k` and `-m`
    then select among the rehearsals."""
    if config.option.nanobanana_rehearse:
        from simulator.pytest_plugin.rehearsals.runner import collect

        collect(session, config, items)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.option.nanobanana_rehearse:
        from simulator.pytest_plugin.rehearsals.runner import terminal_summary

        terminal_summary(terminalreporter, config)
    coverage = config.stash.get(_COVERAGE, None)
    if coverage is None:
        return
    terminalreporter.write_sep("=", "nanobanana contract coverage")
    for line in coverage.render():
        terminalreporter.write_line(line)
    target = config.stash.get(_COVERAGE_FILE, None)
    if target is not None:
        try:
            coverage_file.write(target, coverage.as_dict())
        except (coverage_file.CoverageFileError, OSError) as exc:
            terminalreporter.write_line(f"not written: {exc}", red=True)
        else:
            terminalreporter.write_line(f"written to {target}")

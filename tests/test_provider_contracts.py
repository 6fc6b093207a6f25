"""The provider contract cases (`contracts/providers/<slug>.yaml`) against the simulator, one test per case.

They are the executable record of what the simulator claims to emulate: every documented route, the doc
examples, auth failures, validation errors, empty wallets, content blocks and each documented lifecycle
mode. Each case runs through the `nanobanana` fixture (reset per test, autojump clock), so a case that
sends an invalid request on purpose must say which field it breaks (`expect.violations`), or the plugin's
contract check fails it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import yaml

from simulator.clock import VirtualClock
from simulator.conformance import (
    Case,
    CaseFileError,
    Outcome,
    Target,
    iter_operations,
    load_cases,
    load_file,
    lookup,
    match,
    run_case,
    run_cases,
    split_path,
)
from simulator.live import LiveServer
from simulator.pytest_plugin.session import Nanobanana
from simulator.sim import Simulator

CASES = load_cases()
PROVIDERS = ("civitai", "qingbo", "runware", "crun", "foxapi", "evolink")
# Each provider must have cases of these kinds (a case's name starts with the kind).
REQUIRED_KINDS = ("doc-", "auth-", "validation-", "credits-", "blocked-", "lifecycle-")


@pytest.mark.parametrize("case", [
    pytest.param(case, id=case.id, marks=pytest.mark.nanobanana(provider=case.provider)) for case in CASES
])
def test_provider_contract_case(nanobanana: Nanobanana, case: Case, http: httpx.Client) -> None:
    outcome = run_case(case, Target.from_session(nanobanana), http=http)  # one pool: a TLS context costs ~50 ms
    if not outcome.passed:
        pytest.fail(outcome.report(), pytrace=False)


def test_every_provider_has_every_kind_of_case() -> None:
    names: dict[str, list[str]] = defaultdict(list)
    for case in CASES:
        names[case.provider].append(case.name)
    missing = {slug: [kind for kind in REQUIRED_KINDS if not any(name.startswith(kind) for name in names[slug])]
               for slug in PROVIDERS}
    assert not {slug: kinds for slug, kinds in missing.items() if kinds}, missing


def test_every_served_route_has_a_case() -> None:
    """A route the simulator serves with no case is behaviour nobody wrote down (operation names from the
    route table of each provider module)."""
    sim = Simulator(clock=VirtualClock())
    covered = set(iter_operations(CASES))
    missing = []
    for slug, provider in sim.providers.items():
        for route in provider.routes():
            name = getattr(route, "name", "") or ""
            if name.startswith(f"{slug}:") and (slug, name.partition(":")[2]) not in covered:
                missing.append(name)
    assert not missing, f"routes with no contract case: {sorted(set(missing))}"


# -- the runner itself ------------------------------------------------------------------------------------


def test_paths_and_matchers() -> None:
    body = {"errors": {"steps[0].input.aspectRatio": ["bad"]}, "items": [{"id": 3}], "flag": True}
    assert split_path('errors["steps[0].input.aspectRatio"].0') == ["errors", "steps[0].input.aspectRatio", "0"]
    assert lookup(body, 'errors["steps[0].input.aspectRatio"].0') == "bad"
    assert lookup(body, "items.-1.id") == 3
    assert match(lookup(body, "flag"), True, "flag") == []
    assert match(lookup(body, "flag"), 1, "flag"), "true is not 1"
    assert match(lookup(body, "items.0.id"), {"$type": "integer", "$gte": 3, "$in": [3, 4]}, "id") == []
    assert match(lookup(body, "nothing"), {"$absent": True}, "nothing") == []
    assert match(lookup(body, "nothing"), "x", "nothing") == ["nothing: missing (expected x)"]


def test_a_typo_in_a_case_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "qingbo.yaml"
    path.write_text(yaml.safe_dump({"provider": "qingbo", "cases": [
        {"name": "x", "doc": "d", "request": {"method": "GET", "path": "/v1/tasks/x"}, "expcet": {"status": 404}},
    ]}))
    with pytest.raises(CaseFileError, match="expcet"):
        load_file(path)


@pytest.mark.nanobanana(provider="qingbo")
def test_a_failing_case_says_why(nanobanana: Nanobanana, tmp_path: Path) -> None:
    path = tmp_path / "qingbo.yaml"
    path.write_text(yaml.safe_dump({"provider": "qingbo", "cases": [{
        "name": "wrong-on-purpose", "doc": "this test",
        "request": {"method": "GET", "path": "/v1/tasks/task-unknown"},
        "expect": {"status": 200, "schema": "task", "fields": {"error.code": "task_not_found"}},
    }]}))
    [case] = load_file(path)
    outcome: Outcome = run_case(case, Target.from_session(nanobanana))
    assert not outcome.passed
    assert any("status 404, expected 200" in reason for reason in outcome.reasons)
    assert any(reason.startswith("response: schema task") for reason in outcome.reasons)
    assert "/v1/tasks/task-unknown → 404  [GetTask]" in outcome.report()  # the transcript, in either mode


def test_cases_run_against_any_simulator_through_its_url() -> None:
    """Without pytest's fixture: a ControlClient and httpx against a simulator's URL (reset before each case)."""
    with LiveServer(Simulator(clock=VirtualClock(autojump=True))) as server:
        outcomes = run_cases(load_cases(["qingbo"]), Target.from_url(server.url))
    assert outcomes and [outcome.report() for outcome in outcomes if not outcome.passed] == []

"""Fault plans decide, per matching request, whether a rule fires: counts, windows, seeded probability."""

from __future__ import annotations

import pytest

from simulator.faults import FaultPlan, PlanError, RequestFacts

SUBMIT = RequestFacts(provider="civitai", operation="SubmitWorkflow", method="POST", path="/v2/consumer/workflows",
                      api_key="k", model="nano-banana-2", body={"steps": [{"input": {"model": "nano-banana-2"}}]})
POLL = RequestFacts(provider="civitai", operation="GetWorkflow", method="GET", api_key="k")


def fired(plan: FaultPlan, facts: RequestFacts, count: int, now: float = 0) -> list[bool]:
    return [bool(plan.fire(facts, now)) for _ in range(count)]


def test_third_submit_only() -> None:
    plan = FaultPlan()
    plan.add([{"match": {"operation": "SubmitWorkflow"}, "when": {"after": 2, "times": 1},
               "do": {"error": "rate_limited", "retry_after": 2}}])
    assert fired(plan, POLL, 3) == [False, False, False]
    assert fired(plan, SUBMIT, 5) == [False, False, True, False, False]


def test_every_nth_within_a_window() -> None:
    plan = FaultPlan()
    plan.add([{"match": {"provider": "civitai"}, "when": {"every": 2, "window": [10, 20]}, "do": {"error": "x"}}])
    assert fired(plan, POLL, 4, now=5) == [False, False, False, False]
    assert fired(plan, POLL, 4, now=15) == [False, True, False, True]
    assert fired(plan, POLL, 2, now=20) == [False, False]


def test_matching_on_body_path_model_method_and_lists() -> None:
    plan = FaultPlan()
    plan.add([
        {"name": "by-body", "match": {"body": {"steps.0.input.model": "nano-banana-2"}}, "do": {"error": "a"}},
        {"name": "by-path", "match": {"path": "/v2/*/workflows", "method": "post"}, "do": {"error": "b"}},
        {"name": "by-list", "match": {"api_key": ["x", "k"], "model": "nano-banana-pro"}, "do": {"error": "c"}},
    ])
    assert [rule.name for rule in plan.fire(SUBMIT, 0)] == ["by-body", "by-path"]
    assert plan.fire(POLL, 0) == []


def test_probability_is_seeded() -> None:
    def sequence(seed: int) -> list[bool]:
        plan = FaultPlan(seed=seed)
        plan.add([{"when": {"probability": 0.3}, "do": {"error": "x"}}])
        return fired(plan, POLL, 200)

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    assert 30 < sum(sequence(7)) < 90


def test_counts_are_reported() -> None:
    plan = FaultPlan()
    plan.add([{"when": {"times": 1}, "do": {"error": "x"}}])
    fired(plan, POLL, 3)
    [described] = plan.describe()
    assert (described["matched"], described["fired"]) == (3, 1)


@pytest.mark.parametrize("rule, words", [
    ({"do": {}}, "cannot be empty"),
    ({"match": {"colour": "red"}, "do": {"error": "x"}}, "unknown match keys"),
    ({"when": {"sometimes": 1}, "do": {"error": "x"}}, "unknown when keys"),
    ({"when": {"times": -1}, "do": {"error": "x"}}, "whole number"),
    ({"when": {"probability": 2}, "do": {"error": "x"}}, "between 0 and 1"),
    ({"when": {"window": [1]}, "do": {"error": "x"}}, "[from, to]"),
    ({"match": {"body": "x"}, "do": {"error": "x"}}, "dotted paths"),
    ({"whatever": 1, "do": {"error": "x"}}, "unknown keys"),
])
def test_bad_rules_are_explained(rule: dict[str, object], words: str) -> None:
    with pytest.raises(PlanError, match=words.replace("[", r"\[")):
        FaultPlan().add([rule])

"""Fault plans decide, per matching request, whether a rule fires: counts, windows, seeded probability."""

from __future__ import annotations

import re

import pytest

from simulator.faults import FaultPlan, PlanError, RequestFacts
from simulator.faults.plan import MAX_RULES

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


@pytest.mark.parametrize("rule, field, words", [
    ({"do": {}}, "rules[0].do", "cannot be empty"),
    ({"match": {"colour": "red"}, "do": {"error": "x"}}, "rules[0].match.colour", "unknown key 'colour'"),
    ({"when": {"sometimes": 1}, "do": {"error": "x"}}, "rules[0].when.sometimes", "unknown key 'sometimes'"),
    ({"when": {"times": -1}, "do": {"error": "x"}}, "rules[0].when.times", "whole number from 0"),
    ({"when": {"times": 1.5}, "do": {"error": "x"}}, "rules[0].when.times", "whole number from 0"),
    ({"when": {"every": True}, "do": {"error": "x"}}, "rules[0].when.every", "whole number from 0"),
    ({"when": {"probability": 2}, "do": {"error": "x"}}, "rules[0].when.probability", "from 0 to 1"),
    ({"when": {"probability": float("nan")}, "do": {"error": "x"}}, "rules[0].when.probability", "finite"),
    ({"when": {"window": [1]}, "do": {"error": "x"}}, "rules[0].when.window", "[from, to]"),
    ({"when": {"window": [5, 1]}, "do": {"error": "x"}}, "rules[0].when.window", "from ≤ to"),
    ({"when": {"window": [0, float("inf")]}, "do": {"error": "x"}}, "rules[0].when.window[1]", "finite"),
    ({"match": {"body": "x"}, "do": {"error": "x"}}, "rules[0].match.body", "dotted paths"),
    ({"match": {"provider": 5}, "do": {"error": "x"}}, "rules[0].match.provider", "must be a string"),
    ({"match": {"path": ["/a", None]}, "do": {"error": "x"}}, "rules[0].match.path[1]", "must be a string"),
    ({"name": "", "do": {"error": "x"}}, "rules[0].name", "must not be empty"),
    ({"whatever": 1, "do": {"error": "x"}}, "rules[0].whatever", "unknown key 'whatever'"),
    ({"do": {"error": "x", "note": "\udc00"}}, "rules[0].do.note", "lone surrogate"),
])
def test_bad_rules_are_explained_by_field(rule: dict[str, object], field: str, words: str) -> None:
    plan = FaultPlan()
    plan.add([{"do": {"error": "kept"}}])
    with pytest.raises(PlanError, match=re.escape(words)) as refused:
        plan.add([rule], field="rules")
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert [r.do["error"] for r in plan.rules] == ["kept"]  # nothing of a refused call is in force


def test_a_bad_rule_among_good_ones_adds_none() -> None:
    plan = FaultPlan()
    with pytest.raises(PlanError, match=r"rules\[2\]\.when\.after"):
        plan.add([{"do": {"error": "a"}}, {"do": {"error": "b"}}, {"when": {"after": -1}, "do": {"error": "c"}}])
    assert plan.rules == []


def test_a_list_means_any_of_for_paths_and_methods_too() -> None:
    plan = FaultPlan()
    plan.add([{"match": {"path": ["/nothing", "/v2/*"], "method": ["put", "POST"]}, "do": {"error": "x"}}])
    assert fired(plan, SUBMIT, 1) == [True]
    assert fired(plan, POLL, 1) == [False]


def test_a_plan_holds_a_bounded_number_of_rules() -> None:
    plan = FaultPlan()
    plan.add([{"do": {"error": "x"}}] * MAX_RULES)
    with pytest.raises(PlanError, match="at most 1000 rules"):
        plan.add([{"do": {"error": "x"}}])
    assert len(plan.rules) == MAX_RULES

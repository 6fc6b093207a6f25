"""What a rule may `do`, checked when the rule is added so mistakes surface at load, not mid-test."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.faults.network import check_network_action
from simulator.faults.plan import PlanError
from simulator.faults.task_actions import check_task_action

WEBHOOK_ACTIONS = frozenset({"drop", "duplicate", "delay", "reorder"})
ACTION_KEYS = ("error", "network", "task", "webhook")


def check_action(do: Mapping[str, Any], rule: str) -> None:
    present = [key for key in ACTION_KEYS if key in do]
    if not present:
        raise PlanError(f"{rule}: `do` needs one of {list(ACTION_KEYS)}")
    if "error" in do and not isinstance(do["error"], str):
        raise PlanError(f"{rule}: error names a kind, e.g. rate_limited (or 'http' with a status)")
    if do.get("error") == "http" and not isinstance(do.get("status"), int):
        raise PlanError(f"{rule}: error 'http' needs an integer status")
    if "network" in do:
        check_network_action(do, rule)
    if "task" in do:
        check_task_action(do, rule)
    if "webhook" in do and do["webhook"] not in WEBHOOK_ACTIONS:
        raise PlanError(f"{rule}: webhook action must be one of {sorted(WEBHOOK_ACTIONS)}")

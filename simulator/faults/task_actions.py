"""The task actions a fault rule may name, checked when the rule is added.

Apart from `faults/tasks.py`, which applies them to the engine's tasks, so that checking a rule (the engine,
scenarios, the control plane) never needs the engine itself: the engine imports the checks, and the checks
import nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.faults.plan import PlanError

TASK_ACTIONS = frozenset({"block", "partial_block", "fail", "never_finish", "expire", "slow"})


def check_task_action(do: Mapping[str, Any], rule: str) -> None:
    action = do.get("task")
    if action not in TASK_ACTIONS:
        raise PlanError(f"{rule}: task action must be one of {sorted(TASK_ACTIONS)}, not {action!r}")
    if action == "slow":
        queue = do.get("queue")
        if not isinstance(queue, Mapping) or queue.get("distribution") not in ("fixed", "uniform", "lognormal"):
            raise PlanError(f"{rule}: slow needs queue.distribution fixed, uniform or lognormal")

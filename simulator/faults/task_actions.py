"""The task actions a fault rule may name, checked when the rule is added.

Apart from `faults/tasks.py`, which applies them to the engine's tasks, so that checking a rule (the engine,
scenarios, the control plane) never needs the engine itself: the engine imports the checks, and the checks
import nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator import checks
from simulator.faults.errors import check_code
from simulator.faults.plan import PlanError

# What each task action may carry besides its name.
TASK_KEYS: dict[str, set[str]] = {
    "block": {"reason"}, "partial_block": {"images", "reason"}, "fail": {"at", "code", "message"},
    "never_finish": set(), "expire": {"after", "code", "message"}, "slow": {"queue"},
}
TASK_ACTIONS = frozenset(TASK_KEYS)
QUEUE_KEYS = {"fixed": {"seconds"}, "uniform": {"low", "high"}, "lognormal": {"median", "sigma"}}
# Clock seconds a task fault may add or wait: a year is past any rehearsal, and keeps every date printable.
MAX_SECONDS = 365 * 86400.0
MAX_IMAGES = 1000


def check_task_action(do: Mapping[str, Any], field: str) -> None:
    """The task action's name and every value it carries (its keys are checked with the rest of `do`)."""
    action = do.get("task")
    if action not in TASK_ACTIONS:
        where = checks.join(field, "task")
        raise PlanError(f"{where}: task action must be one of {sorted(TASK_ACTIONS)}, not {checks.quote(action)}",
                        where)
    for key in ("reason", "message"):
        if key in do:
            checks.text(do[key], checks.join(field, key), max_length=10_000)
    if "code" in do:
        check_code(do["code"], checks.join(field, "code"))
    if "at" in do:
        checks.number(do["at"], checks.join(field, "at"), low=0, high=1, unit="(the share of processing)")
    if "after" in do:
        checks.number(do["after"], checks.join(field, "after"), low=0, high=MAX_SECONDS, unit="seconds")
    if "images" in do:
        where = checks.join(field, "images")
        images = checks.items(do["images"], where, max_items=MAX_IMAGES, what="a list of image positions (0-based)")
        if not images:
            raise PlanError(f"{where}: name at least one image (0 is the first)", where)
        for i, position in enumerate(images):
            checks.number(position, checks.join(where, i), low=0, high=MAX_IMAGES - 1, integer=True)
    if action == "slow":
        _check_queue(do.get("queue"), checks.join(field, "queue"))


def _check_queue(queue: Any, field: str) -> None:
    if not isinstance(queue, Mapping) or queue.get("distribution") not in QUEUE_KEYS:
        raise PlanError(f"{field}: slow needs queue.distribution fixed, uniform or lognormal", field)
    kind = queue["distribution"]
    checks.mapping(queue, field, {"distribution", *QUEUE_KEYS[kind]}, f"a {kind} queue")
    for key in ("seconds", "low", "high", "median"):
        if key in queue:
            checks.number(queue[key], checks.join(field, key), low=0, high=MAX_SECONDS, unit="seconds")
    if "sigma" in queue:
        checks.number(queue["sigma"], checks.join(field, "sigma"), low=0, high=5)
    if float(queue.get("low", 0)) > float(queue.get("high", 0)):
        raise PlanError(f"{field}: low must not exceed high", checks.join(field, "low"))

"""Task faults: what a fired rule does to the task its request creates.

The request's fired `task` actions travel in a context variable from the route (where rules are matched)
to the engine (where the task is added), so no provider has to know about them:

- `{"task": "block", "reason": "…"}`: the content filter blocks the whole task (after processing).
- `{"task": "partial_block", "images": [1], "reason": "…"}`: only those images (0-based) are blocked.
- `{"task": "fail", "at": 0.5, "code": "…", "message": "…"}`: the task fails that far through processing.
- `{"task": "never_finish"}`: the task stays in processing for ever.
- `{"task": "expire", "after": 300}`: the task expires that many seconds after acceptance.
- `{"task": "slow", "queue": {"distribution": "fixed"|"uniform"|"lognormal", …}}`: extra queue time,
  drawn from the task's own seeded stream (`seconds`; `low`/`high`; `median`/`sigma`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from simulator import checks
from simulator.engine.tasks import Failure, Phase, Task
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
DEFAULT_BLOCK_REASON = "The output was blocked by the content filter."

_ACTIVE: ContextVar[tuple[Mapping[str, Any], ...]] = ContextVar("nanobanana_sim_task_faults", default=())
# Images already planned by earlier tasks of the same request: a provider that makes one task per image
# (Runware) still has its batch counted as one, so `partial_block` images [1] means the request's second.
_IMAGES_SEEN: ContextVar[list[int]] = ContextVar("nanobanana_sim_images_seen")


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


@contextmanager
def task_faults(actions: tuple[Mapping[str, Any], ...]) -> Iterator[None]:
    token = _ACTIVE.set(actions)
    seen = _IMAGES_SEEN.set([0])
    try:
        yield
    finally:
        _IMAGES_SEEN.reset(seen)
        _ACTIVE.reset(token)


def active(action: str) -> Mapping[str, Any] | None:
    return next((do for do in _ACTIVE.get() if do.get("task") == action), None)


def forced_block() -> Failure | None:
    do = active("block")
    if do is None:
        return None
    return Failure("blocked", str(do.get("reason") or DEFAULT_BLOCK_REASON), code="forced")


def _queue_delay(spec: Mapping[str, Any], rng: random.Random) -> float:
    kind = spec["distribution"]
    if kind == "fixed":
        return float(spec.get("seconds", 0))
    if kind == "uniform":
        return rng.uniform(float(spec.get("low", 0)), float(spec.get("high", 0)))
    return float(spec.get("median", 1)) * math.exp(rng.gauss(0, float(spec.get("sigma", 0.5))))


def apply(task: Task, rng: random.Random) -> list[str]:
    """Change the task as the request's task faults say; returns what was done (for the journal)."""
    done: list[str] = []
    t = task.timeline
    slow = active("slow")
    if slow is not None:
        # A lognormal tail can draw any length; past a year every date the task shows could no longer print.
        delay = min(MAX_SECONDS, max(0.0, _queue_delay(slow["queue"], rng)))
        t = replace(t, started_at=t.started_at + delay, finished_at=t.finished_at + delay)
        done.append(f"slow: +{delay:.3f} s in the queue")
    fail = active("fail")
    if fail is not None:
        share = min(1.0, max(0.0, float(fail.get("at", 0.5))))
        t = replace(t, finished_at=t.started_at + share * (t.finished_at - t.started_at))
        task.outcome = Phase.FAILED
        task.failure = Failure("error", str(fail.get("message") or "The generation failed upstream."),
                               code=fail.get("code"))
        done.append(f"fail at {share:.0%} of processing")
    expire = active("expire")
    if expire is not None:
        t = replace(t, finished_at=t.accepted_at + float(expire.get("after", 300)))
        t = replace(t, started_at=min(t.started_at, t.finished_at), queued_at=min(t.queued_at, t.finished_at))
        task.outcome = Phase.EXPIRED
        task.failure = Failure("timeout", str(expire.get("message") or "The task expired before it finished."),
                               code=expire.get("code"))
        done.append("expire")
    if active("never_finish") is not None:
        t = replace(t, finished_at=math.inf)
        done.append("never finish")
    partial = active("partial_block")
    if partial is not None:
        reason = str(partial.get("reason") or DEFAULT_BLOCK_REASON)
        chosen = set(partial.get("images") or [0])
        seen = _IMAGES_SEEN.get([0])
        blocked = []
        for position, image in enumerate(task.outputs, start=seen[0]):
            if position in chosen:
                image.blocked, image.blocked_reason = True, reason
                blocked.append(position)
        seen[0] += len(task.outputs)
        if blocked:
            done.append(f"blocked images {blocked} of the request's batch")
    task.timeline = t
    return done

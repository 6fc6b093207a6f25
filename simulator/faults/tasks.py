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

from simulator.engine.tasks import Failure, Phase, Task
from simulator.faults.task_actions import MAX_SECONDS

DEFAULT_BLOCK_REASON = "The output was blocked by the content filter."

_ACTIVE: ContextVar[tuple[Mapping[str, Any], ...]] = ContextVar("nanobanana_sim_task_faults", default=())
# Images already planned by earlier tasks of the same request: a provider that makes one task per image
# (Runware) still has its batch counted as one, so `partial_block` images [1] means the request's second.
_IMAGES_SEEN: ContextVar[list[int]] = ContextVar("nanobanana_sim_images_seen")


@contextmanager
def task_faults(actions: tuple[Mapping[str, Any], ...]) -> Iterator[None]:
    token = _ACTIVE.set(actions)
    seen = _IMAGES_SEEN.set([0])
    try:
        yield
    finally:
        _IMAGES_SEEN.reset(seen)
        _ACTIVE.reset(token)


def any_active() -> bool:
    """Whether a fired rule has a task action for the request under way (most requests: none)."""
    return bool(_ACTIVE.get())


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

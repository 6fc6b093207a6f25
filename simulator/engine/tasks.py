"""Provider-neutral tasks: what was asked, and a timeline on the clock that says what it is now."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from simulator.images.render import ImageFormat


class Phase(enum.StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


def _packed(request: Any) -> bytes:
    if isinstance(request, bytes):
        return request
    # A lone surrogate (from a \\ud800 escape) or a NaN passed the body checks as JSON text: both come back as given.
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED, Phase.EXPIRED})


@dataclass(frozen=True, slots=True)  # every stored task has one, as it has its outputs and a Task: no __dict__
class Timeline:
    """When the task enters each phase. The outcome phase is reached at `finished_at`."""

    accepted_at: float
    queued_at: float
    started_at: float
    finished_at: float

    def transitions(self) -> list[tuple[float, Phase]]:
        return [(self.queued_at, Phase.QUEUED), (self.started_at, Phase.PROCESSING)]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a task failed: `kind` is provider-neutral (blocked, error, timeout), the rest is detail."""

    kind: str
    message: str
    code: str | None = None


@dataclass(slots=True)
class OutputImage:
    blob_id: str
    index: int
    width: int
    height: int
    format: ImageFormat
    seed: int
    blocked: bool = False
    blocked_reason: str | None = None
    quality: int | None = None


@dataclass(slots=True, weakref_slot=True)  # a Runware job holds its image tasks weakly
class Task:
    id: str
    provider: str
    owner: str
    model: str
    prompt: str
    timeline: Timeline
    outcome: Phase
    outputs: list[OutputImage]
    failure: Failure | None = None
    # The request the task was made from (defaults filled), given as a dict and kept as its compact JSON: it is
    # read for a few tasks (the inspector's gallery) and kept for every one, where the parsed dict cost three times
    # the bytes. `requested()` reads it back.
    request: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    cost: float = 0
    seq: int = 0
    canceled_at: float | None = None
    deleted_at: float | None = None
    tags: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # what fault rules did to this task, in words
    # Moves on with every change a read could show (a phase reached, tags, metadata, a refund): answers kept for
    # a settled task (simulator.pipeline.settled) are kept per revision.
    revision: int = 0

    def __post_init__(self) -> None:
        self.request = _packed({} if self.request is None else self.request)

    def requested(self) -> Any:
        """The request as the task was made from it (a fresh copy)."""
        return json.loads(self.request)

    def touch(self) -> None:
        """Note a change of the task's state (anything a handler changes on it after it was added)."""
        self.revision += 1

    def phase(self, now: float) -> Phase:
        if self.canceled_at is not None and self.canceled_at <= now:
            return Phase.CANCELED
        t = self.timeline
        if now >= t.finished_at:
            return self.outcome
        if now >= t.started_at:
            return Phase.PROCESSING
        if now >= t.queued_at:
            return Phase.QUEUED
        return Phase.ACCEPTED

    def terminal_at(self) -> float:
        """The moment the task becomes terminal, as things stand."""
        if self.canceled_at is not None:
            return min(self.canceled_at, self.timeline.finished_at)
        return self.timeline.finished_at

    def started(self, now: float) -> float | None:
        t = self.timeline.started_at
        if t > now or (self.canceled_at is not None and self.canceled_at < t):
            return None
        if self.outcome is Phase.EXPIRED and t >= self.timeline.finished_at:
            return None  # expired while still queued: it never ran
        return t

    def completed(self, now: float) -> float | None:
        t = self.terminal_at()
        return t if t <= now else None

    def progress(self, now: float) -> float:
        """0..1 through processing; 1 once terminal (a task that never finishes creeps towards 0.99)."""
        phase = self.phase(now)
        if phase.terminal:
            return 1.0
        if phase is not Phase.PROCESSING:
            return 0.0
        t = self.timeline
        if math.isinf(t.finished_at):
            return 0.99 * (1 - math.exp(-(now - t.started_at) / 60))
        span = max(t.finished_at - t.started_at, 1e-9)
        return min(1.0, max(0.0, (now - t.started_at) / span))


class TaskStore:
    """In-memory tasks, in submission order, with lookups by ID and by owner-scoped key.

    Bounded: past `capacity`, each new task retires the oldest one if it has finished (a task still running is
    never dropped), so a soak that submits for hours stays flat in memory; the journal is bounded the same way."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.retired = 0  # tasks dropped for the bound since the last reset (the control plane reports it)
        self._tasks: dict[str, Task] = {}
        self._keys: dict[tuple[str, str, str], tuple[str, float | None]] = {}

    def add(self, task: Task) -> None:
        self._tasks[task.id] = task

    def retire(self, now: float) -> list[Task]:
        """The oldest finished tasks dropped to bring the store back to its capacity (as far as they go)."""
        retired: list[Task] = []
        while len(self._tasks) > self.capacity:
            oldest = next(iter(self._tasks.values()))
            if not oldest.phase(now).terminal:
                break
            del self._tasks[oldest.id]
            retired.append(oldest)
        if retired:
            self._forget_retired_keys()
        self.retired += len(retired)
        return retired

    def _forget_retired_keys(self) -> None:
        # Keys are kept in the order they were last remembered, which is submission order, and tasks retire
        # oldest first: the keys of retired tasks are at the front, so this stops at the first live one.
        while self._keys:
            key, (task_id, _) = next(iter(self._keys.items()))
            if task_id in self._tasks:
                return
            del self._keys[key]

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def all(self, provider: str | None = None) -> list[Task]:
        return [t for t in self._tasks.values() if provider is None or t.provider == provider]

    def remember_key(
        self, provider: str, owner: str, key: str, task_id: str, expires_at: float | None = None
    ) -> None:
        """An idempotency key (Civitai externalId, qingbo Idempotency-Key, …), scoped to the API key."""
        scoped = (provider, owner, key)
        self._keys.pop(scoped, None)  # a key used again moves to the back, beside the task it now names
        self._keys[scoped] = (task_id, expires_at)

    def by_key(self, provider: str, owner: str, key: str, now: float | None = None) -> Task | None:
        found = self._keys.get((provider, owner, key))
        if found is None:
            return None
        task_id, expires_at = found
        if expires_at is not None and now is not None and now >= expires_at:
            return None
        return self._tasks.get(task_id)

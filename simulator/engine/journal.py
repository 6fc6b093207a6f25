"""The record of every exchange: HTTP requests, webhook attempts and other engine events."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class JournalEntry:
    seq: int
    kind: str  # "http", "webhook", "event"
    at: float  # clock time the exchange started
    provider: str | None = None
    operation: str | None = None
    method: str | None = None
    path: str | None = None
    query: dict[str, list[str]] = field(default_factory=dict)
    owner: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: Any = None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: Any = None
    finished_at: float | None = None
    task_id: str | None = None
    note: str | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)  # undocumented fields the provider dropped, unread
    faults: list[dict[str, Any]] = field(default_factory=list)  # rules and limits that fired, and what they did
    self_check: list[dict[str, Any]] = field(default_factory=list)  # how the answer broke its contract (a sim bug)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """Bounded in memory (oldest dropped first) so a long soak cannot exhaust it; the bound is a setting."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self.dropped = 0
        self._observers: list[Callable[[JournalEntry], None]] = []

    def subscribe(self, observer: Callable[[JournalEntry], None]) -> Callable[[], None]:
        """Call `observer(entry)` with each entry as it is recorded, from any transport; returns the unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def record(self, kind: str, at: float, **fields: Any) -> JournalEntry:
        if len(self._entries) == self.capacity:
            self.dropped += 1
        entry = JournalEntry(seq=next(self._seq), kind=kind, at=at, **fields)
        self._entries.append(entry)
        for observer in self._observers:
            observer(entry)
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self.dropped = 0
        self._seq = itertools.count(1)  # a fresh start reads 1, 2, 3 in reports

    def __len__(self) -> int:
        return len(self._entries)

    def entries(
        self,
        *,
        kind: str | None = None,
        provider: str | None = None,
        operation: str | None = None,
        status: int | Iterable[int] | None = None,
        owner: str | None = None,
        task_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int | None = None,
        faulted: bool | None = None,
        broken: bool | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        statuses = {status} if isinstance(status, int) else set(status) if status is not None else None
        out = [
            e for e in self._entries
            if (kind is None or e.kind == kind)
            and (provider is None or e.provider == provider)
            and (operation is None or e.operation == operation)
            and (statuses is None or e.status in statuses)
            and (owner is None or e.owner == owner)
            and (task_id is None or e.task_id == task_id)
            and (since is None or e.at >= since)
            and (until is None or e.at <= until)
            and (after_seq is None or e.seq > after_seq)
            and (faulted is None or bool(e.faults) == faulted)
            and (broken is None or bool(e.self_check) == broken)
        ]
        return out[-limit:] if limit else out

"""A bounded, thread-safe memo of encoded pieces (caption strips), least recently used dropped first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Generic, TypeVar

T = TypeVar("T")


class Memo(Generic[T]):
    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        made = make()  # outside the lock: two threads may both make a new piece, and agree on it
        with self._lock:
            self._items[key] = made
            if len(self._items) > self.entries:
                self._items.popitem(last=False)
        return made

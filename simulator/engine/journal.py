"""The record of every exchange: HTTP requests, webhook attempts and other engine events.

The journal is bounded in entries and in bytes (oldest dropped first), and what it keeps is always JSON it can
serve back: each entry's fields are stored as given when they are plain, small JSON (the common case, checked in
one C-speed pass); otherwise they are made so, field by field. A string or list past a field's share is cut, a
NaN or an infinity becomes its name as a string, a lone surrogate becomes U+FFFD, an integer no JSON reader keeps
becomes a note, and a structure nested too deep is cut, and the entry lists every path it cut in `truncated`.
So a 60 MB prompt echoed in a validation message costs the journal at most one field's share, once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import operator
import re
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from simulator.json_text import deeper_than

# One field of one entry keeps at most this much (the HTTP recorder already journals bodies larger than 1 MiB
# by size only, so what it stores is kept whole).
FIELD_BYTES = 1024 * 1024
MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
# Python refuses to print integers of more than 4300 digits, and so would every JSON answer holding one.
MAX_INT_BITS = 14_000
# One C-speed pass says whether an entry is plain JSON and how large; a cycle ends in RecursionError, caught.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False)
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, only ever a lone one: JSON text cannot carry it


class Deferred:
    """A field kept as the exchange already had it (bytes off the wire) and read into JSON when the entry is read.

    Reading happens for a few entries (a control-plane query, a test's assertion); keeping happens for every
    exchange of a long run: tens of thousands of parsed bodies and header dicts cost ten times their bytes."""

    __slots__ = ()

    @property
    def size(self) -> int:  # bytes the field takes as JSON, about
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def fingerprint(self) -> Hashable | None:
        """What identifies the value (equal fingerprints, equal values), for memoizing what is worked out of
        it; None where nothing cheaper than the value itself does."""
        return None


_SLOTS = ("seq", "kind", "at", "provider", "operation", "method", "path", "query", "owner", "request_headers",
          "request_body", "status", "response_headers", "response_body", "finished_at", "task_id", "note",
          "violations", "ignored", "faults", "self_check", "detail", "proxied", "truncated")
_DEFAULTS: dict[str, Callable[[], Any]] = {"query": dict, "request_headers": dict, "response_headers": dict,
                                           "violations": list, "ignored": list, "faults": list,
                                           "self_check": list, "detail": dict, "truncated": list}


class JournalEntry:
    """One exchange or event. Fields (see `_SLOTS`): seq, kind ("http", "webhook", "event"), at (clock time the
    exchange started), provider, operation, method, path, query, owner, request_headers, request_body, status,
    response_headers, response_body, finished_at, task_id, note, violations, ignored (undocumented fields the
    provider dropped, unread), faults (rules and limits that fired, and what they did), self_check (how the
    answer broke its contract: a simulator bug), detail, proxied (relayed to an upstream by simulator.proxy:
    where, and its answer's checks), truncated (paths the journal cut or rewrote to keep
    the entry bounded); and size, the bytes its fields take as JSON."""

    __slots__ = (*(f"_{name}" for name in _SLOTS), "size")
    # Read and written through the properties set below (a Deferred value is read when it is asked for).
    seq: int
    kind: str
    at: float
    provider: str | None
    operation: str | None
    method: str | None
    path: str | None
    query: dict[str, list[str]]
    owner: str | None
    request_headers: dict[str, str]
    request_body: Any
    status: int | None
    response_headers: dict[str, str]
    response_body: Any
    finished_at: float | None
    task_id: str | None
    note: str | None
    violations: list[dict[str, Any]]
    ignored: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    self_check: list[dict[str, Any]]
    detail: dict[str, Any]
    proxied: dict[str, Any] | None
    truncated: list[str]

    def __init__(self, *, seq: int = 0, kind: str = "", at: float = 0.0, provider: str | None = None,
                 operation: str | None = None, method: str | None = None, path: str | None = None, query: Any = None,
                 owner: str | None = None, request_headers: Any = None, request_body: Any = None,
                 status: int | None = None, response_headers: Any = None, response_body: Any = None,
                 finished_at: float | None = None, task_id: str | None = None, note: str | None = None,
                 violations: Any = None, ignored: Any = None, faults: Any = None, self_check: Any = None,
                 detail: Any = None, proxied: Any = None, truncated: Any = None, size: int = 0) -> None:
        # Written out, not looped over: an entry is made for every exchange. An empty list or dict is kept as
        # None and made when read (`_DEFAULTS`): most entries have five of them, and each would cost its own
        # object (and the collector a visit) for every exchange kept.
        self._seq, self._kind, self._at = seq, kind, at
        self._provider, self._operation, self._method, self._path = provider, operation, method, path
        self._query, self._owner = query or None, owner
        self._request_headers, self._request_body = request_headers or None, request_body
        self._status, self._response_headers, self._response_body = status, response_headers or None, response_body
        self._finished_at, self._task_id, self._note = finished_at, task_id, note
        self._violations, self._ignored, self._faults = violations or None, ignored or None, faults or None
        self._self_check, self._detail, self._proxied = self_check or None, detail or None, proxied
        self._truncated = truncated or None
        self.size = size

    def kept(self, name: str) -> Any:
        """Field `name` as the entry keeps it: a `Deferred` not yet read, None for an empty list or dict."""
        return getattr(self, f"_{name}")

    def as_dict(self) -> dict[str, Any]:
        # Shallow: the values are the journal's own and nothing that reads them changes them.
        return {name: getattr(self, name) for name in _SLOTS}

    def __repr__(self) -> str:
        return f"JournalEntry({', '.join(f'{name}={getattr(self, name)!r}' for name in _SLOTS)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JournalEntry) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


def _field(name: str) -> property:
    slot = f"_{name}"

    make = _DEFAULTS.get(name)

    def read(entry: JournalEntry) -> Any:
        value = getattr(entry, slot)
        if value is None and make is not None:
            return make()
        return value.value() if isinstance(value, Deferred) else value

    def write(entry: JournalEntry, value: Any) -> None:
        setattr(entry, slot, value)

    return property(read, write)


for _name in _SLOTS:
    setattr(JournalEntry, _name, _field(_name))

# An entry's head (what a log line of it says first) and its troubles (each None or empty unless something went
# wrong), as kept, in one C-speed call each: the access log reads them for every exchange. None is deferred.
entry_head = operator.attrgetter("_kind", "_provider", "_operation", "_method", "_path", "_status", "_task_id",
                                 "_at", "_finished_at")
entry_troubles = operator.attrgetter("_violations", "_faults", "_self_check", "_proxied", "_note")
_PUBLIC = _SLOTS
# The fields a caller fills; seq, kind, at and the journal's own bookkeeping are not among them.
_FIELDS = tuple(name for name in _PUBLIC if name not in ("seq", "kind", "at", "truncated"))
_FIELD_SET = frozenset(_FIELDS)


class Journal:
    """Bounded in memory, in entries and in bytes (oldest dropped first), so a long soak or a hostile body cannot
    exhaust it; both bounds are settings."""

    def __init__(self, capacity: int = 50_000, max_bytes: int = MAX_BYTES, field_bytes: int = FIELD_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.field_bytes = field_bytes
        self._entries: deque[JournalEntry] = deque()
        self._seq = itertools.count(1)
        self._bytes = 0
        self.dropped = 0
        self._observers: list[Callable[[JournalEntry], None]] = []

    def subscribe(self, observer: Callable[[JournalEntry], None]) -> Callable[[], None]:
        """Call `observer(entry)` with each entry as it is recorded, from any transport; returns the unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def record(self, kind: str, at: float, **values: Any) -> JournalEntry:
        if not _FIELD_SET.issuperset(values):
            raise TypeError(f"journal entries have no field(s) {sorted(set(values) - _FIELD_SET)}")
        kept, truncated, size = self._bounded(values)
        entry = JournalEntry(seq=next(self._seq), kind=kind, at=at, **kept, truncated=truncated, size=size)
        self._entries.append(entry)
        self._bytes += size
        while len(self._entries) > 1 and (len(self._entries) > self.capacity or self._bytes > self.max_bytes):
            self._bytes -= self._entries.popleft().size
            self.dropped += 1
        for observer in self._observers:
            observer(entry)
        return entry

    def _bounded(self, values: dict[str, Any], force: bool = False) -> tuple[dict[str, Any], list[str], int]:
        """The values as the entry keeps them, the paths that had to change, and their size as JSON."""
        size, extra = (-1, 0) if force else _simple_size(values)
        if 0 <= size <= self.field_bytes:  # the common case: small scalars and fields kept as the exchange's bytes
            return values, [], size + extra
        size = -1
        deferred = {name: value for name, value in values.items() if isinstance(value, Deferred)}
        plain = {name: value for name, value in values.items() if name not in deferred} if deferred else values
        # Not plain JSON as it stands (NaN, a lone surrogate, a giant integer, an odd type): made so below.
        with contextlib.suppress(ValueError, TypeError, RecursionError):
            if not force and size < 0:
                text = _ENCODER.encode(plain)
                size = len(text) if text.isascii() else len(text.encode("utf-8"))  # a lone surrogate raises
        extra = sum(value.size for value in deferred.values())
        if 0 <= size <= self.field_bytes:
            return values, [], size + extra
        kept: dict[str, Any] = dict(deferred)
        truncated: list[str] = []
        size = extra
        for name, value in plain.items():
            fits = -1
            with contextlib.suppress(ValueError, TypeError, RecursionError):
                if not force:  # a field that is plain and within its share is kept as it is, at C speed
                    text = _ENCODER.encode(value)
                    encoded = text.encode("utf-8")
                    fits = -1 if deeper_than(encoded, MAX_DEPTH) else len(encoded)
            if 0 <= fits <= self.field_bytes:
                kept[name] = value
                size += fits
                continue
            shrinker = _Shrinker(self.field_bytes, truncated)
            kept[name] = shrinker.shrink(value, name, 0)
            size += self.field_bytes - shrinker.budget
        return kept, truncated, size

    def serialized(self, entry: JournalEntry) -> str:
        """The entry as JSON text. What the journal keeps always serializes; should a kept value still fail
        (a structure nested near the interpreter's recursion limit), the entry is shrunk for good and served."""
        try:
            return json.dumps(entry.as_dict(), allow_nan=False, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            values = {name: getattr(entry, name) for name in _FIELDS}
            kept, truncated, size = self._bounded(values, force=True)
            for name, value in kept.items():
                setattr(entry, name, value)
            entry.truncated = [*entry.truncated, *truncated]
            self._bytes += size - entry.size
            entry.size = size
            return json.dumps(entry.as_dict(), allow_nan=False, ensure_ascii=False)

    @property
    def bytes(self) -> int:
        """What the entries kept take as JSON: the quantity `max_bytes` bounds."""
        return self._bytes

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
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


_SIMPLE_STRING = 4096


def _simple_size(values: dict[str, Any]) -> tuple[int, int]:
    """The JSON size of values that are all scalars, short ASCII strings or empty lists (most entries' small
    fields), or -1: then the encoder measures them; and the size of the fields kept as bytes (Deferred), apart.
    Counting is cheaper than encoding an entry per request."""
    size = 2
    deferred = 0
    for name, value in values.items():
        if value is None:  # most often first: an entry's fields are mostly unset
            size += len(name) + 9
            continue
        kind = type(value)
        if kind is str:
            if len(value) > _SIMPLE_STRING or not value.isascii() or '"' in value or "\\" in value:
                return -1, 0
            size += len(name) + 4 + len(value)
        elif kind in _DEFERRED_TYPES or (kind not in _PLAIN_TYPES and isinstance(value, Deferred)):
            _DEFERRED_TYPES.add(kind)
            deferred += value.size
        elif value is True or value is False:
            size += len(name) + 9
        elif (kind is int and -(2**53) <= value <= 2**53) or (kind is float and math.isfinite(value)):
            size += len(name) + 28
        elif (kind is list or kind is dict) and not value:
            size += len(name) + 6
        else:
            return -1, 0
    return size, deferred


_PLAIN_TYPES = frozenset({type(None), bool, str, int, float, list, dict})
_DEFERRED_TYPES: set[type] = set()


class _Shrinker:
    """Makes one field plain JSON within `budget` bytes (roughly: its JSON length), noting each path it changes."""

    def __init__(self, budget: int, truncated: list[str]) -> None:
        self.budget = budget
        self.truncated = truncated

    def note(self, path: str, why: str) -> None:
        self.truncated.append(f"{path}: {why}")

    def shrink(self, value: Any, path: str, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            self.budget -= 5
            return value
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                self.note(path, f"an integer of {value.bit_length()} bits, too long to print")
                return self.string(f"<integer of {value.bit_length()} bits>", path)
            self.budget -= 8
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.note(path, f"{value} is not a JSON number; kept as a string")
                return self.string(json.dumps(value), path)
            self.budget -= 8
            return value
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, bytes | bytearray):
            self.budget -= 32
            return {"bytes": len(value)}
        if depth >= MAX_DEPTH:
            self.note(path, f"nested deeper than {MAX_DEPTH} levels; cut")
            return None
        if isinstance(value, Mapping):
            return self.mapping(value, path, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self.sequence(list(value), path, depth)
        return self.string(str(value), path)

    def string(self, value: str, path: str) -> str:
        if not value.isascii():
            fixed = _SURROGATE.sub("\ufffd", value)
            if fixed != value:
                self.note(path, "lone surrogates replaced by U+FFFD")
            value = fixed
        room = max(0, self.budget - 2)
        if len(value) > room:
            self.note(path, f"{len(value)} characters, kept the first {room}")
            value = value[:room]
        self.budget -= len(value) + 2
        return value

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (key, child) in enumerate(value.items()):
            if self.budget <= 0:
                self.note(path, f"{len(value) - i} more keys cut")
                break
            name = self.string(key if isinstance(key, str) else str(key), f"{path} (a key)")
            out[name] = self.shrink(child, f"{path}.{name}", depth + 1)
        return out

    def sequence(self, value: list[Any], path: str, depth: int) -> list[Any]:
        out: list[Any] = []
        for i, child in enumerate(value):
            if self.budget <= 0:
                self.note(path, f"{len(value) - i} more items cut")
                break
            out.append(self.shrink(child, f"{path}[{i}]", depth + 1))
        return out

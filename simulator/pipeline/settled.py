"""Answers about a settled task, built once per state and kept: a finished task polled a thousand times is
rendered, encoded and self-checked once, not a thousand times.

A provider asks `SettledAnswers.answer(task, key, render)` only for an answer that no longer moves with the
clock (a finished task's read, say). The entry is kept under the task's revision (bumped by the engine at each
phase change and by every handler that changes a task: `Task.touch`), the provider's options' revision and
`key` (the operation, the base URL the links point at, whatever else the rendering reads), so any change of
state renders afresh; the cache is bounded (least recently read dropped first) and emptied on reset.

Values that must be made at the moment of each read, such as a link signed from now and its expiry, are *late*:
the rendering puts `late.slot(fill)` where such a string goes, the encoded body is kept as bytes split at those
places, and each read joins them with `fill(now)`: byte for byte what rendering the task afresh would give.
The self-check validates the first answer of an entry in full and remembers the verdict on the entry
(`Verdict.checked_for`): the other reads differ only in the late strings, which come from the same code each
time. An entry whose answer broke its contract is never marked, so each read of it is checked (and reported)
again.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import replace

from simulator.engine import Task
from simulator.pipeline.answer import Answer, encode_json

Fill = Callable[[float], str]
CAPACITY = 4096


class Late:
    """The late strings of one rendering: each `slot` stands for a string made at the moment of each read."""

    def __init__(self) -> None:
        # Random per rendering: no string a client sent (echoed in a body) can pass for a slot.
        self.nonce = secrets.token_hex(8)
        self.fills: list[Fill] = []

    def slot(self, fill: Fill) -> str:
        self.fills.append(fill)
        return f"\x00{self.nonce}:{len(self.fills) - 1}\x00"

    def split(self, body: bytes) -> tuple[list[bytes], list[int]]:
        """`body`'s text between its slots, and which slot stands in each gap. A slot is a whole string value as
        compact JSON writes it, `"\\u0000{nonce}:{index}\\u0000"`; plain splits rather than a pattern, since a
        pattern per rendering would fill the regex cache and cost a compilation each time."""
        opening, closing = b'"\\u0000' + self.nonce.encode() + b":", b'\\u0000"'
        first, *rest = body.split(opening)
        parts, order = [first], []
        for piece in rest:
            index, _, after = piece.partition(closing)
            order.append(int(index))
            parts.append(after)
        return parts, order


class Verdict:
    """The self-check's verdict on a kept rendering, named by every answer filled from it. Kept apart from the
    `Template`: a kept answer naming the template that keeps it would be a reference cycle, freed only by a full
    collection, which `serve` no longer walks once the pair has been frozen (simulator.heap)."""

    __slots__ = ("checked_for",)

    def __init__(self) -> None:
        self.checked_for: tuple[str, str] | None = None  # (provider, operation) the self-check passed it for


class Template:
    """A rendered answer whose body is kept as the bytes between its late strings."""

    __slots__ = ("answer", "fills", "first", "task", "then", "verdict")

    def __init__(self, task: Task, answer: Answer, late: Late) -> None:
        self.task = task  # the very task: an ID may come again after a reset, as another task
        self.verdict = Verdict()
        self.fills = late.fills
        if not late.fills:
            self.first: bytes = answer.body
            self.then: tuple[tuple[int, bytes], ...] = ()
            self.answer = replace(answer, verdict=self.verdict)
            return
        parts, order = late.split(answer.body)
        if any(late.nonce.encode() in part for part in parts):
            raise ValueError("a late string was rendered inside another string, not as a value of its own")
        # The body is `first`, then for each (slot, part) of `then` the slot's string and the part.
        self.first, self.then = parts[0], tuple(zip(order, parts[1:], strict=True))
        # The answer's own value holds the slots' placeholders: no transport may send it.
        self.answer = replace(answer, body=b"", value=None, verdict=self.verdict)

    def fill(self, now: float) -> Answer:
        if not self.fills:
            return self.answer
        values = [_json_string(fill(now)) for fill in self.fills]
        pieces = [self.first]
        for index, part in self.then:
            pieces += (values[index], part)
        return self.answer.with_body(b"".join(pieces))


def _json_string(text: str) -> bytes:
    """`text` as a JSON string, as encode_json writes it: printable ASCII without quotes or backslashes (links,
    timestamps) needs no escaping, so it is not run through the encoder."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return encode_json(text)


class SettledAnswers:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Template] = OrderedDict()

    def answer(self, task: Task, key: tuple[Hashable, ...], now: float, render: Callable[[Late], Answer]) -> Answer:
        """The answer `render` gives for `task` as it stands, made once per revision of the task and `key`."""
        full_key = (task.id, task.revision, key)
        entry = self._entries.get(full_key)
        if entry is None or entry.task is not task:
            late = Late()
            entry = Template(task, render(late), late)
            self._entries[full_key] = entry
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(full_key)
        return entry.fill(now)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

"""Ids across two runs of one session: which value in one run stands for which in the other.

A recorded session and its replay (or a real provider and the simulator answering the same requests) carry
different ids for the same things: a client mints a fresh `taskUUID` each run, a provider assigns its own task
ids. Two requests are the same request when they differ only in such ids, consistently: the first time an id
appears unbound it binds to its counterpart, and from then on it must stand for that counterpart everywhere.

Ids are recognised by shape: UUIDs, and tokens of 16 or more letters, digits, `_` and `-` that hold a digit and are
not digits alone (task ids, Gemini batch names, Civitai's `4463523-20260101000000000` workflow ids). Hash
references the redactor wrote (`sha256:…`, `prompt:sha256:…`) are content, not ids: they must be equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ID_TOKEN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![A-Za-z0-9_:-])(?=[A-Za-z_-]*[0-9])(?=[0-9]*[A-Za-z_-])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])")
CONTENT_PREFIXES = ("sha256:", "prompt:sha256:")


def tokens(text: str) -> tuple[list[str], list[str]]:
    """`text` split into its literal parts and the ids between them (literal parts are one more than ids)."""
    if text.startswith(CONTENT_PREFIXES):
        return [text], []
    literals, ids, position = [], [], 0
    for found in ID_TOKEN.finditer(text):
        literals.append(text[position:found.start()])
        ids.append(found.group(0))
        position = found.end()
    literals.append(text[position:])
    return literals, ids


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a JSON value (keys left out)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from strings(item)


def ids_in(value: Any) -> Iterator[str]:
    """Every id anywhere in a JSON value (keys left out)."""
    for text in strings(value):
        yield from tokens(text)[1]


@dataclass
class IdMap:
    """A one-to-one map between the ids of two runs: `left` (e.g. recorded) and `right` (e.g. live)."""

    to_right: dict[str, str] = field(default_factory=dict)
    to_left: dict[str, str] = field(default_factory=dict)

    def bind(self, pairs: dict[str, str]) -> list[str]:
        """Record new pairs; returns the left ids that were new."""
        new = []
        for left, right in pairs.items():
            if left not in self.to_right:
                self.to_right[left] = right
                self.to_left[right] = left
                new.append(left)
        return new

    def rightwards(self, value: Any) -> Any:
        """A left-run value with every bound id replaced by its right-run counterpart."""
        return _substitute(value, self.to_right)

    def leftwards(self, value: Any) -> Any:
        return _substitute(value, self.to_left)


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        literals, ids = tokens(value)
        if not ids:
            return value
        out = literals[0]
        for token, literal in zip(ids, literals[1:], strict=True):
            out += mapping.get(token, token) + literal
        return out
    if isinstance(value, dict):
        return {key: _substitute(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, mapping) for item in value]
    return value


@dataclass(frozen=True)
class Difference:
    """Where two values first part: a path (`body[0].positivePrompt`), and what each side holds there."""

    path: str
    left: Any
    right: Any


def _join(path: str, part: str | int) -> str:
    return f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))


def same(left: Any, right: Any, ids: IdMap, path: str = "") -> tuple[dict[str, str], list[Difference]]:
    """The id pairs under which `left` and `right` are the same value, and the differences if they are not.

    Bound ids must map to each other; unbound ids on both sides pair up (tentatively: the caller binds them
    if it takes the match)."""
    pairs: dict[str, str] = {}
    differences: list[Difference] = []
    _compare(left, right, ids, path, pairs, differences)
    return pairs, differences


def _compare(left: Any, right: Any, ids: IdMap, path: str, pairs: dict[str, str],
             differences: list[Difference]) -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                differences.append(Difference(_join(path, key), left.get(key), right.get(key)))
            else:
                _compare(left[key], right[key], ids, _join(path, key), pairs, differences)
    elif isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            differences.append(Difference(f"{path} (length)", len(left), len(right)))
        for index, (a, b) in enumerate(zip(left, right, strict=False)):
            _compare(a, b, ids, _join(path, index), pairs, differences)
    elif isinstance(left, str) and isinstance(right, str):
        if left == right:
            return
        left_literals, left_ids = tokens(left)
        right_literals, right_ids = tokens(right)
        if left_literals != right_literals or len(left_ids) != len(right_ids) or not _ids_agree(
                left_ids, right_ids, ids, pairs):
            differences.append(Difference(path, left, right))
    elif left != right or type(left) is not type(right):
        differences.append(Difference(path, left, right))


def _ids_agree(left_ids: list[str], right_ids: list[str], ids: IdMap, pairs: dict[str, str]) -> bool:
    for left, right in zip(left_ids, right_ids, strict=True):
        bound = ids.to_right.get(left, pairs.get(left))
        if bound is not None:
            if bound != right:
                return False
        elif right in ids.to_left or right in pairs.values():
            return False
        else:
            pairs[left] = right
    return True

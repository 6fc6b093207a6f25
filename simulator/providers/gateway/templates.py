"""Wire shapes as data: a JSON template whose `"$name"` strings are filled with computed values.

A gateway provider's `provider.json` writes each body it sends (create answer, task detail, error
envelope, credits) as a template, so field names, order, constants and nesting are the provider's
data, and the Python side only computes the values. A value of None is either kept as `null` or the
key is left out, as the provider's documents show (`"absent": "null"` or `"omit"`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ABSENT_MODES = ("omit", "null")


@dataclass(frozen=True)
class Template:
    shape: Any
    omit_absent: bool

    @classmethod
    def from_data(cls, data: Mapping[str, Any], where: str) -> Template:
        absent = data.get("absent", "omit")
        if absent not in ABSENT_MODES:
            raise ValueError(f"{where}: 'absent' must be one of {ABSENT_MODES}, not {absent!r}")
        return cls(data["template"], absent == "omit")

    def names(self) -> set[str]:
        """Every value name the template asks for (checked against what the gateway computes)."""
        return set(_names(self.shape))

    def fill(self, values: Mapping[str, Any]) -> Any:
        return _fill(self.shape, values, self.omit_absent)


def _names(node: Any) -> Iterator[str]:
    if isinstance(node, str) and node.startswith("$"):
        yield node[1:]
    elif isinstance(node, dict):
        for value in node.values():
            yield from _names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _names(item)


def _fill(node: Any, values: Mapping[str, Any], omit_absent: bool) -> Any:
    if isinstance(node, str) and node.startswith("$"):
        return values[node[1:]]
    if isinstance(node, dict):
        filled: dict[str, Any] = {}
        for key, sub in node.items():
            value = _fill(sub, values, omit_absent)
            if value is None and omit_absent:
                continue
            filled[key] = value
        return filled
    if isinstance(node, list):
        return [_fill(item, values, omit_absent) for item in node]
    return node

"""Checks for settings that come from outside: the control plane, scenario files, the CLI, markers.

Every refusal names the field it refuses (`rules[0].do.status`), quotes the value only briefly (a
60 MB value must not travel on in an error message), and happens before anything changes, so a call
is either taken whole or refused whole. What passes is plain JSON that can always be served back.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

# Plain data from outside stays small: a setting is a few rules or patterns, not a data set.
MAX_NODES = 20_000
MAX_DEPTH = 32
# Integers beyond 128 bits mean nothing to any setting (the largest real one is Runware's int64 seed).
MAX_INT_BITS = 128
QUOTE_CHARS = 60


class Invalid(ValueError):
    """A setting that cannot be taken. `field` says where it sits in the call (`rules[0].do.status`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def quote(value: Any) -> str:
    """A short rendering of a refused value for a message (never the whole of a huge one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}… ({len(text)} characters)"


def refuse(field: str, message: str) -> Invalid:
    """The refusal of `field` (an empty field is the whole body of a call)."""
    field = field or "body"
    return Invalid(f"{field}: {message}", field)


def join(field: str, key: str | int) -> str:
    """`rules[0]` + `do` → `rules[0].do`; + 2 → `rules[0].do[2]`."""
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else key


def number(
    value: Any, field: str, *, low: float, high: float, integer: bool = False, above: bool = False, unit: str = ""
) -> float:
    """A finite number in [low, high] (or (low, high] with `above`); integers only with `integer`."""
    kind = "a whole number" if integer else "a number"
    span = f"{'above' if above else 'from'} {_shown(low)} {'up ' if above else ''}to {_shown(high)}"
    span += f" {unit}" if unit else ""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (integer and isinstance(value, float) and not value.is_integer()):
        raise refuse(field, f"must be {kind} {span}, not {quote(value)}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise refuse(field, f"must be {kind} {span}, not {quote(value)}")
    if not math.isfinite(value):
        raise refuse(field, f"must be a finite number {span}, not {quote(value)}")
    if value < low or value > high or (above and value == low):
        raise refuse(field, f"must be {kind} {span}, not {quote(value)}")
    return int(value) if integer else value


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e16 else f"{bound:g}"


def text(value: Any, field: str, *, max_length: int = 1000, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise refuse(field, f"must be a string, not {quote(value)}")
    if not empty and not value:
        raise refuse(field, "must not be empty")
    if len(value) > max_length:
        raise refuse(field, f"must be at most {max_length} characters, not {len(value)}")
    _encodable(value, field)
    return value


def texts(value: Any, field: str, *, max_items: int = 1000, max_length: int = 1000) -> list[str]:
    """A string or a list of strings (a rule's "any of"), as a list."""
    items = value if isinstance(value, list) else [value]
    if len(items) > max_items:
        raise refuse(field, f"may list at most {max_items} values, not {len(items)}")
    return [text(item, join(field, i) if isinstance(value, list) else field, max_length=max_length)
            for i, item in enumerate(items)]


def mapping(
    value: Any, field: str, allowed: Collection[str] | None = None, what: str = "an object"
) -> Mapping[str, Any]:
    """A JSON object with only `allowed` keys (any string keys when `allowed` is None)."""
    if not isinstance(value, Mapping):
        raise refuse(field, f"must be {what}, not {quote(value)}")
    for key in value:
        if not isinstance(key, str):
            raise refuse(field, f"keys must be strings, not {quote(key)}")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            shown = ", ".join(quote(key) for key in unknown[:5])
            raise refuse(join(field, unknown[0]), f"unknown key{'s' if len(unknown) > 1 else ''} {shown}; "
                                                  f"{what} has {', '.join(sorted(allowed))}")
    return value


def named(raw: Any, field: str, allowed: Collection[str], what: str, default_name: str) -> str:
    """The opening of every entry of a settings list (a rule, a limit): plain JSON, an object with only `allowed`
    keys, and its `name` (a short non-empty string) or `default_name`."""
    plain(raw, field)
    mapping(raw, field, allowed, what)
    if raw.get("name") is None:
        return default_name
    return text(raw["name"], join(field, "name"), max_length=200, empty=False)


def items(value: Any, field: str, *, max_items: int, what: str = "a list") -> list[Any]:
    if not isinstance(value, list):
        raise refuse(field, f"must be {what}, not {quote(value)}")
    if len(value) > max_items:
        raise refuse(field, f"may hold at most {max_items} entries, not {len(value)}")
    return value


def plain(value: Any, field: str, max_nodes: int = MAX_NODES) -> None:
    """Plain JSON data that can always be served back: objects with string keys, lists, strings without
    lone surrogates, finite numbers, integers JSON readers keep, booleans, null; bounded in depth and size.
    YAML documents (scenario files) can hold dates, sets or aliases that multiply; all are refused."""
    budget = [max_nodes]

    def walk(node: Any, where: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise refuse(field, f"holds more than {max_nodes} values; a setting must stay small")
        if depth > MAX_DEPTH:
            raise refuse(where, f"is nested deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, bool):
            return
        if isinstance(node, int):
            if node.bit_length() > MAX_INT_BITS:
                raise refuse(where, f"{quote(node)} is too large")
            return
        if isinstance(node, float):
            if not math.isfinite(node):
                raise refuse(where, f"must be a finite number, not {quote(node)}")
            return
        if isinstance(node, str):
            _encodable(node, where)
            return
        if isinstance(node, Mapping):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise refuse(where, f"keys must be strings, not {quote(key)}")
                _encodable(key, where)
                walk(child, join(where, key), depth + 1)
            return
        if isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, join(where, i), depth + 1)
            return
        raise refuse(where, f"must be JSON data (object, list, string, number, boolean, null), "
                            f"not a {type(node).__name__}")

    walk(value, field, 0)


def _encodable(value: str, field: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise refuse(field, f"holds a lone surrogate (\\u{ord(value[exc.start]):04x}) at character {exc.start}, "
                            "which no JSON text can carry") from None

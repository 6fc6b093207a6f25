"""The expectation language of conformance cases: dotted paths into a body, `$` matchers, schema and image checks.

A literal expects that value; a mapping of matchers (`$type`, `$in`, `$absent`, `$present`, `$matches`,
`$contains`, `$length`, `$gte`, `$lte`, `$not`) expects each of them to hold. Every function answers with the
reasons a value falls short (an empty list when it does not), in words a case's report can show.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

from simulator.conformance.cases import CaseFileError
from simulator.validation import dotted_path, schema_set

Json = Any
MATCHERS = frozenset({"$type", "$in", "$absent", "$present", "$matches", "$contains", "$length", "$gte", "$lte",
                      "$not"})
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
    "null": type(None),
}
MISSING = object()


def split_path(path: str) -> list[str]:
    """`a.b.0.c`, with `["key.with.dots"]` for keys that contain dots; `$` is the whole document."""
    if path in ("", "$"):
        return []
    parts: list[str] = []
    for token in re.finditer(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)', path):
        parts.append(token.group(1).replace('\\"', '"') if token.group(1) is not None else token.group(2))
    return parts


def lookup(document: Json, path: str) -> Any:
    current = document
    for part in split_path(path):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part) and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def match(value: Any, expected: Any, path: str) -> list[str]:
    """Why `value` (at `path`) does not meet `expected`: a literal, or a mapping of `$` matchers."""
    if isinstance(expected, dict) and expected and set(expected) <= MATCHERS:
        return [problem for name, argument in expected.items() for problem in _matcher(value, name, argument, path)]
    if value is MISSING:
        return [f"{path}: missing (expected {excerpt(expected)})"]
    if not _equal(value, expected):
        return [f"{path}: {excerpt(value)}, expected {excerpt(expected)}"]
    return []


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return bool(value == expected)


def _matcher(value: Any, name: str, argument: Any, path: str) -> list[str]:
    present = value is not MISSING
    shown = excerpt(value) if present else "missing"
    if name == "$absent":
        return [f"{path}: {shown}, expected it absent"] if present == bool(argument) else []
    if name == "$present":
        return [f"{path}: {shown}, expected it present"] if present != bool(argument) else []
    if not present:
        return [f"{path}: missing (expected {name} {excerpt(argument)})"]
    if name == "$type":
        kinds = argument if isinstance(argument, list) else [argument]
        ok = any(isinstance(value, JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
                 for kind in kinds)
        return [] if ok else [f"{path}: {shown} is not of type {argument}"]
    if name == "$in":
        return [] if any(_equal(value, item) for item in argument) else [f"{path}: {shown}, expected one of {argument}"]
    if name == "$not":
        return [f"{path}: {shown}, expected anything else"] if _equal(value, argument) else []
    if name == "$matches":
        return [] if isinstance(value, str) and re.search(argument, value) else [f"{path}: {shown} !~ /{argument}/"]
    if name == "$contains":
        if isinstance(value, str | list) and argument in value:
            return []
        return [f"{path}: {shown} does not contain {excerpt(argument)}"]
    if name == "$length":
        ok = isinstance(value, str | list | dict) and len(value) == argument
        return [] if ok else [f"{path}: {shown} does not have length {argument}"]
    if name in ("$gte", "$lte"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and (
            value >= argument if name == "$gte" else value <= argument)
        return [] if ok else [f"{path}: {shown}, expected {'≥' if name == '$gte' else '≤'} {argument}"]
    raise CaseFileError(f"unknown matcher {name}")


def schema_problems(slug: str, name: str, body: Json) -> list[str]:
    """Violations of `schemas/<slug>/response/<name>.json` by a body (a bad name is a bug in the data)."""
    report = schema_set(slug).validate(f"response/{name}", body)
    return [f"schema {name}: {dotted_path(v.path) or '$'}: {v.message}" for v in report.violations[:5]]


def image_problems(content: bytes, expected: Mapping[str, Any]) -> list[str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            size, kind = image.size, (image.format or "").lower()
    except (UnidentifiedImageError, OSError):
        return [f"not an image ({len(content)} bytes)"]
    problems = []
    wanted = (expected.get("width", size[0]), expected.get("height", size[1]))
    if size != wanted:
        problems.append(f"image is {size[0]}x{size[1]}, expected {expected.get('width')}x{expected.get('height')}")
    if "format" in expected and kind != str(expected["format"]).lower():
        problems.append(f"image format {kind!r}, expected {expected['format']!r}")
    return problems


def excerpt(value: Any, limit: int = 300) -> str:
    if isinstance(value, bytes):
        value = value[:limit].decode(errors="replace")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"

"""Schema defaults filled by compiled fillers (simulator.validation, SchemaSet.with_defaults) give what the plain
walk of the schema gave: the same values, members in the same order, and fresh copies in the same places (the
caller may change what it gets; the request it was made from must not change with it)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from support_examples import SLUGS, documented_bodies

from simulator.validation import SchemaSet, _resolved


def _walk(schema: Any, instance: Any, resolver: Any, lookups: dict[Any, Any]) -> Any:
    """The reference: the schema walked anew for every value (as SchemaSet.with_defaults did before)."""
    if not isinstance(schema, dict):
        return instance
    if "$ref" in schema:
        resolved = _resolved(schema, schema["$ref"], resolver, lookups)
        instance = _walk(resolved.contents, instance, resolved.resolver, lookups)
    for part in schema.get("allOf", []):
        instance = _walk(part, instance, resolver, lookups)
    discriminator = schema.get("discriminator")
    if discriminator and isinstance(instance, dict):
        target = discriminator["mapping"].get(instance.get(discriminator["propertyName"]))
        if isinstance(target, str):
            resolved = _resolved(schema, target, resolver, lookups)
            instance = _walk(resolved.contents, instance, resolved.resolver, lookups)
    if isinstance(instance, dict) and isinstance(schema.get("properties"), dict):
        filled = dict(instance)
        for key, sub in schema["properties"].items():
            if key in filled:
                filled[key] = _walk(sub, filled[key], resolver, lookups)
            elif isinstance(sub, dict) and "default" in sub:
                default = sub["default"]
                filled[key] = copy.deepcopy(default) if isinstance(default, list | dict) else default
        instance = filled
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        instance = [_walk(schema["items"], item, resolver, lookups) for item in instance]
    return instance


def _same_sharing(got: Any, expected: Any, original: Any, where: str = "") -> list[str]:
    """Where one result shares a list or object with the request and the other does not."""
    out = []
    if (got is original) != (expected is original) and isinstance(original, list | dict):
        out.append(where or "(top)")
    if isinstance(got, dict) and isinstance(expected, dict) and isinstance(original, dict):
        for key in original:
            if key in got and key in expected:
                out += _same_sharing(got[key], expected[key], original[key], f"{where}.{key}")
    if isinstance(got, list) and isinstance(expected, list) and isinstance(original, list):
        for n, (a, b, c) in enumerate(zip(got, expected, original, strict=False)):
            out += _same_sharing(a, b, c, f"{where}[{n}]")
    return out


def _cases(slug: str) -> list[tuple[str, str, Any]]:
    schemas = SchemaSet(slug)
    found = []
    for file, body in documented_bodies(slug):
        for name in schemas.names():
            if name.startswith("request/") and schemas.is_valid(name, body):
                found.append((file, name, body))
            elif name.startswith("request/") and isinstance(body, list):  # Runware: one task at a time
                found += [(file, name, item) for item in body if schemas.is_valid(name, item)]
    return found


@pytest.mark.parametrize("slug", SLUGS)
def test_compiled_filling_gives_what_the_walk_gave(slug: str) -> None:
    schemas = SchemaSet(slug)
    cases = _cases(slug)
    assert cases
    for file, name, body in cases:
        document = schemas.document(name)
        expected = _walk(document, body, schemas.resolver(name), {})
        before = json.dumps(body)
        got = schemas.with_defaults(name, body)
        again = schemas.with_defaults(name, body)  # compiled once, used again
        assert json.dumps(got) == json.dumps(again) == json.dumps(expected), f"{file} against {name}"
        assert not _same_sharing(got, expected, body), f"{file} against {name}"
        assert json.dumps(body) == before  # the request itself untouched


def test_a_default_list_or_object_is_each_callers_own() -> None:
    schemas = SchemaSet("civitai")
    body = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2", "prompt": "x"}}]}
    first = schemas.with_defaults("request/workflow-template", body)
    second = schemas.with_defaults("request/workflow-template", body)
    shared = [key for key, value in first.items() if isinstance(value, list | dict) and value is second[key]]
    assert not shared
    assert first == second

"""Proto3 JSON as Google's front end reads it: either spelling of a member, one field in the end.

The request schemas list each multi-word member twice, its lowerCamel JSON name and its proto (snake_case)
name, the second marked `x-alias-of`. After validation this module walks the schema beside the body and
renames every alias to the member it stands for, so handlers read one spelling. Along the way it finds what
the validator cannot: a member given in both spellings (one proto field set twice) and members only Vertex
AI has (`x-api: vertex`) in a Gemini API request. Free-form members (`x-free-form`, a protobuf Struct) keep
their keys as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.validation import SchemaSet


@dataclass(frozen=True)
class Misfit:
    """A member the proto parser refuses: `kind` is `duplicate` (both spellings) or `vertex_only`."""

    kind: str
    path: tuple[str | int, ...]
    name: str
    other: str = ""


@dataclass
class Normalised:
    value: Any
    misfits: list[Misfit] = field(default_factory=list)


def normalise(schemas: SchemaSet, schema: str, value: Any, *, vertex: bool) -> Normalised:
    """`value` (valid against `schema`) with every snake_case alias renamed to its lowerCamel member."""
    result = Normalised(None)
    result.value = _walk(schemas.document(schema), value, schemas.resolver(schema), (), vertex, result.misfits)
    return result


def _properties(schema: Any, resolver: Any) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """Every property the schema (through $ref, allOf, anyOf, oneOf) declares, with the resolver to read it,
    and whether it is free-form."""
    found: dict[str, tuple[Any, Any]] = {}
    free = False
    pending = [(schema, resolver)]
    while pending:
        node, here = pending.pop()
        if not isinstance(node, dict):
            continue
        free = free or bool(node.get("x-free-form"))
        if "$ref" in node:
            resolved = here.lookup(node["$ref"])
            pending.append((resolved.contents, resolved.resolver))
        for key in ("allOf", "anyOf", "oneOf"):
            pending.extend((part, here) for part in node.get(key, []))
        for name, sub in node.get("properties", {}).items():
            found.setdefault(name, (sub, here))
    return found, free


def _items(schema: Any, resolver: Any) -> tuple[Any, Any] | None:
    pending = [(schema, resolver)]
    while pending:
        node, here = pending.pop()
        if not isinstance(node, dict):
            continue
        if "items" in node:
            return node["items"], here
        if "$ref" in node:
            resolved = here.lookup(node["$ref"])
            pending.append((resolved.contents, resolved.resolver))
        for key in ("allOf", "anyOf", "oneOf"):
            pending.extend((part, here) for part in node.get(key, []))
    return None


def _annotation(schema: Any, resolver: Any, key: str) -> Any:
    """An annotation of a member's own schema (before any $ref it points through, then after)."""
    node, here = schema, resolver
    while isinstance(node, dict):
        if key in node:
            return node[key]
        if "$ref" not in node:
            return None
        resolved = here.lookup(node["$ref"])
        node, here = resolved.contents, resolved.resolver
    return None


def _walk(schema: Any, value: Any, resolver: Any, path: tuple[str | int, ...], vertex: bool,
          misfits: list[Misfit]) -> Any:
    if isinstance(value, list):
        items = _items(schema, resolver)
        if items is None:
            return value
        return [_walk(items[0], item, items[1], (*path, n), vertex, misfits) for n, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    properties, free = _properties(schema, resolver)
    if free or not properties:
        return value
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for name, member in value.items():
        sub = properties.get(name)
        if sub is None:
            out[name] = member
            continue
        alias_of = sub[0].get("x-alias-of") if isinstance(sub[0], dict) else None
        target = alias_of or name
        if not vertex and _annotation(*sub, "x-api") == "vertex":
            misfits.append(Misfit("vertex_only", (*path, name), name))
        if target in given:
            misfits.append(Misfit("duplicate", (*path, name), name, given[target]))
        given[target] = name
        out[target] = _walk(sub[0], member, sub[1], (*path, target), vertex, misfits)
    return out


def proto_path(path: tuple[str | int, ...]) -> str:
    """A path as Google's parser words it: proto field names (snake_case) and `[i]` indexes."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + snake_case(part)
    return text


def snake_case(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")

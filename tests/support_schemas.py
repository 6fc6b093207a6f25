"""Helpers shared by the schema tests of several providers; this module holds no tests."""

from __future__ import annotations

from typing import Any


def schema_references(node: Any) -> list[str]:
    """Every `$ref` in a schema document, and every target of a `discriminator` mapping."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            found.extend(discriminator["mapping"].values())
        for key, value in node.items():
            if key != "discriminator":
                found.extend(schema_references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(schema_references(item))
    return found

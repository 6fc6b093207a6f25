"""The project's own data formats, each described by a JSON Schema in `schemas/_formats/` and checked on load.

Scenarios, rehearsals, conformance cases and each provider's `provider.json` are data that people write by
hand; a typo in a key must stop the load with the file, the place and what is allowed there, not be
ignored. The formats are data too: extending one is an edit to its schema, not to a key set in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match, relevance

from simulator.resources import schemas_dir

FOLDER = "_formats"
_BRANCH_MISMATCH = frozenset({"type", "const", "not"})


class FormatError(ValueError):
    """A data file that does not follow its format; the message names the file, the place and the rule."""


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((schemas_dir() / FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _where(error: ValidationError) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path).lstrip(".")


def _explain(error: ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"unknown key(s) {unknown}; allowed: {allowed}"
    return error.message


def _deepest(error: ValidationError) -> ValidationError:
    """A failed `oneOf`/`anyOf` says little by itself: what its most relevant alternative objected to does."""
    while error.context:
        # An alternative refused outright for its kind (`type`, `const`, `not`) is not the one the author meant.
        meant = [e for e in error.context if e.relative_path or e.validator not in _BRANCH_MISMATCH]
        error = best_match(meant or error.context)
    return error


def problems(document: Any, name: str) -> list[str]:
    """Every place `document` breaks the `name` format, most relevant first (empty when it follows it)."""
    errors: Iterable[ValidationError] = _validator(name).iter_errors(document)
    found = [_deepest(error) for error in sorted(errors, key=relevance, reverse=True)]
    return [f"{_where(error) or '$'}: {_explain(error)}" for error in found]


def check(document: Any, name: str, source: str, error: type[Exception] = FormatError) -> None:
    found = problems(document, name)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise error(f"{source}: not a valid {name} file: {found[0]}{more}")


def load_yaml(text: str, name: str, source: str, error: type[Exception] = FormatError) -> Any:
    """A YAML document (safe_load only) that follows the `name` format."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from exc
    check(document, name, source, error)
    return document

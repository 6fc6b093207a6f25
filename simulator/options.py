"""Named compatibility options: provider behaviour that differs between doc versions.

Each provider's `schemas/<slug>/provider.json` lists its options under "options", each with a
default, its JSON `type` and range (`choices`, or `minimum`/`maximum`, `items`, `maxItems`, `maxLength`
as in JSON Schema) and the doc reference that motivates it. The choice made by default is explained
in `schemas/<slug>/README.md`. A value is checked against its type and range wherever it is set (the
control plane, `serve --option`, scenarios, test markers), and a set of values is taken whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from simulator import checks, data_formats
from simulator.checks import Invalid
from simulator.resources import schemas_dir

# The keys of an option's spec that are JSON Schema; `choices` is its `enum`.
SCHEMA_KEYS = ("type", "minimum", "maximum", "exclusiveMinimum", "items", "maxItems", "minItems", "maxLength",
               "minLength", "uniqueItems")


class OptionError(Invalid):
    pass


@cache
def provider_data(slug: str) -> dict[str, Any]:
    """The provider's data card (`schemas/<slug>/provider.json`): options, models, prices, hosts; checked against
    its format (`schemas/_formats/provider-card.json`) once, when first read."""
    data: dict[str, Any] = json.loads((schemas_dir() / slug / "provider.json").read_text(encoding="utf-8"))
    data_formats.check(data, "provider-card", f"schemas/{slug}/provider.json")
    return data


@cache
def provider_slugs() -> list[str]:
    """Every provider that has a data card, in name order."""
    return sorted(path.parent.name for path in schemas_dir().glob("*/provider.json"))


def known_provider(slug: Any, field: str) -> str:
    """A provider slug that has a data card (served or not), or a refusal naming `field` and the known ones."""
    if slug not in provider_slugs():
        raise checks.refuse(field, f"unknown provider {checks.quote(slug)}; known: {', '.join(provider_slugs())}")
    return str(slug)


def option_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema an option's values must meet, from its spec."""
    schema = {key: spec[key] for key in SCHEMA_KEYS if key in spec}
    if "choices" in spec:
        schema["enum"] = spec["choices"]
    return schema


@cache
def _validator(slug: str, name: str) -> Draft202012Validator:
    return Draft202012Validator(option_schema(provider_data(slug)["options"][name]))


def expectation(spec: Mapping[str, Any]) -> str:
    """What an option takes, in words: `one of [405, 404]`, `a number from 0 to 86400`."""
    if "choices" in spec:
        return f"one of {json.dumps(spec['choices'])}"
    kind = spec.get("type")
    if kind in ("number", "integer"):
        low = spec.get("minimum", spec.get("exclusiveMinimum"))
        word = "above" if "exclusiveMinimum" in spec else "from"
        noun = "a whole number" if kind == "integer" else "a number"
        return f"{noun} {word} {low} to {spec.get('maximum')}"
    if kind == "array":
        return f"a list of at most {spec.get('maxItems')} items, each {expectation(spec.get('items', {}))}"
    if kind == "string":
        return f"a string of at most {spec.get('maxLength')} characters"
    return f"a {kind}"


class ProviderOptions:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self._spec: dict[str, dict[str, Any]] = provider_data(slug).get("options", {})
        self._values: dict[str, Any] = {}
        self.revision = 0  # moves on with every change: what was rendered under other values is stale
        self.reset()

    def reset(self) -> None:
        self._values = {name: spec["default"] for name, spec in self._spec.items()}
        self.revision += 1

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def has(self, name: str) -> bool:
        return name in self._spec

    def checked(self, name: str, value: Any, field: str = "") -> Any:
        """The value as the option keeps it (a JSON text from the command line read as JSON), or OptionError naming
        `field`.`name`."""
        where = checks.join(field, name)
        spec = self._spec.get(name)
        if spec is None:
            raise OptionError(f"{where}: {self.slug} has no option {checks.quote(name)}; options: "
                              f"{', '.join(sorted(self._spec))}", where)
        if isinstance(value, str) and spec.get("type") != "string":
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise OptionError(f"{where}: {self.slug}.{name} takes {expectation(spec)}; "
                                  f"{checks.quote(value)} is not a JSON value", where) from None
        try:
            checks.plain(value, where)
        except Invalid as exc:
            raise OptionError(str(exc), exc.field) from None
        if not _validator(self.slug, name).is_valid(value):
            raise OptionError(f"{where}: {self.slug}.{name} takes {expectation(spec)}, not {checks.quote(value)}",
                              where)
        if spec.get("type") == "integer" and isinstance(value, float):
            value = int(value)
        return value

    def update(self, values: Mapping[str, Any], field: str = "") -> None:
        """Set several options at once: every value is checked first, so a bad one changes none."""
        checked = {name: self.checked(name, value, field) for name, value in values.items()}
        self._values.update(checked)
        self.revision += 1

    def set(self, name: str, value: Any) -> None:
        self.update({name: value})

    def describe(self) -> dict[str, Any]:
        return {
            name: {**spec, "value": self._values[name]}
            for name, spec in sorted(self._spec.items())
        }

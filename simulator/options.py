"""Named compatibility options: provider behaviour that differs between doc versions.

Each provider's `schemas/<slug>/provider.json` lists its options under "options", each with a
default, the accepted choices (or a JSON type) and the doc reference that motivates it. The
choice made by default is explained in `schemas/<slug>/README.md`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from simulator import data_formats
from simulator.resources import schemas_dir


class OptionError(ValueError):
    pass


@cache
def provider_data(slug: str) -> dict[str, Any]:
    """The provider's data card (`schemas/<slug>/provider.json`): options, models, prices, hosts; checked against
    its format (`schemas/_formats/provider-card.json`) once, when first read."""
    data: dict[str, Any] = json.loads((schemas_dir() / slug / "provider.json").read_text(encoding="utf-8"))
    data_formats.check(data, "provider-card", f"schemas/{slug}/provider.json")
    return data


class ProviderOptions:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self._spec: dict[str, dict[str, Any]] = provider_data(slug).get("options", {})
        self._values: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        self._values = {name: spec["default"] for name, spec in self._spec.items()}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def has(self, name: str) -> bool:
        return name in self._spec

    def set(self, name: str, value: Any) -> None:
        spec = self._spec.get(name)
        if spec is None:
            raise OptionError(f"{self.slug} has no option {name!r}; options: {sorted(self._spec)}")
        choices = spec.get("choices")
        if isinstance(value, str) and not isinstance(spec["default"], str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise OptionError(f"{self.slug}.{name}: {value!r} is not valid JSON") from exc
        if choices is not None and value not in choices:
            raise OptionError(f"{self.slug}.{name} must be one of {choices}, not {value!r}")
        if choices is None and type(value) is not type(spec["default"]) and not (
            isinstance(value, (int, float)) and isinstance(spec["default"], (int, float))
        ):
            raise OptionError(f"{self.slug}.{name} takes a {type(spec['default']).__name__}, not {value!r}")
        self._values[name] = value

    def describe(self) -> dict[str, Any]:
        return {
            name: {**spec, "value": self._values[name]}
            for name, spec in sorted(self._spec.items())
        }

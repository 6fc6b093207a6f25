"""Typed query and path parameters, read as the operations table declares them (provider.json `parameters`).

`{"query": {name: schema}, "path": {name: schema}, "required": [names]}`: each schema is the parameter's
JSON Schema as the provider's own OpenAPI document types it (`integer` with `format: int32` and `minimum`,
`boolean`, `string` with `format: date-time`, `pattern` or `minLength`, `array` of strings). A value that
does not fit is refused the provider's way (`Provider.bad_parameter`), naming the first parameter in table
order; an absent one (or an empty one, but for a plain string) takes the schema's `default` (or None). Path
parameters the table does not type are passed on as the strings they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.formats import parse_iso_utc
from simulator.pipeline.exchange import Exchange

INT32 = 2**31
TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


class BadParameter(ValueError):
    """`rule` is the JSON Schema keyword the raw value breaks (`required`, `type`, `format`, `minimum` …)."""

    def __init__(self, name: str, raw: str | None, rule: str) -> None:
        super().__init__(f"{name}: {rule}")
        self.name = name
        self.raw = raw
        self.rule = rule


def read_parameters(exchange: Exchange, table: Mapping[str, Any]) -> dict[str, Any]:
    """The exchange's path parameters, then its typed ones converted; raises BadParameter for the first misfit."""
    values: dict[str, Any] = dict(exchange.path_params)
    if not table:
        return values
    required = set(table.get("required", ()))
    query = exchange.query
    for location in ("path", "query"):
        for name, schema in table.get(location, {}).items():
            if schema.get("type") == "array":
                values[name] = query.getlist(name)
                continue
            raw = exchange.path_params.get(name) if location == "path" else query.get(name)
            if raw is None or (raw == "" and (name in required or _empty_is_absent(schema))):
                if name in required:
                    raise BadParameter(name, raw, "required")
                values[name] = schema.get("default")
                continue
            values[name] = _typed(name, raw, schema)
    return values


def _empty_is_absent(schema: Mapping[str, Any]) -> bool:
    """`?wait=` means no wait given; an empty plain string (`?sig=`) is a value, if a useless one."""
    return schema.get("type") != "string" or "format" in schema


def _typed(name: str, raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise BadParameter(name, raw, "type") from None
        if schema.get("format") == "int32" and not -INT32 <= value < INT32:
            raise BadParameter(name, raw, "format")
        if "minimum" in schema and value < schema["minimum"]:
            raise BadParameter(name, raw, "minimum")
    elif kind == "boolean":
        lowered = raw.lower()
        if lowered not in TRUE | FALSE:
            raise BadParameter(name, raw, "type")
        value = lowered in TRUE
    elif kind == "string":
        if schema.get("format") == "date-time":
            value = parse_iso_utc(raw)
            if value is None:
                raise BadParameter(name, raw, "format")
        if "pattern" in schema and not re.search(schema["pattern"], raw):
            raise BadParameter(name, raw, "pattern")
        if len(raw) < int(schema.get("minLength", 0)):
            raise BadParameter(name, raw, "minLength")
    return value

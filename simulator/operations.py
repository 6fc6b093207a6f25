"""What each operation takes and answers, as data: provider.json `operations` and `commonResponses`.

One table per provider says, per operation, which request schema its body must satisfy, which typed
query and path parameters it takes, how it authenticates, and which response schema each status answers
with. The request pipeline reads it for every exchange (simulator.pipeline: parameters, body, auth), the
response self-check checks every answer against it, and the OpenAPI export is built from it. Operations every
file-serving provider has (`DownloadImage`) are written once, in `schemas/_shared/operations.json`,
and named in a provider's table as `"_shared"`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from simulator.options import provider_data
from simulator.resources import schemas_dir


class _Named(Protocol):
    """What `str.format_map` needs of the options: values by name."""

    def __getitem__(self, name: str) -> Any: ...


@dataclass(frozen=True)
class ResponseSpec:
    """What one status carries: a JSON body valid against any of `schemas`, a body of one of `media`, or none."""

    schemas: tuple[str, ...] = ()
    media: tuple[str, ...] = ()
    or_empty: bool = False  # `[schema, null]`: that JSON body, or no body at all

    @property
    def empty(self) -> bool:
        return not self.schemas and not self.media

    @classmethod
    def parse(cls, entry: Any) -> ResponseSpec:
        if entry is None:
            return cls()
        if isinstance(entry, str):
            return cls(schemas=(entry,))
        if isinstance(entry, list):
            return cls(schemas=tuple(name for name in entry if name is not None), or_empty=None in entry)
        if isinstance(entry, dict) and set(entry) == {"media"}:
            return cls(media=tuple(entry["media"]))
        raise ValueError(f"a response entry is a schema name, a list of them, null or {{media: [...]}}: {entry!r}")


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    request: str | None  # may hold `{option}` placeholders; see `request_schema`
    responses: Mapping[str, ResponseSpec]  # the operation's own, then the provider's common ones
    auth: str = "required"  # "none": the URL is the credential; "optional": another credential may stand in
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {"query"|"path": {name: schema}}
    enabled_by: str | None = None  # a boolean option without which the route answers 404 (an opt-in legacy route)
    request_media: str = "application/json"
    each_item: bool = False  # the body is an array whose items are validated one by one (one bad item fails alone)
    stream_events: tuple[str, ...] = ()  # the schemas each event of a streamed (SSE) answer may match
    request_optional: bool = False  # no body at all is accepted too (Google's `:cancel` takes `{}` or nothing)

    def request_schema(self, options: _Named) -> str | None:
        return self.request.format_map(options) if self.request else None

    def response(self, status: int) -> ResponseSpec | None:
        """The spec for a status: exact, else its class (`4XX`), else `default` (OpenAPI's order)."""
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in self.responses:
                return self.responses[key]
        return None


def _names(entry: Any) -> tuple[str, ...]:
    return ResponseSpec.parse(entry).schemas


@cache
def _shared() -> dict[str, Any]:
    return json.loads((schemas_dir() / "_shared" / "operations.json").read_text(encoding="utf-8"))


def _entries(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if key != "$comment"}


@cache
def operations(slug: str) -> dict[str, Operation]:
    data = provider_data(slug)
    common = {status: ResponseSpec.parse(entry) for status, entry in _entries(data.get("commonResponses", {})).items()}
    shared = _shared()
    result: dict[str, Operation] = {}
    for name, spec in _entries(data.get("operations", {})).items():
        if spec == "_shared":  # an operation the shared modules serve the same way for every provider
            spec = shared[name]
        own = {status: ResponseSpec.parse(entry) for status, entry in spec.get("responses", {}).items()}
        inherited = common if spec.get("common", True) else {}  # false: not the API's (a CDN link's errors)
        result[name] = Operation(name=name, summary=spec.get("summary", name), request=spec.get("request"),
                                 responses={**own, **{k: v for k, v in inherited.items() if k not in own}},
                                 auth=spec.get("auth", "required"), parameters=spec.get("parameters", {}),
                                 enabled_by=spec.get("enabledBy"),
                                 request_media=spec.get("requestMediaType", "application/json"),
                                 each_item=bool(spec.get("eachItem", False)),
                                 stream_events=_names(spec.get("streamEvents")),
                                 request_optional=bool(spec.get("requestOptional", False)))
    return result

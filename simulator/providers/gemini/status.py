"""Google's error bodies: `google.rpc.Status` as JSON, `{error: {code, message, status, details}}`.

Wording, status names and detail messages are data (provider.json `errors`, `statusNames`, `messages`,
`rateLimit`); this module fills their `{placeholders}` and draws the body. Refusals are raised as
`ProviderError(condition, …)` carrying the detail list, and the provider renders them here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.pipeline import Answer, ProviderError
from simulator.providers.gemini.proto import proto_path
from simulator.validation import Violation

DETAIL_TYPE = "type.googleapis.com/google.rpc."
# The words of the front end's HTML 404 page, for its JSON form (option front_end_html_errors off).
NOT_FOUND_PAGE = "The requested URL {path} was not found on this server."
_PLACEHOLDER = re.compile(r"{([a-z_]+)}")


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """`template` with every `{name}` that `values` knows replaced (others kept), through lists and objects."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(item, values) for key, item in template.items()}
    return template


def details(entries: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Detail messages with their `@type` spelt out (`RetryInfo` → type.googleapis.com/google.rpc.RetryInfo)."""
    out = []
    for entry in entries:
        detail = fill(dict(entry), values)
        kind = str(detail["@type"])
        detail["@type"] = kind if kind.startswith("type.googleapis.com/") else DETAIL_TYPE + kind
        out.append(detail)
    return out


class Wording:
    """Google's refusals by condition name (provider.json `errors`)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: Mapping[str, Any] = data["errors"]
        self.names: Mapping[str, str] = data["statusNames"]

    def status_name(self, status: int) -> str:
        return self.names.get(str(status), self.names["default"])

    def refusal(self, condition: str, **values: Any) -> ProviderError:
        spec = self.errors[condition]
        message = str(fill(spec.get("message", NOT_FOUND_PAGE), values))
        if "detail" in spec:  # the generic wording, and the specifics in a BadRequest field violation
            entries = [{"@type": "BadRequest", "fieldViolations": [{"description": fill(spec["detail"], values)}]}]
        else:
            entries = spec.get("details", [])
        return ProviderError(condition, message, status=int(spec["status"]), code=spec.get("status_name"),
                             details=details(entries, {**values, "message": message}),
                             html=fill(spec["html"], values) if "html" in spec else None)

    def body(self, status: int, message: str, name: str | None = None,
             detail_list: Sequence[Mapping[str, Any]] = (), legacy: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """`legacy`: Vertex AI's `errors` list of the older API error format, which some of its 429s still carry."""
        error: dict[str, Any] = {"code": status, "message": message, "status": name or self.status_name(status)}
        if legacy:
            error["errors"] = list(legacy)
        if detail_list:
            error["details"] = list(detail_list)
        return {"error": error}

    def answer(self, status: int, message: str, name: str | None = None,
               detail_list: Sequence[Mapping[str, Any]] = (), legacy: Sequence[Mapping[str, Any]] = ()) -> Answer:
        return Answer.json(self.body(status, message, name, detail_list, legacy), status)

    # -- validation: the proto JSON parser's words ----------------------------------------------------------

    def invalid(self, violations: Sequence[Violation], request_type: str, version: str) -> Answer:
        lines, field_violations = [], []
        for violation in violations:
            line = self._line(violation, request_type, version)
            lines.append(line)
            where = proto_path(violation.path[:-1] if violation.rule == "additionalProperties" else violation.path)
            field_violations.append({"field": where, "description": line} if where else {"description": line})
        detail = {"@type": DETAIL_TYPE + "BadRequest", "fieldViolations": field_violations}
        return self.answer(400, "\n".join(lines), detail_list=[detail])

    def _line(self, violation: Violation, request_type: str, version: str) -> str:
        templates: Mapping[str, str] = self.data["messages"]
        template = templates.get(violation.rule, templates["default"])
        path = violation.path
        if violation.rule == "additionalProperties":
            parent = proto_path(path[:-1])
            return fill(template, {"field": violation.field, "at": f" at '{parent}'" if parent else ""})
        value = violation.value
        return fill(template, {
            "path": proto_path(path), "field": violation.field, "request_type": request_type,
            "expected": self._type_name(violation, version),
            "value": value if violation.rule in ("enum", "pattern") else json.dumps(value, ensure_ascii=False),
        })

    def _type_name(self, violation: Violation, version: str) -> str:
        types: Mapping[str, str] = self.errors["invalid_value"]["types"]
        if violation.rule in ("enum", "pattern"):
            enum_type = "".join(part[:1].upper() + part[1:] for part in str(violation.field).split("_"))
            return fill(types["enum"], {"version": version, "enum_type": enum_type})
        expected = violation.expected
        kind = expected[0] if isinstance(expected, list) and expected else expected
        return types.get(str(kind), "TYPE_MESSAGE")

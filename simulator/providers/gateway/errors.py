"""Error envelopes from the provider's error table: one named condition → status, code, type, message.

A condition entry (`provider.json` → gateway.errors) may carry `byOperation` overrides (Evolink's task
route words its 401 and 500 differently from the create route), per-rule codes for validation
failures (`codes`), and `"$option:NAME"` values that follow a named option (FoxAPI's 422 type).
A bare status (the app's 404, a forced `{"error": "http", "status": N}`) renders through
`statusErrors`, keeping its own status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from simulator.options import ProviderOptions
from simulator.pipeline import Answer
from simulator.providers.gateway.card import GatewayCard
from simulator.validation import Violation, dotted_path, render_message

OPTION_PREFIX = "$option:"


class _Details(dict[str, Any]):
    """Message placeholders; one that a condition does not supply renders empty rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


class ErrorBook:
    def __init__(self, card: GatewayCard, options: ProviderOptions) -> None:
        self.card = card
        self.options = options
        self.template = card.bodies["error"]

    def has(self, condition: str) -> bool:
        return condition in self.card.errors

    def entry(self, condition: str, operation: str | None = None) -> dict[str, Any]:
        base = self.card.errors[condition]
        merged = {**base, **base.get("byOperation", {}).get(operation or "", {})}
        return {key: self._resolve(value) for key, value in merged.items()}

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(OPTION_PREFIX):
            return self.options[value.removeprefix(OPTION_PREFIX)]
        return value

    def condition_for(self, status: int) -> str:
        """The condition that renders a bare status: its own entry, else its class ("4xx"), else `internal`."""
        table = self.card.status_errors
        return table.get(str(status)) or table.get(f"{status // 100}xx") or "internal"

    def text(self, condition: str, operation: str | None = None, **details: Any) -> str:
        return str(self.entry(condition, operation).get("message", "{detail}")).format_map(_Details(details))

    def response(
        self,
        condition: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        message: str | None = None,
        code: str | None = None,
        param: str | None = None,
        **details: Any,
    ) -> Answer:
        """The condition's envelope; `status` overrides the condition's own (a bare status or a forced one)."""
        entry = self.entry(condition, operation)
        text = message if message is not None else self.text(condition, operation, **details)
        values = {
            "code": code or entry.get("code"),
            "message": text,
            "type": entry["type"],
            "param": param or entry.get("param"),
        }
        return Answer.json(self.template.fill(values), int(status or entry["status"]))

    def violations(self, violations: list[Violation], operation: str | None = None) -> Answer:
        """Every violation's message in one envelope; code and param follow the first one."""
        prepared = [self._prepare(v) for v in violations]
        message = self.card.separator.join(render_message(self.card.messages, v) for v in prepared)
        first = prepared[0]
        codes: Mapping[str, str] = self.card.errors["invalid_request"].get("codes", {})
        return self.response(
            "invalid_request", operation=operation, message=message, code=codes.get(first.rule),
            param=dotted_path(first.path),
        )

    def _prepare(self, violation: Violation) -> Violation:
        """Name the whole body for root violations and leave JSON null out of listed choices."""
        path = violation.path or (self.card.root_name,)
        expected = violation.expected
        if isinstance(expected, list):
            expected = [item for item in expected if item is not None]
        return dataclasses.replace(violation, path=path, expected=expected)

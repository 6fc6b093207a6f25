"""Schema violations → CRun's 422 `errors[]` strings.

CRun validates each model's `input` with pydantic and reports
`Value error, Invalid input for model <model>: <field>: <pydantic message>` (doc-nbpro's 422 example);
top-level fields and query parameters read `<field>: <pydantic message>`. The wording lives in
provider.json; this module only puts a violation's limits into pydantic's phrasing ("'a', 'b' or 'c'",
"1 character", "8 items", "a valid list") before the template is filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from simulator.validation import Violation, render_message

NOUNS = {"maxLength": "character", "minLength": "character", "maxItems": "item", "minItems": "item"}


def pydantic_choices(values: Iterable[Any]) -> str:
    """Pydantic's literal_error list: `'png' or 'jpg'`, `'1K', '2K' or '4K'`."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _counted(count: Any, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


class ErrorWriter:
    """Renders violations with the provider card's `messages`, `violations` and `typeNames` tables."""

    def __init__(self, card: Mapping[str, Any]) -> None:
        self.messages: Mapping[str, str] = card["messages"]
        self.templates: Mapping[str, str] = card["violations"]
        self.type_names: Mapping[str, str] = card["typeNames"]

    def describe(self, violation: Violation, model: str | None) -> str:
        detail = render_message(self.templates, self._in_pydantic_terms(violation))
        path = violation.path
        in_input = model is not None and len(path) > 1 and path[0] == "input"
        loc = ".".join(str(part) for part in (path[1:] if in_input else path)) or self.messages["bodyLoc"]
        template = self.messages["inputError"] if in_input else self.messages["fieldError"]
        return template.format(model=model, loc=loc, detail=detail)

    def _in_pydantic_terms(self, violation: Violation) -> Violation:
        rule, expected = violation.rule, violation.expected
        if rule in ("enum", "discriminator"):
            expected = pydantic_choices(expected)
        elif rule == "const":
            expected = pydantic_choices([expected])
        elif rule in NOUNS:
            expected = _counted(expected, NOUNS[rule])
        elif rule == "type":
            names = [expected] if isinstance(expected, str) else [n for n in expected if n != "null"]
            expected = self.type_names.get(names[0], f"a valid {names[0]}") if names else expected
        return replace(violation, expected=expected)

"""A refusal, raised by a handler or a pipeline stage and rendered by the pipeline in the provider's own envelope.

Handlers never build error answers: they raise `ProviderError(kind, message, status=…, code=…, **details)`,
and the pipeline asks the provider to render it (`Provider.render_error`), journals its violations, and sends
it through whatever transport carried the request. `kind` says what went wrong in words every provider
understands (`unauthorized`, `not_found`, `insufficient_credits`, `invalid` …) or in the provider's own
(a Civitai `insufficient_buzz`, a gateway error condition); `details` carry what that envelope needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.validation import Violation

# The request broke its documented contract: `violations` say where and how (and go into the journal).
INVALID = "invalid"


class ProviderError(Exception):
    def __init__(
        self,
        kind: str,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        violations: Sequence[Violation] = (),
        headers: Mapping[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        self.violations = list(violations)
        self.headers = dict(headers or {})
        self.details = details

    @classmethod
    def invalid(cls, violations: Sequence[Violation], **details: Any) -> ProviderError:
        """The request broke these rules (schema, parameter or semantic); the provider's validation envelope."""
        return cls(INVALID, "; ".join(v.message for v in violations), violations=violations, **details)

    def __repr__(self) -> str:
        return f"ProviderError({self.kind!r}, {self.message!r}, status={self.status}, code={self.code!r})"

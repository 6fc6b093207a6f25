"""The provider-neutral error kinds a fault rule can force, and their generic defaults.

A provider lists the kinds it documents in `provider.json` under `"faults"`, each with its own status,
`code` and `message` (and optional extra `headers`); what it does not list falls back to these
defaults, rendered through the provider's own error envelope. `{"error": "http", "status": 418}`
forces any status with the provider's envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator import checks

DEFAULT_ERRORS: dict[str, dict[str, Any]] = {
    "bad_request": {"status": 400, "message": "The request is invalid."},
    "unauthorized": {"status": 401, "message": "Authentication failed: the API key is missing or invalid."},
    "insufficient_credits": {"status": 402, "message": "Insufficient credits to run this request."},
    "forbidden": {"status": 403, "message": "This API key is not allowed to do that."},
    "not_found": {"status": 404, "message": "The requested resource was not found."},
    "content_blocked": {"status": 400, "message": "The prompt was rejected by the content filter."},
    "payload_too_large": {"status": 413, "message": "The request body is larger than this API accepts."},
    "rate_limited": {"status": 429, "message": "Too many requests; retry after the indicated delay."},
    "server_error": {"status": 500, "message": "The server hit an unexpected error."},
    "bad_gateway": {"status": 502, "message": "The upstream model provider returned an invalid response."},
    "service_unavailable": {"status": 503, "message": "The service is temporarily unavailable."},
    "gateway_timeout": {"status": 504, "message": "The upstream model provider did not answer in time."},
}


def error_spec(provider_faults: dict[str, Any], do: dict[str, Any]) -> dict[str, Any]:
    """Status, message, code and headers for a forced error, the rule's own values winning."""
    kind = str(do.get("error"))
    spec = dict(DEFAULT_ERRORS.get(kind, {}))
    spec.update(provider_faults.get(kind, {}))
    for key in ("status", "message", "code"):
        if key in do:
            spec[key] = do[key]
    if "status" not in spec:
        known = sorted(set(DEFAULT_ERRORS) | set(provider_faults) | {"http"})
        raise KeyError(f"unknown error kind {kind!r}; use one of {known} (or 'http' with a status)")
    spec.setdefault("message", "The request failed.")
    spec["headers"] = {**spec.get("headers", {}), **do.get("headers", {})}
    return spec


def fault_headers(spec: Mapping[str, Any], do: Mapping[str, Any]) -> dict[str, str]:
    """The table's and the rule's headers (`{retry_after}`, `{limit}`, `{reset}` filled in), plus Retry-After
    when the rule or limit gives one, unless the provider's fault entry says it sends none
    (`retryAfterHeader: false`: the delay travels in the body, as Google's RetryInfo)."""
    values = {
        "retry_after": do.get("retry_after", ""), "limit": do.get("limit", ""),
        "reset": int(do["reset_at"]) if "reset_at" in do else "",
    }
    headers = {name: str(value).format_map(values) for name, value in spec.get("headers", {}).items()}
    if do.get("retry_after") is not None and spec.get("retryAfterHeader", True):
        headers["Retry-After"] = str(do["retry_after"])
    return headers


def check_code(code: Any, field: str) -> None:
    """A rule's own error `code`: a string, or a number for providers whose codes are numbers (CRun)."""
    if isinstance(code, str):
        checks.text(code, field, max_length=200)
    else:
        checks.number(code, field, low=-1_000_000_000, high=1_000_000_000, integer=True, unit="(or a string code)")

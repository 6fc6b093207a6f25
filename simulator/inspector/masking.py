"""Credentials masked wherever the inspector shows or exports them: headers, query parameters, body fields and
the API key that owns a request, wallet or task.

A masked value keeps its first four and last two characters (`sk-a…9f`), so two keys stay told apart on screen
and in a bug report, while neither can be used. The same key always masks to the same text, so a filter on a
masked key finds every entry of that key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

# Header, parameter and field names that carry a credential, whatever the provider calls them (compared without
# case, dashes or underscores): Authorization, x-api-key, x-goog-api-key, ?key=, apiKey, access_token, Cookie …
_SECRET_ENDINGS = ("authorization", "apikey", "token", "secret", "password", "cookie")
_SECRET_NAMES = frozenset({"key", "sig", "signature"})
_SCHEMES = ("bearer ", "basic ", "token ")


def mask(value: str) -> str:
    """`sk-abcdef123456` → `sk-a…56`; short values are hidden whole."""
    if len(value) <= 8:
        return "•" * len(value)
    return f"{value[:4]}…{value[-2:]}"


def mask_credential(value: str) -> str:
    """An Authorization-like value: the scheme stays readable, the secret is masked."""
    lowered = value.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return value[: len(scheme)] + mask(value[len(scheme):].strip())
    return mask(value)


def secret_name(name: str) -> bool:
    plain = re.sub(r"[-_ ]", "", name.lower())
    return plain in _SECRET_NAMES or plain.endswith(_SECRET_ENDINGS)


def mask_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Headers or query parameters with every credential masked (a query's values are lists)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not secret_name(name):
            out[name] = value
        elif isinstance(value, list):
            out[name] = [mask_credential(v) if isinstance(v, str) else v for v in value]
        else:
            out[name] = mask_credential(value) if isinstance(value, str) else value
    return out


def mask_body(value: Any, depth: int = 0) -> Any:
    """A JSON body with the value of every credential-named field masked (Runware's authentication task sends
    its `apiKey` in the body)."""
    if depth > 64:
        return value
    if isinstance(value, Mapping):
        return {k: (mask_credential(v) if isinstance(v, str) and secret_name(str(k)) else mask_body(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_body(v, depth + 1) for v in value]
    return value


def mask_url(url: str | None) -> str | None:
    """A URL (a webhook's target) with credential-named query parameters masked (`/hook?token=abcd…kl`); the
    rest of the URL stays as it was written."""
    if not url or "?" not in url:
        return url
    base, _, query = url.partition("?")
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}{eq}{mask_credential(unquote_plus(value))}" if eq and secret_name(name) else pair)
    return f"{base}?{'&'.join(pairs)}"


def mask_owner(owner: str | None) -> str | None:
    return mask(owner) if owner else owner


def masked_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A journal entry (as a dict) as the inspector shows it."""
    out = dict(entry)
    out["request_headers"] = mask_mapping(entry.get("request_headers") or {})
    out["response_headers"] = mask_mapping(entry.get("response_headers") or {})
    out["query"] = mask_mapping(entry.get("query") or {})
    out["request_body"] = mask_body(entry.get("request_body"))
    out["owner"] = mask_owner(entry.get("owner"))
    out["path"] = mask_url(entry.get("path"))
    return out

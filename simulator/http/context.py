"""Per-request facts shared between the middleware, the providers and the journal."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

SCOPE_KEY = "nbsim"


def context(request: Request) -> dict[str, Any]:
    """Mutable notes about this exchange (operation, owner, task, violations) for the journal."""
    return request.scope.setdefault(SCOPE_KEY, {})


def public_base(request: Request) -> str:
    """Scheme, host and mount prefix as the client addressed us, for URLs we hand back."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    prefix = context(request).get("prefix", "")
    return f"{request.url.scheme}://{host}{prefix}"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BodyError(ValueError):
    """The body is not JSON a real provider would accept; line/column follow the parser's position."""

    def __init__(
        self, message: str, line: int = 0, column: int = 0, *, path: tuple[str | int, ...] = (), rule: str = "json"
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.path = path
        self.rule = rule


# Deeper than any real request; .NET's System.Text.Json stops at 64 too.
MAX_JSON_DEPTH = 64


async def read_json(request: Request, max_depth: int = MAX_JSON_DEPTH) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise BodyError("A non-empty request body is required.")
    try:
        value = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BodyError("The request body is not valid UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(exc.msg, exc.lineno - 1, exc.colno - 1) from exc
    except RecursionError as exc:
        raise BodyError(f"The JSON value is nested deeper than the maximum allowed depth of {max_depth}.",
                        rule="maxDepth") from exc
    unreadable_json(value, max_depth)
    return value


def unreadable_json(value: Any, max_depth: int) -> None:
    """Refuse what Python's parser lets through but real backends (and any JSON response echoing it) cannot:
    nesting beyond `max_depth`, NaN and infinite numbers, strings with unpaired UTF-16 surrogates."""
    pending: list[tuple[tuple[str | int, ...], Any, int]] = [((), value, 1)]
    while pending:
        path, item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise BodyError(f"The JSON value is nested deeper than the maximum allowed depth of {max_depth}.",
                                path=path, rule="maxDepth")
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str) and not _is_unicode(key):
                    raise BodyError(UNPAIRED_SURROGATE, path=(*path, key), rule="unicode")
                pending.append(((*path, key), child, depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            raise BodyError(f"The JSON value could not be converted: {item} is not a finite number.",
                            path=path, rule="number")
        elif isinstance(item, str) and not _is_unicode(item):
            raise BodyError(UNPAIRED_SURROGATE, path=path, rule="unicode")


UNPAIRED_SURROGATE = "The JSON value contains an unpaired UTF-16 surrogate and is not valid Unicode."


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def query_flag(request: Request, name: str, default: bool = False) -> bool | None:
    """`true`/`false` (any case) or absent; None when present but not a boolean."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def query_int(request: Request, name: str, default: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None

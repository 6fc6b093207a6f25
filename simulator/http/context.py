"""Per-request facts shared between the middleware, the providers and the journal."""

from __future__ import annotations

import json
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
    """The body is not JSON; `position` follows System.Text.Json's wording where it matters."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise BodyError("A non-empty request body is required.")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BodyError("The request body is not valid UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(exc.msg, exc.lineno - 1, exc.colno - 1) from exc
    except RecursionError as exc:
        raise BodyError("The JSON value is nested too deeply (maximum depth exceeded).") from exc


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

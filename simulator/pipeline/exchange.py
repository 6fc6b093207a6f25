"""The unit of work every transport hands the pipeline, and the endpoints providers declare.

An `Exchange` is one request to one provider operation, whatever carried it: an HTTP request, an
in-process httpx call, a WebSocket frame. The transport fills in what arrived (method, paths, query,
headers, body bytes, the base URL to hand back); the pipeline's stages fill in what they learn (the API
key, typed parameters, the validated body) and the notes the journal keeps (violations, faults fired,
self-check findings, task ID, note). The body is parsed at most once, whoever asks first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, QueryParams

from simulator.pipeline.answer import Answer

if TYPE_CHECKING:
    from simulator.operations import Operation
    from simulator.pipeline.conversation import Conversation
    from simulator.providers.base import Provider

Handler = Callable[["Exchange"], Awaitable[Answer]]
# Answers a request before its body is read (an idempotent replay), or None to let the handler run.
Replay = Callable[["Exchange"], Awaitable[Answer | None]]
# Renders a forced error (a fault rule's or a rate limit's `do`) for one exchange.
Refuser = Callable[["Exchange", dict[str, Any]], Answer]


@dataclass(eq=False, slots=True)
class Exchange:
    method: str
    path: str  # as the client sent it (and the journal keeps it)
    routed_path: str  # /<slug>/…, also for a request that came by the provider's hostname
    prefix: str  # what precedes the provider's own paths in URLs we hand back ("" at the root, else /<slug>)
    base_url: str  # scheme://host + prefix, for URLs in answers
    started: float  # clock time the exchange arrived
    query_string: bytes = b""
    headers: Headers = field(default_factory=Headers)
    raw_body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    transport: str = "http"
    # The body's size when the transport stopped reading it for being over the provider's limit (0: read whole).
    oversized: int = 0
    # A key the transport already holds for this exchange (a WebSocket session's), standing in for headers.
    credential: str | None = None
    # The connection this exchange is one frame of, where it outlives the exchange (a WebSocket); else None.
    conversation: Conversation | None = None
    # -- learnt by the pipeline --------------------------------------------------------------------------
    provider: str | None = None
    operation: str | None = None
    api_key: str | None = None  # the key presented, before authentication (rules and limits match it)
    owner: str | None = None  # the authenticated key
    params: dict[str, Any] = field(default_factory=dict)  # typed query/path parameters (operations table)
    body: Any = None  # the validated body (unknown fields dropped where the provider ignores them)
    schema: str | None = None  # the request schema `body` satisfies
    # -- notes for the journal --------------------------------------------------------------------------
    task_id: str | None = None
    note: str | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)  # fields the provider silently dropped
    faults: list[dict[str, Any]] = field(default_factory=list)
    self_check: list[dict[str, Any]] = field(default_factory=list)
    network: dict[str, Any] | None = None  # a fired network fault, for the transport to act out
    proxied: dict[str, Any] | None = None  # answered by a relay: its upstream, and how its answer kept the contract
    status_chosen: bool = False  # a fault rule chose the status: outside the contract on purpose
    _loaded: tuple[Any, Exception | None] | None = None

    @property
    def caller(self) -> str:
        """The authenticated key, in a handler of an operation whose table says `auth: required` (the pipeline
        refuses the request before the handler otherwise)."""
        if self.owner is None:
            raise RuntimeError(f"{self.operation}: no authenticated caller; its operations table entry needs auth")
        return self.owner

    @property
    def query(self) -> QueryParams:
        return QueryParams(self.query_string)

    def loaded(self) -> tuple[Any, Exception | None]:
        """The body as `json.loads` reads it, or why it could not: parsed on first use, then remembered."""
        if self._loaded is None:
            try:
                # The integer hook costs a Python call per number: only where a number may be too long.
                hook = _integer if _LONG_DIGITS.search(self.raw_body) else int
                # UTF-8 only, as RFC 8259 and every provider's server read JSON (a leading BOM is skipped, as .NET
                # does); json.loads on bytes would also take UTF-16 and UTF-32.
                self._loaded = (json.loads(self.raw_body.decode("utf-8-sig"), parse_int=hook), None)
            except (ValueError, RecursionError) as exc:
                # Kept without its traceback or the exception it interrupted: their frames lead back to this
                # exchange, and the cycle would outlive it (simulator.heap freezes what survives a full collection).
                exc.__traceback__ = exc.__context__ = exc.__cause__ = None
                self._loaded = (None, exc)
        return self._loaded

    def bearer_token(self) -> str | None:
        """The token of `Authorization: Bearer <token>`, if the exchange carries one."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    @property
    def sent(self) -> Any:
        """The body as sent, if it is JSON (None otherwise): for rules, limits and answers that echo it."""
        return self.loaded()[0]


@dataclass(eq=False)
class Endpoint:
    """One operation a provider serves: its path template (`/v1/tasks/{task_id}`, `{rest:path}`), methods,
    name in the operations table and handler; how a forced error renders on it (`refuse`; default: the
    provider's API envelope); and `replay`, which may answer before the body is read (see Provider.route)."""

    provider: Provider
    path: str
    methods: frozenset[str]
    operation: str
    handler: Handler
    refuse: Refuser | None = None
    replay: Replay | None = None
    # A query parameter the request must carry to be this endpoint's (Google's upload session shares its start
    # path: `POST /upload/v1beta/files` starts an upload, `…?upload_id=…` sends its bytes).
    query: str | None = None
    # The path may sit under one of the client's own choosing (google-genai builds `base_url + version + path`,
    # so `base_url="http://host/proxy/"` asks `/proxy/v1beta/models/…`); it is kept as path parameter `prefix`.
    mounted: bool = False

    @property
    def name(self) -> str:
        return f"{self.provider.slug}:{self.operation}"

    @cached_property
    def spec(self) -> Operation:
        return self.provider.operations[self.operation]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The path template as a regular expression; `.` spans newlines, as a path may carry one (`%0A`)."""
        regex, position = "^(?P<prefix>(?:/[^/]+)*?)" if self.mounted else "^", 0
        for found in _PARAMETER.finditer(self.path):
            regex += re.escape(self.path[position:found.start()])
            name, kind = found.group(1), found.group(2)
            regex += f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)"
            position = found.end()
        return re.compile(regex + re.escape(self.path[position:]) + "$", re.DOTALL)

    def serves(self, method: str, query: QueryParams | None = None) -> bool:
        if self.query is not None and (query is None or self.query not in query):
            return False
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    @property
    def allowed(self) -> frozenset[str]:
        """The methods this endpoint answers (a GET endpoint answers HEAD too)."""
        return self.methods | {"HEAD"} if "GET" in self.methods else self.methods


class NumberTooLong(ValueError):
    """An integer literal longer than Python (and any JSON reader a provider runs) will convert."""


# Python's own limit for converting digits to int (sys.get_int_max_str_digits), which would otherwise raise a
# ValueError no caller tells apart from other ValueErrors.
MAX_INT_DIGITS = 4300
_LONG_DIGITS = re.compile(rb"\d{%d}" % (MAX_INT_DIGITS + 1))


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise NumberTooLong(f"The JSON value could not be converted: a number of {len(digits.lstrip('-'))} digits "
                            "is outside the range of any number type.")
    return int(digits)


_PARAMETER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::(path|str))?}")

"""Reading a request body the way real providers do: once, strictly, within a size, against the operations table.

A body larger than the provider's limit (provider.json `bodyLimit`) is not kept: the transport stops storing
it once the limit is passed (`BodyReader`) and the pipeline answers the provider's `payload_too_large`.

JSON that Python's parser lets through but real backends refuse (nesting beyond a depth, NaN and infinite
numbers, strings with unpaired UTF-16 surrogates) is refused here too. Fields a provider's schema does not
know are refused, or dropped where the provider's option says it ignores them (provider.json
`unknownFields`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.json_text import deeper_than
from simulator.options import ProviderOptions
from simulator.pipeline.exchange import Exchange, NumberTooLong
from simulator.validation import Violation, dotted_path

# Deeper than any real request; .NET's System.Text.Json stops at 64 too.
MAX_JSON_DEPTH = 64
# A provider whose card states no limit reads at most this much (the simulator's choice, README "Security").
DEFAULT_BODY_LIMIT = 32 * 1024 * 1024
# Past its limit a body is still read, and thrown away, up to this much, so that a client which writes its whole
# body before reading (most do) sees the 413 instead of a reset; beyond it the connection is closed.
DISCARD_LIMIT = 256 * 1024 * 1024


class BodyReader:
    """Collects a body arriving in chunks, keeping nothing once it is over `limit` (only counting it).

    `declared` is the Content-Length, if any: one over the limit is refused before the body is stored, and
    before it is even asked for when the client waits for `100 Continue` (`expects_continue`).
    """

    def __init__(self, limit: int, declared: int | None = None, *, expects_continue: bool = False) -> None:
        self.limit = limit
        self.declared = declared or 0
        self.size = 0
        self._chunks: list[bytes] = []
        self.complete = False  # the whole body arrived (read or, past the limit, counted and dropped)
        declared_over = self.declared > limit
        self.reading = not (declared_over and (expects_continue or self.declared > DISCARD_LIMIT))

    @property
    def oversized(self) -> int:
        """The body's size as far as known when it is over the limit; 0 when it is within it."""
        size = max(self.size, self.declared)
        return size if size > self.limit else 0

    def add(self, chunk: bytes, more: bool) -> None:
        self.size += len(chunk)
        self.complete = not more
        if self.size > self.limit or self.declared > self.limit:
            self._chunks.clear()
            self.reading = more and self.size <= DISCARD_LIMIT
        else:
            self._chunks.append(chunk)
            self.reading = more

    def body(self) -> bytes:
        return b"" if self.oversized else b"".join(self._chunks)


def too_large(exchange: Exchange, limit: int) -> bool:
    """Whether the exchange's body is over `limit` (the transport stopped keeping it, or it arrived whole)."""
    return exchange.oversized > 0 or len(exchange.raw_body) > limit
UNPAIRED_SURROGATE = "The JSON value contains an unpaired UTF-16 surrogate and is not valid Unicode."


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


def read_json(exchange: Exchange, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The exchange's body as JSON, or the BodyError that says why it is not acceptable."""
    if not exchange.raw_body.strip():
        raise BodyError("A non-empty request body is required.")
    value, problem = exchange.loaded()
    if isinstance(problem, UnicodeDecodeError):
        raise BodyError("The request body is not valid UTF-8.") from problem
    if isinstance(problem, json.JSONDecodeError):
        raise BodyError(problem.msg, problem.lineno - 1, problem.colno - 1) from problem
    if isinstance(problem, NumberTooLong):
        raise BodyError(str(problem), rule="number") from problem
    if problem is not None:  # RecursionError: nested beyond what the parser can hold
        raise BodyError(_too_deep(max_depth), rule="maxDepth") from problem
    unreadable_json(value, max_depth, exchange.raw_body)
    return value


def _too_deep(max_depth: int) -> str:
    return f"The JSON value is nested deeper than the maximum allowed depth of {max_depth}."


# What the text of a body must hold for its value to be unreadable (a cheap, conservative test at C speed, so
# that the walk below, a Python loop over every value, runs only for bodies that may fail it): a NaN or infinity
# literal, a number too large for a double, a \uD800-\uDFFF escape (the only way JSON text carries a surrogate),
# or nesting deeper than allowed.
_NON_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?\d{3}|\d{309}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _may_be_unreadable(raw: bytes, max_depth: int) -> bool:
    return bool(_NON_FINITE.search(raw) or _SURROGATE_ESCAPE.search(raw)) or deeper_than(raw, max_depth)


def unreadable_json(value: Any, max_depth: int, raw: bytes | None = None) -> None:
    """Refuse what Python's parser lets through but real backends (and any JSON response echoing it) cannot.

    `raw`, the text `value` was parsed from, lets a body that cannot fail skip the walk."""
    if raw is not None and not _may_be_unreadable(raw, max_depth):
        return
    pending: list[tuple[tuple[str | int, ...], Any, int]] = [((), value, 1)]
    while pending:
        path, item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise BodyError(_too_deep(max_depth), path=path, rule="maxDepth")
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str) and not _is_unicode(key):
                    raise BodyError(UNPAIRED_SURROGATE, path=(*path, key), rule="unicode")
                pending.append(((*path, key), child, depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            raise BodyError(f"The JSON value could not be converted: {item} is not a finite number.",
                            path=path, rule="number")
        elif isinstance(item, str) and not _is_unicode(item):
            raise BodyError(UNPAIRED_SURROGATE, path=path, rule="unicode")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def without_unknown_fields(
    exchange: Exchange, data: Mapping[str, Any], options: ProviderOptions, body: Any,
    violations: Sequence[Violation],
) -> tuple[Any, list[Violation]]:
    """The body and violations left once unknown fields are handled as the provider does.

    provider.json `unknownFields: {"option": NAME, "note": TEXT}`: when that option is `ignore`, a field the
    schema does not know is no violation; if nothing else is wrong it is dropped from (a copy of) the body,
    and the journal notes which (`TEXT: a, b`) when the provider's table words a note.
    """
    spec = data.get("unknownFields")
    if spec is None or options[spec["option"]] != "ignore":
        return body, list(violations)
    unknown = [v for v in violations if v.rule == "additionalProperties"]
    rest = [v for v in violations if v.rule != "additionalProperties"]
    if not unknown or rest:
        return body, rest
    trimmed = copy.deepcopy(body)
    for violation in unknown:
        *parents, last = violation.path
        holder = trimmed
        for part in parents:
            holder = holder[part]
        del holder[last]
    # Not a broken contract (the provider takes the request), but the contract check warns of it: the user
    # probably meant another field, and the answer will not show that the value was never used.
    exchange.ignored.extend(v.as_dict() for v in unknown)
    if spec.get("note"):
        exchange.note = f"{spec['note']}: " + ", ".join(dotted_path(v.path) for v in unknown)
    return trimmed, rest

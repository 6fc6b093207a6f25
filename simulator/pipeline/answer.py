"""What a handler answers, before any transport carries it: status, body bytes, headers, media type.

An HTTP route writes it as a response, an in-process client receives it as an httpx response, a WebSocket
session sends its JSON `value` as frames. The bytes are encoded once, when the answer is made, so the
self-check, the journal and the transport all read the same body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
EVENT_END = b"\r\n\r\n"  # what ends an SSE event on Google's wire (every SSE parser reads it)
# Where no body is due, whatever the bytes: HTTP sends no Content-Length for these statuses.
BODILESS = frozenset({204, 304})
_NOT_PARSED = object()


_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, only ever a lone one


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, the encoding every provider's answers and callbacks share."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate echoed from a request (the name of an unknown field in a validation message) has no
        # UTF-8 form: it is sent as U+FFFD, as a .NET or Go server writes it.
        return _SURROGATE.sub("\ufffd", text).encode()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: bytes = b""
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    value: Any = None  # the JSON value `body` encodes, for transports that send values (None for other bodies)
    # A server-sent event stream: each event's JSON value (the body holds them as `data:` lines), so the
    # transport can send them one by one and the self-check and the journal can read each.
    events: tuple[Any, ...] | None = None
    _parsed: list[Any] = field(default_factory=lambda: [_NOT_PARSED], repr=False, compare=False)
    # The self-check's verdict on the kept rendering this answer was filled from (simulator.pipeline.settled.Verdict),
    # shared by every answer filled from it.
    verdict: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def json(cls, value: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
             media_type: str = JSON) -> Answer:
        return cls(status, encode_json(value), media_type, _lower(headers), value)

    @classmethod
    def sse(cls, events: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> Answer:
        """An SSE answer: one `data: <JSON>` line and a blank line per event, every event encoded once."""
        values = tuple(events)
        body = b"".join(b"data: " + encode_json(value) + EVENT_END for value in values)
        return cls(status, body, EVENT_STREAM, _lower(headers), None, values)

    def frames(self) -> list[bytes]:
        """The body as the transport writes it: one chunk per event of an SSE answer, else the whole body.
        (Compact JSON never holds a raw line break, so the blank line after each event is where it ends.)"""
        if self.events is None:
            return [self.body]
        return [frame + EVENT_END for frame in self.body.split(EVENT_END)[:-1]]

    @classmethod
    def empty(cls, status: int = 204, *, headers: Mapping[str, str] | None = None) -> Answer:
        return cls(status, headers=_lower(headers))

    @classmethod
    def content(cls, body: bytes | str, media_type: str, status: int = 200, *,
                headers: Mapping[str, str] | None = None) -> Answer:
        """A body that is not JSON: image bytes, an object store's XML, a proxy's HTML page."""
        data = body.encode() if isinstance(body, str) else body
        return cls(status, data, media_type, _lower(headers))

    @classmethod
    def redirect(cls, url: str, status: int) -> Answer:
        return cls(status, headers={"location": quote(url, safe=":/%#?=@[]!$&'()*+,;")})

    def with_headers(self, extra: Mapping[str, str]) -> Answer:
        """The same answer with `extra` headers added (or replacing those of the same name)."""
        return replace(self, headers={**self.headers, **_lower(extra)}, _parsed=self._parsed)

    def with_body(self, body: bytes) -> Answer:
        """The same answer with another body: its JSON value unknown (read back from `body` when asked for)."""
        return Answer(self.status, body, self.media_type, self.headers, None, self.events, [_NOT_PARSED],
                      self.verdict)

    @property
    def content_type(self) -> str | None:
        given = self.headers.get("content-type")
        if given is not None or self.media_type is None:
            return given
        if self.media_type.startswith("text/") and "charset=" not in self.media_type.lower():
            return f"{self.media_type}; charset=utf-8"
        return self.media_type

    def wire_headers(self) -> list[tuple[str, str]]:
        """Every header as sent: the answer's own, then Content-Length and Content-Type where they are due."""
        headers = list(self.headers.items())
        if "content-length" not in self.headers and not (self.status < 200 or self.status in BODILESS):
            headers.append(("content-length", str(len(self.body))))
        content_type = self.content_type
        if content_type is not None and "content-type" not in self.headers:
            headers.append(("content-type", content_type))
        return headers

    def parsed(self) -> Any:
        """The body read back as JSON, once (raises ValueError if it is not JSON): a copy of what was sent, which
        the self-check validates and the journal keeps, untouched by later changes to the objects it came from."""
        if self._parsed[0] is _NOT_PARSED:
            try:
                self._parsed[0] = json.loads(self.body)
            except ValueError as exc:
                self._parsed[0] = exc
        if isinstance(self._parsed[0], ValueError):
            raise self._parsed[0]
        return self._parsed[0]


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {name.lower(): value for name, value in (headers or {}).items()}

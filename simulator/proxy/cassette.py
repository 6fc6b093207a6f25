"""Cassettes: JSON Lines recordings of what a provider really answered, redacted before they touch the disk.

    {"kind": "cassette", "format": 1, "provider": "runware", "upstream": "https://api.runware.ai", …}
    {"kind": "exchange", "seq": 1, "at": 0.0, "took": 812.5, "operation": "Tasks", "request": {…}, "response": {…}}
    {"kind": "frame", "seq": 2, "at": 905.1, "connection": 1, "direction": "sent", "path": "/v1", "body": {…}, …}

The format is `schemas/_formats/cassette.json`; every line is checked against it when a cassette is loaded. Keys
are sorted so two recordings of the same session diff cleanly. Binary bodies (images) are kept by their SHA-256;
with `keep_images` the bytes go beside the cassette, in `FILE.blobs/<hex>`, for a replay to serve them as recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any

from simulator import __version__, data_formats
from simulator.pipeline.answer import EVENT_STREAM, Answer, encode_json
from simulator.proxy.redaction import Hit, Redactor, scan, scan_value
from simulator.resources import schemas_dir

FORMAT = "cassette"
# Above this, a text body is kept by hash like a binary one: a cassette is for reading and diffing.
MAX_TEXT_BODY = 256 * 1024


class CassetteError(ValueError):
    """A cassette that cannot be read: the message names the file, the line and the problem."""


@cache
def schemas_digest(slug: str) -> str:
    """A short digest of the provider's schemas, so a cassette says which contract its checks ran against."""
    digest = hashlib.sha256()
    for path in sorted((schemas_dir() / slug).rglob("*.json")):
        digest.update(path.relative_to(schemas_dir()).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def blob_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(content_type: str) -> bool:
    media = _media(content_type)
    return media == "application/json" or media.endswith("+json")


def is_event_stream(content_type: str) -> bool:
    return _media(content_type) == EVENT_STREAM


def sse_events(raw: bytes) -> list[Any] | None:
    """The JSON value of each event of a server-sent event stream (None unless every event's data is JSON).
    Events end at a blank line, whichever line ends the server uses; an event's `data:` lines join with newlines."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    events: list[Any] = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", text.strip()):
        data = [line[5:].removeprefix(" ") for line in block.splitlines() if line.startswith("data:")]
        if not data:
            continue
        try:
            events.append(json.loads("\n".join(data)))
        except ValueError:
            return None
    return events


def _is_text(content_type: str) -> bool:
    media = _media(content_type)
    return media.startswith("text/") or media.endswith(("xml", "html")) or _is_json(media)


def encode_body(raw: bytes, content_type: str, redactor: Redactor) -> tuple[dict[str, Any] | None, bytes | None]:
    """A body as the cassette keeps it, and the bytes to store beside it (a binary body's)."""
    if not raw:
        return None, None
    if is_event_stream(content_type):
        events = sse_events(raw)
        if events is not None:
            return {"events": redactor.value(events)}, None
    if _is_json(content_type) or (not content_type and raw[:1] in (b"{", b"[")):
        try:
            return {"json": redactor.value(json.loads(raw))}, None
        except ValueError:
            pass  # a malformed JSON answer is kept as the text it was
    if (_is_text(content_type) or not content_type) and len(raw) <= MAX_TEXT_BODY:
        try:
            return {"text": redactor.text(raw.decode("utf-8"))}, None
        except UnicodeDecodeError:
            pass
    return {"blob": blob_id(raw), "bytes": len(raw), "media_type": content_type or None}, raw


def decode_body(body: Mapping[str, Any] | None, blobs: Path | None) -> bytes | None:
    """The bytes a recorded body stands for (None: a blob whose bytes were not kept)."""
    if body is None:
        return b""
    if "json" in body:
        return json.dumps(body["json"], ensure_ascii=False, separators=(",", ":")).encode()
    if "events" in body:
        return Answer.sse(body["events"]).body
    if "text" in body:
        return str(body["text"]).encode()
    if blobs is not None:
        path = blobs / str(body["blob"]).removeprefix("sha256:")
        if path.is_file():
            return path.read_bytes()
    return None


def body_value(body: Mapping[str, Any] | None) -> Any:
    """A recorded body's JSON value (None if it was not JSON; an event stream's events as a list)."""
    if body is None:
        return None
    return body.get("json", body.get("events"))


def recorded_answer(response: Mapping[str, Any], blobs: Path | None,
                    values: Callable[[Any], Any] = lambda value: value) -> Answer | None:
    """The answer a recorded response stands for, its JSON passed through `values` (a replay's live ids); None
    when its bytes were not kept. An event stream is an SSE answer again, sent event by event."""
    body = response["body"]
    status, headers = response["status"], dict(response["headers"])
    if body is not None and "json" in body:
        value = values(body["json"])
        return Answer(status, encode_json(value), None, headers, value)
    if body is not None and "events" in body:
        return Answer.sse([values(event) for event in body["events"]], status, headers=headers)
    data = decode_body(body, blobs)
    return None if data is None else Answer(status, data, None, headers)


def blobs_dir(path: Path) -> Path:
    return path.with_name(path.name + ".blobs")


def _line(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


class Recorder:
    """Appends redacted exchanges to a cassette, one line each, flushed as they finish."""

    def __init__(self, path: Path, *, provider: str, upstream: str, redactor: Redactor,
                 options: Mapping[str, Any] | None = None, keep_images: bool = False) -> None:
        self.path = path
        self.redactor = redactor
        self.keep_images = keep_images
        self.seq = 0
        self.started: float | None = None
        header = {
            "kind": "cassette", "format": 1, "provider": provider, "simulator": __version__,
            "schemas": schemas_digest(provider), "options": dict(options or {}),
            "upstream": redactor.text(upstream), "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "redaction": {"request_headers": sorted(redactor.request_headers),
                          "response_headers": sorted(redactor.response_headers),
                          "prompts": "hashed" if redactor.hash_prompts else "kept"},
        }
        data_formats.check(header, FORMAT, str(path), CassetteError)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._write(header)

    def _next(self, at: float) -> None:
        """Number the next line; the first one's moment is the recording's start."""
        if self.started is None:
            self.started = at
        self.seq += 1

    def _offset(self, at: float) -> float:
        """`at` (clock seconds) as milliseconds since the recording started."""
        assert self.started is not None
        return round((at - self.started) * 1000, 3)

    def _write(self, line: Mapping[str, Any]) -> None:
        self._file.write(_line(line))
        self._file.flush()

    def record(self, *, at: float, took: float, operation: str, request: Mapping[str, Any],
               response: Mapping[str, Any], request_checks: list[dict[str, Any]],
               response_checks: list[dict[str, Any]], blocked: bool, note: str | None = None) -> dict[str, Any]:
        """Write one exchange (`request`/`response` as `exchange_parts` made them); returns the line's object."""
        self._next(at)
        line: dict[str, Any] = {
            "kind": "exchange", "seq": self.seq, "at": self._offset(at),
            "took": round(max(took, 0.0) * 1000, 3), "operation": operation,
            "request": dict(request), "response": dict(response),
            "checks": {"request": self.redactor.value(request_checks),
                       "response": self.redactor.value(response_checks)},
            "blocked": blocked,
        }
        if note:
            line["note"] = self.redactor.text(note)
        self._write(line)
        return line

    def record_callback(self, *, at: float, took: float, to: str, request: Mapping[str, Any],
                        response: Mapping[str, Any]) -> dict[str, Any]:
        """Write one callback the provider sent (`to`: the client's URL it was passed on to)."""
        self._next(at)
        line = {"kind": "webhook", "seq": self.seq, "at": self._offset(at),
                "took": round(max(took, 0.0) * 1000, 3), "to": to,
                "request": {key: request[key] for key in ("method", "headers", "body")}, "response": dict(response)}
        self._write(line)
        return line

    def record_frame(self, *, at: float, connection: int, direction: str, operation: str, path: str,
                     body: Mapping[str, Any] | None, checks: list[dict[str, Any]], blocked: bool = False
                     ) -> dict[str, Any]:
        """Write one WebSocket frame relayed `direction` ("sent" by the client, or "received" from the provider)."""
        self._next(at)
        line = {"kind": "frame", "seq": self.seq, "at": self._offset(at),
                "connection": connection, "direction": direction, "operation": operation,
                "path": self.redactor.text(path), "body": body, "checks": self.redactor.value(checks)}
        if blocked:
            line["blocked"] = True
        self._write(line)
        return line

    def keep(self, raw: bytes | None) -> None:
        """Store a binary body's bytes beside the cassette (only with keep_images)."""
        if raw is None or not self.keep_images:
            return
        folder = blobs_dir(self.path)
        folder.mkdir(exist_ok=True)
        target = folder / blob_id(raw).removeprefix("sha256:")
        if not target.exists():
            target.write_bytes(raw)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Cassette:
    path: Path
    header: dict[str, Any]
    exchanges: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
    frames: list[dict[str, Any]]

    @property
    def provider(self) -> str:
        return str(self.header["provider"])

    @property
    def upstream(self) -> str:
        return str(self.header["upstream"])

    @property
    def blobs(self) -> Path:
        return blobs_dir(self.path)


def request_of(cassette: Cassette, callback: Mapping[str, Any]) -> dict[str, Any] | None:
    """The recorded request a callback answers: the latest before it whose body named the callback's URL."""
    named = [exchange for exchange in cassette.exchanges if exchange["at"] <= callback["at"]
             and callback["to"] in json.dumps(body_value(exchange["request"]["body"]), ensure_ascii=False)]
    return named[-1] if named else None


def _parsed_lines(path: Path) -> Iterable[tuple[int, str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, line, json.loads(line)
        except ValueError as exc:
            raise CassetteError(f"{path}:{number}: not a JSON object: {exc}") from exc


def load(path: Path) -> Cassette:
    """A cassette, every line checked against its format."""
    header: dict[str, Any] | None = None
    lines: dict[str, list[dict[str, Any]]] = {"exchange": [], "webhook": [], "frame": []}
    for number, _, document in _parsed_lines(path):
        data_formats.check(document, FORMAT, f"{path}:{number}", CassetteError)
        if document["kind"] == "cassette":
            if header is not None:
                raise CassetteError(f"{path}:{number}: a second header; one cassette per file")
            header = document
        elif header is None:
            raise CassetteError(f"{path}:{number}: an exchange before the header line")
        else:
            lines[document["kind"]].append(document)
    if header is None:
        raise CassetteError(f"{path}: empty; a cassette starts with its header line")
    return Cassette(path, header, lines["exchange"], lines["webhook"], lines["frame"])


@dataclass(frozen=True)
class LintHit:
    line: int
    hit: Hit

    def __str__(self) -> str:
        return f"line {self.line}: {self.hit.kind} at {self.hit.where}: {self.hit.excerpt}"


def lint(path: Path) -> list[LintHit]:
    """Every secret-shaped string in a cassette (in keys, values, and text that is not JSON at all)."""
    hits: list[LintHit] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        try:
            document = json.loads(line)
        except ValueError:
            found = scan(line, "(not JSON)")
        else:
            found = scan_value(document)
        hits.extend(LintHit(number, hit) for hit in found)
    return hits

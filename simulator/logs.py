"""The simulator's log: logger names, its two line formats, and progress reports of long work.

Loggers, all under `nanobanana_sim`:
- `nanobanana_sim.access` — one line per journal entry: requests, webhook attempts, engine events
  (written by `simulator.access_log`, whatever the transport).
- `nanobanana_sim.progress` — long work: large image renders, soak and bench runs (`Progress` below).
- `nanobanana_sim` — everything else: self-check findings, internal errors.

`serve` writes them to standard error at `--log-level`, as text or as one JSON object per line (`--log-format`);
a record's `fields` (passed as `extra={"fields": {...}}`) become keys of its JSON object.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

ROOT = "nanobanana_sim"
ACCESS = f"{ROOT}.access"
PROGRESS = f"{ROOT}.progress"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _stamp(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created).astimezone()


class TextFormatter(logging.Formatter):
    """`2026-05-01 12:00:01.234 <access line>`; other records add their level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = _stamp(record).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        message = record.getMessage()
        line = f"{stamp} {message}" if record.name == ACCESS else f"{stamp} {record.levelname} {record.name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _stamp(record).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class _Handover(logging.handlers.QueueHandler):
    """Hands each record, unformatted, to a writer thread: formatting and writing a line per request (to a
    terminal, a pipe a slow reader drains, a file) then never holds up the event loop."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None, *,
              background: bool = False) -> logging.Handler:
    """Send the simulator's loggers (and the ASGI server's own warnings) to `stream` in one format; with
    `background`, lines are written by a thread of their own (flushed when the process exits)."""
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler: logging.Handler = writer
    if background:
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(lines, writer)
        listener.start()
        atexit.register(listener.stop)
        handler = _Handover(lines)
    for name in (ROOT, "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    logging.getLogger(ROOT).setLevel(LEVELS[level])
    return handler


class Progress:
    """Progress of one long piece of work on `nanobanana_sim.progress`: silent if it ends within `after` seconds,
    then a line at most every `every` seconds, and a closing line. Work known in advance to be long (`announce`)
    gets an opening line at once and always a closing one; `outcome` adds a word on the result to that line.

        with Progress("render 4096x4096 PNG", total=height, unit="rows") as progress:
            for row in range(height):
                ...
                progress.advance()
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "steps",
        after: float = 2.0,
        every: float = 5.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        announce: bool = False,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.after, self.every = after, every
        self.logger = logger or logging.getLogger(PROGRESS)
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.outcome = ""
        self._reported: float | None = None
        if announce:
            self._reported = self.started
            self._log(f"{what}...", self.started)

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        now = self.clock()
        due = self.started + self.after if self._reported is None else self._reported + self.every
        if now >= due:
            self._reported = now
            self._log(f"{self.what}: {self._count()}, {now - self.started:.1f} s", now)

    def _count(self) -> str:
        if self.total:
            return f"{self.done}/{self.total} {self.unit} ({100 * self.done // self.total}%)"
        return f"{self.done} {self.unit}"

    def _log(self, message: str, now: float, **extra: Any) -> None:
        fields = {"work": self.what, "done": self.done, "total": self.total, "unit": self.unit,
                  "elapsed": round(now - self.started, 3), **extra}
        self.logger.info(message, extra={"fields": fields})

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        now = self.clock()
        if self._reported is None and now < self.started + self.after:
            return  # short work stays silent
        outcome = "done" if kind is None else f"stopped by {kind.__name__}"
        counted = f": {self.done} {self.unit}" if self.done or self.total else ""
        result = f" ({self.outcome})" if self.outcome and kind is None else ""
        self._log(f"{self.what} {outcome}{counted} in {now - self.started:.1f} s{result}", now,
                  finished=kind is None)

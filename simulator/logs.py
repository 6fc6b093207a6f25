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
import contextlib
import json
import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, TextIO

ROOT = "nanobanana_sim"
ACCESS = f"{ROOT}.access"
PROGRESS = f"{ROOT}.progress"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _stamp(record: logging.LogRecord) -> tuple[str, str, int]:
    """The record's local time as its date and time to the second, its milliseconds, and its UTC offset (each
    second's text worked out once: a busy server logs hundreds of lines in it)."""
    fraction, whole = math.modf(record.created)
    micro = round(fraction * 1e6)  # as datetime.fromtimestamp rounds it
    second = int(whole) + (micro >= 1_000_000) - (micro < 0)
    text, offset = _local_second(second)
    return text, offset, (micro % 1_000_000) // 1000


@lru_cache(maxsize=64)
def _local_second(second: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(second).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S"), moment.strftime("%z")


class TextFormatter(logging.Formatter):
    """`2026-05-01 12:00:01.234 <access line>`; other records add their level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        second, _, millis = _stamp(record)
        message = record.getMessage()
        if record.name == ACCESS:
            line = f"{second}.{millis:03d} {message}"
        else:
            line = f"{second}.{millis:03d} {record.levelname} {record.name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        second, offset, millis = _stamp(record)
        document: dict[str, Any] = {
            "time": f"{second.replace(' ', 'T')}.{millis:03d}{offset[:3]}:{offset[3:]}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class _Handover(logging.Handler):
    """Hands each record, unformatted, to a writer thread: formatting and writing a line per request (to a
    terminal, a pipe a slow reader drains, a file) then never holds up the event loop.

    The writer wakes for the first record, waits `PAUSE` for those that follow, then formats them all and writes
    them at once: a served request then costs no thread wake-up and no write of its own (at a thousand requests a
    second those were most of what a log line cost the server, GIL hand-overs included), and a line appears at
    most `PAUSE` late."""

    PAUSE = 0.02

    def __init__(self, writer: logging.StreamHandler[TextIO]) -> None:
        super().__init__()
        self.writer = writer
        self.lines: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="nanobanana-sim log", daemon=True)
        self.thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock: the queue is safe from any thread, and the writer thread is the only one that formats.
        self.lines.put(record)
        return True

    def stop(self) -> None:
        """Write what is waiting and end the writer thread (at exit: no line is lost)."""
        if self.thread.is_alive():
            self.lines.put(None)
            self.thread.join()

    def _write(self) -> None:
        writer = self.writer
        while True:
            batch = [self.lines.get()]
            if batch[0] is not None:
                time.sleep(self.PAUSE)
            with contextlib.suppress(queue.Empty):
                while batch[-1] is not None:
                    batch.append(self.lines.get_nowait())
            text = []
            for record in batch:
                if record is None:
                    continue
                try:
                    if writer.filter(record):
                        text.append(writer.format(record) + writer.terminator)
                except Exception:
                    writer.handleError(record)
            if text:
                try:
                    writer.stream.write("".join(text))
                    writer.flush()
                except Exception:
                    writer.handleError(batch[0] or logging.makeLogRecord({}))
            if batch[-1] is None:
                return


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None, *,
              background: bool = False) -> logging.Handler:
    """Send the simulator's loggers (and the ASGI server's own warnings) to `stream` in one format; with
    `background`, lines are written by a thread of their own (flushed when the process exits)."""
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler: logging.Handler = writer
    if background:
        handover = _Handover(writer)
        atexit.register(handover.stop)
        handler = handover
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

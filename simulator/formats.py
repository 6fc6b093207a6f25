"""Wire formats for time shared by providers (ISO-8601 with N fractional digits, Unix seconds)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

from simulator.clock import to_datetime


def iso_utc(t: float | None, digits: int = 3, suffix: str = "Z") -> str | None:
    """`2026-05-25T23:21:19.461Z` (digits=3), `…19.4610000Z` (digits=7), `…19Z` (digits=0)."""
    if t is None or not math.isfinite(t):
        return None  # a task that never finishes has no completion time to show
    return _iso_utc(t, digits, suffix)


@lru_cache(maxsize=4096)  # a task's moments are printed on every read of it; strftime is the costly part
def _iso_utc(t: float, digits: int, suffix: str) -> str:
    m = to_datetime(t)  # the clock's years are 1970 to 3000: always four digits, as strftime's %Y would print
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    if digits:
        fraction = f"{m.microsecond:06d}".ljust(max(digits, 6), "0")[:digits]
        text += f".{fraction}"
    return text + suffix


def parse_iso_utc(text: str) -> float | None:
    """Any ISO-8601 date-time (`Z`, an offset, or none meaning UTC; any fraction); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def unix_seconds(t: float | None) -> int | None:
    return None if t is None or not math.isfinite(t) else int(t)

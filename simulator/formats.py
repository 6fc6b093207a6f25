"""Wire formats for time shared by providers (ISO-8601 with N fractional digits, Unix seconds)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from simulator.clock import to_datetime


def iso_utc(t: float | None, digits: int = 3, suffix: str = "Z") -> str | None:
    """`2026-05-25T23:21:19.461Z` (digits=3), `…19.4610000Z` (digits=7), `…19Z` (digits=0)."""
    if t is None or not math.isfinite(t):
        return None  # a task that never finishes has no completion time to show
    return iso_utc_finite(t, digits, suffix)


def iso_utc_finite(t: float, digits: int = 3, suffix: str = "Z") -> str:
    """`iso_utc` of a time known to be finite."""
    # Printed for every read of a task and every log line: the date and time of each second are worked out once,
    # and the fraction rounded as datetime.fromtimestamp rounds it (half to even, at the microsecond).
    fraction, whole = math.modf(t)
    micro = round(fraction * 1e6)
    second = int(whole)
    if not 0 <= micro < 1_000_000:
        second, micro = second + micro // 1_000_000, micro % 1_000_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) >= _KEPT_SECONDS:
            _SECONDS.clear()
        # The clock's years are 1970 to 3000: always four digits, as strftime's %Y would print.
        m = to_datetime(second)
        text = _SECONDS[second] = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    if not digits:
        return text + suffix
    if digits == 3:
        return f"{text}.{micro // 1000:03d}{suffix}"
    return f"{text}.{f'{micro:06d}'.ljust(max(digits, 6), '0')[:digits]}{suffix}"


_SECONDS: dict[int, str] = {}
_KEPT_SECONDS = 4096


def parse_iso_utc(text: str) -> float | None:
    """Any ISO-8601 date-time (`Z`, an offset, or none meaning UTC; any fraction); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def unix_seconds(t: float | None) -> int | None:
    return None if t is None or not math.isfinite(t) else int(t)

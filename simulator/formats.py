"""Wire formats for time shared by providers (ISO-8601 with N fractional digits, Unix seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.clock import to_datetime


def iso_utc(t: float | None, digits: int = 3, suffix: str = "Z") -> str | None:
    """`2026-05-25T23:21:19.461Z` (digits=3), `…19.4610000Z` (digits=7), `…19Z` (digits=0)."""
    if t is None:
        return None
    moment = to_datetime(t)
    text = moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        fraction = f"{moment.microsecond:06d}".ljust(max(digits, 6), "0")[:digits]
        text += f".{fraction}"
    return text + suffix


def parse_iso_utc(text: str) -> float | None:
    """Inverse of `iso_utc` for any digit count (with `Z` or `+00:00`); None if it is not such a time."""
    try:
        body = text.strip().removesuffix("Z").removesuffix("+00:00")
        whole, _, fraction = body.partition(".")
        base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        return (base + timedelta(microseconds=micros)).timestamp()
    except ValueError:
        return None


def unix_seconds(t: float | None) -> int | None:
    return None if t is None else int(t)

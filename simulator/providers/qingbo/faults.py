"""qingbo's own answers to forced errors where a status, code and message are not enough.

RR (since contract v3.1) documents two kinds of 429: a plain rate limit, and the exhausted sliding-window
quota, `code: quota_window_exceeded`, whose body also carries `window`, `used`, `cap` and `reset_at`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.faults.limits import Limit

QUOTA_WINDOW_CODE = "quota_window_exceeded"
UNITS = (("d", 86_400), ("h", 3_600), ("m", 60))


def window_text(seconds: float) -> str:
    """`3600` → `1h`, `300` → `5m`, `90` → `90s`: the duration style of the dossier's `"window":"1h"`."""
    for unit, size in UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


@dataclass(frozen=True)
class QuotaWindow:
    """The members RR adds beside `error` in a 429 `quota_window_exceeded`."""

    window: str
    used: int
    cap: int
    reset_at: int  # Unix seconds, rounded up so that a client waiting until then is never early

    @classmethod
    def of_limit(cls, limit: Limit, reset_at: float) -> QuotaWindow:
        """A request-window limit refuses only when its window is full, so `used` is the cap."""
        cap = int(limit.requests or 0)
        return cls(window_text(limit.per), cap, cap, math.ceil(reset_at))

    @classmethod
    def of_rule(cls, do: Mapping[str, Any], defaults: Mapping[str, Any], now: float) -> QuotaWindow:
        """A rule forcing the 429 without any limit: its own `window` (seconds, or a text such as "1h"),
        `cap`, `used` and `reset_at`, else the defaults from provider.json; the reset comes after
        `retry_after` if the rule gives one, else after the whole window."""
        seconds = float(defaults["seconds"])
        window = do.get("window")
        given = _number(window)
        if given is not None:
            seconds = float(given)
        text = window if isinstance(window, str) and window else window_text(seconds)
        cap = _number(do.get("cap"))
        cap_value = int(cap) if cap is not None else int(defaults["cap"])
        used = _number(do.get("used"))
        reset = _number(do.get("reset_at"))
        if reset is None:
            reset = now + (_number(do.get("retry_after")) or seconds)
        return cls(text, int(used) if used is not None else cap_value, cap_value, math.ceil(reset))

    def members(self) -> dict[str, Any]:
        return {"window": self.window, "used": self.used, "cap": self.cap, "reset_at": self.reset_at}

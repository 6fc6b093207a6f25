"""The `Prefer: wait=N` request header (RFC 7240) as qingbo uses it on POST /v1/tasks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_WAIT = re.compile(r'^wait\s*=\s*"?(\d{1,9})"?$', re.IGNORECASE)


@dataclass(frozen=True)
class WaitPreference:
    asked: bool  # a well-formed wait preference was present
    seconds: int  # what the server will honour (clamped to the cap)
    note: str | None = None  # for the journal: clamped or ignored, and why


def prefer_wait(headers: Iterable[str], cap: int) -> WaitPreference:
    """Several preferences may share a header (`respond-async, wait=10`) or come in several headers.
    RFC 7240 lets a server ignore what it does not understand, so a malformed wait is ignored, not a
    400; a wait above qingbo's documented maximum is clamped (both undocumented: dossier §8)."""
    malformed: list[str] = []
    for header in headers:
        for preference in header.split(","):
            token = preference.split(";", 1)[0].strip()
            if not token.lower().startswith("wait"):
                continue
            match = _WAIT.match(token)
            if match is None:
                malformed.append(token)
                continue
            asked = int(match.group(1))
            if asked > cap:
                return WaitPreference(True, cap, f"Prefer: wait={asked} clamped to {cap} s")
            return WaitPreference(True, asked)
    if malformed:
        return WaitPreference(False, 0, f"Prefer: {malformed[0]!r} ignored (not wait=<seconds>)")
    return WaitPreference(False, 0)

"""qingbo task IDs: `task-wave{unix seconds}{user tag}{6 digits}`, or SUBMIT's `task_<ULID>`."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Container
from functools import lru_cache

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@lru_cache(maxsize=1024)  # a hash per submit otherwise; a run has few API keys
def user_tag(owner: str) -> str:
    """Four characters derived from the API key. The documented IDs repeat `b950` across tasks of one
    account (`…b950328499`, `…b950049238`), so the part after the timestamp starts with a per-user tag."""
    return hashlib.sha256(owner.encode()).hexdigest()[:4]


def wave_id(owner: str, now: float, rng: random.Random) -> str:
    return f"task-wave{int(now)}{user_tag(owner)}{rng.randrange(10**6):06d}"


def _crockford(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def ulid_id(now: float, rng: random.Random) -> str:
    """48-bit millisecond time + 80 random bits, Crockford base32, as in `task_01K8SGYNNNVBQTXNR4MM964S7K`."""
    return "task_" + _crockford(int(now * 1000), 10) + _crockford(rng.getrandbits(80), 16)


def new_task_id(style: str, owner: str, now: float, rng: random.Random, taken: Container[str]) -> str:
    """A fresh ID in the chosen style; a clash (same second, same draw) simply draws again."""
    while True:
        candidate = ulid_id(now, rng) if style == "ulid" else wave_id(owner, now, rng)
        if candidate not in taken:
            return candidate

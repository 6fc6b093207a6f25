"""Deterministic randomness: every draw comes from a stream named after what it is for."""

from __future__ import annotations

import random


class SeedSource:
    """Same seed + same labels → same stream, regardless of what else has been drawn."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def stream(self, *labels: object) -> random.Random:
        return random.Random(":".join([str(self.seed), *map(str, labels)]))


# The bits uuid.UUID(int=..., version=4) overwrites: the variant (10xx) and the version (0100).
_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_SET = (0x8000 << 48) | (4 << 76)


def random_uuid(rng: random.Random) -> str:
    """What `str(uuid.UUID(int=rng.getrandbits(128), version=4))` gives, without building the UUID object (every
    task, job and transaction draws a few)."""
    text = f"{(rng.getrandbits(128) & _KEEP) | _SET:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_token(rng: random.Random, length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))

"""Deterministic randomness: every draw comes from a stream named after what it is for."""

from __future__ import annotations

import random
import uuid


class SeedSource:
    """Same seed + same labels → same stream, regardless of what else has been drawn."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def stream(self, *labels: object) -> random.Random:
        return random.Random(":".join([str(self.seed), *map(str, labels)]))


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_token(rng: random.Random, length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))

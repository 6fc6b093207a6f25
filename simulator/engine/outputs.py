"""Planning the output images of a generation: sizes, formats, per-image seeds, blob IDs, blocks."""

from __future__ import annotations

import random
from collections.abc import Callable

from simulator.engine.tasks import Failure, OutputImage
from simulator.images import file_extension, normalize_format

INT32 = 2**31


def image_seeds(rng: random.Random, count: int, seed: int | None, modulus: int = INT32) -> list[int]:
    """A pinned seed gives seed, seed+1, …; otherwise each image draws its own from the task stream."""
    if isinstance(seed, int) and seed >= 0:
        return [(seed + n) % modulus for n in range(count)]
    return [rng.randrange(modulus) for _ in range(count)]


def plan_images(
    rng: random.Random,
    *,
    count: int,
    size: tuple[int, int],
    image_format: str,
    blob_id: Callable[[int, str], str],
    seed: int | None = None,
    first_index: int = 0,
    verdict: Failure | None = None,
    seed_modulus: int = INT32,
    quality: int | None = None,
) -> list[OutputImage]:
    """`blob_id(n, extension)` names image n; a blocking verdict marks every image blocked."""
    fmt = normalize_format(image_format)
    extension = file_extension(fmt)
    return [
        OutputImage(
            blob_id=blob_id(n, extension), index=first_index + n, width=size[0], height=size[1], format=fmt,
            seed=image_seed, blocked=verdict is not None, blocked_reason=verdict.message if verdict else None,
            quality=quality,
        )
        for n, image_seed in enumerate(image_seeds(rng, count, seed, seed_modulus))
    ]

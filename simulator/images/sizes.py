"""Output pixel sizes per model family, aspect ratio and resolution tier.

The numbers live in ``schemas/_shared/gemini-sizes.json`` so that they can be corrected without touching
code; this module only loads and queries them.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

from simulator.resources import schemas_dir

SIZES_FILE = "_shared/gemini-sizes.json"

# family -> tier -> aspect ratio -> (width, height); dicts keep the documented order.
SizeTable = dict[str, dict[str, dict[str, tuple[int, int]]]]


class UnknownSize(KeyError):
    """No size is published for the requested family / tier / aspect ratio combination."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # KeyError would otherwise repr() the message and wrap it in quotes.
        return self.message


@cache
def size_table() -> SizeTable:
    """The parsed size table, read from disk once per process."""
    raw = json.loads((schemas_dir() / SIZES_FILE).read_text(encoding="utf-8"))
    return _parse(raw)


def _parse(raw: dict[str, Any]) -> SizeTable:
    table: SizeTable = {}
    for family, entry in raw["families"].items():
        table[family] = {}
        for tier, ratios in entry["tiers"].items():
            sizes: dict[str, tuple[int, int]] = {}
            for ratio, (width, height) in ratios.items():
                _ratio_value(ratio)  # fail at load time on a typo rather than on the first request
                if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
                    raise ValueError(f"{SIZES_FILE}: bad size for {family} {tier} {ratio}: {width}x{height}")
                sizes[ratio] = (width, height)
            table[family][tier] = sizes
    return table


def _ratio_value(ratio: str) -> float:
    width, sep, height = ratio.partition(":")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) == 0 or int(height) == 0:
        raise ValueError(f"not an aspect ratio of the form 'W:H': {ratio!r}")
    return int(width) / int(height)


def families() -> list[str]:
    return list(size_table())


def _family(family: str) -> dict[str, dict[str, tuple[int, int]]]:
    table = size_table()
    try:
        return table[family]
    except KeyError:
        raise UnknownSize(f"Unknown model family {family!r}; known families: {', '.join(table)}") from None


def _tier(family: str, tier: str) -> dict[str, tuple[int, int]]:
    tiers_of_family = _family(family)
    try:
        return tiers_of_family[tier]
    except KeyError:
        raise UnknownSize(
            f"Resolution {tier!r} is not available for {family}; supported: {', '.join(tiers_of_family)}"
        ) from None


def tiers(family: str) -> list[str]:
    return list(_family(family))


def aspect_ratios(family: str, tier: str) -> list[str]:
    return list(_tier(family, tier))


def pixel_size(family: str, aspect_ratio: str, tier: str) -> tuple[int, int]:
    """(width, height) in pixels that ``family`` produces for ``aspect_ratio`` at ``tier``."""
    sizes = _tier(family, tier)
    try:
        return sizes[aspect_ratio]
    except KeyError:
        raise UnknownSize(
            f"Aspect ratio {aspect_ratio!r} is not available for {family} at {tier}; "
            f"supported: {', '.join(sizes)}"
        ) from None


def nearest_ratio(family: str, tier: str, width: int, height: int) -> str:
    """The table aspect ratio closest to ``width``:``height``.

    Distances are taken between logarithms so that 2:1 and 1:2 are equally far from 1:1. The nominal
    ratio (the key) is compared, not the stored pixels, so a quirky published size cannot skew it.
    Ties go to the ratio listed first.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image dimensions must be positive, got {width}x{height}")
    target = math.log(width / height)
    return min(_tier(family, tier), key=lambda ratio: abs(math.log(_ratio_value(ratio)) - target))

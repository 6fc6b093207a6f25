"""Per-image prices (USD, from provider.json) turned into qingbo's integer quota."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def quota_per_image(card: Mapping[str, Any], resolution: str, pricing: str, quota_per_usd: int) -> int | None:
    """None when the model has no price for this request: the backend then refuses the task
    ('fail-closed', HTTP 500 price_not_configured, TS) rather than accepting it unpriced."""
    prices = card.get("usdPerImage", {})
    usd = prices.get("flat") if pricing == "flat" else prices.get("byResolution", {}).get(resolution)
    if usd is None:
        return None
    # Decimal: 0.031875 USD x 500000 is exactly 15937.5, which binary floats would round either way.
    return int((Decimal(str(usd)) * quota_per_usd).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def task_quota(card: Mapping[str, Any], body: Mapping[str, Any], pricing: str, quota_per_usd: int) -> int | None:
    """Per-image billing (seed 001): the price of one image times `n`."""
    per_image = quota_per_image(card, str(body["resolution"]), pricing, quota_per_usd)
    return None if per_image is None else per_image * int(body["n"])

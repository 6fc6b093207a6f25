"""The rules of an imageInference request that JSON Schema cannot say, and the output size they lead to.

Sources: seed 002 (width/height "paired with" each other, resolution presets, "when used with input
media, automatically matches the aspect ratio from the input"); dossier §4.2-4.4 (which of
references, width/height or resolution must be given, and the published width x height pairs, §10).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from simulator.images import (
    InvalidImageReference,
    aspect_ratios,
    decode_image_reference,
    nearest_ratio,
    pixel_size,
    tiers,
)
from simulator.options import ProviderOptions
from simulator.validation import Violation

# A reference image may name an image already stored on Runware by its UUID.
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SQUARE = "1:1"


@dataclass(frozen=True)
class SizePlan:
    width: int
    height: int
    tier: str
    references: list[str] = field(default_factory=list)


def reference_images(task: Mapping[str, Any]) -> tuple[tuple[str, ...], list[str]]:
    """Where the references are (inputs.referenceImages, or the older top-level field) and their values."""
    inputs = task.get("inputs") or {}
    if inputs.get("referenceImages"):
        return ("inputs", "referenceImages"), list(inputs["referenceImages"])
    return ("referenceImages",), list(task.get("referenceImages") or [])


def published_pairs(card: Mapping[str, Any]) -> dict[tuple[int, int], tuple[str, str]]:
    """(width, height) → (tier, ratio) for every size the model's family publishes, plus its aliases."""
    pairs = dict(_family_pairs(card["sizeFamily"]))
    for tier, aliases in card.get("pairAliases", {}).items():
        for text, ratio in aliases.items():
            width, _, height = text.partition("x")
            pairs[(int(width), int(height))] = (tier, ratio)
    return pairs


@cache  # a family's sizes are fixed data: worked out once, not on every request (a tenth of a Runware submit)
def _family_pairs(family: str) -> dict[tuple[int, int], tuple[str, str]]:
    return {
        pixel_size(family, ratio, tier): (tier, ratio)
        for tier in tiers(family) for ratio in aspect_ratios(family, tier)
    }


def _first_reference_shape(
    path: tuple[str, ...], references: list[str], out: list[Violation]
) -> tuple[int, int] | None:
    """Decode inline references (URLs and UUIDs are never fetched); the first one's size, when known."""
    shape = None
    for index, value in enumerate(references):
        if UUID.match(value):
            continue
        try:
            decoded = decode_image_reference(value)
        except InvalidImageReference as exc:
            out.append(Violation((*path, index), "image", exc.message, value, "a UUID, URL, data URI or Base64 image"))
            continue
        if index == 0 and decoded.width and decoded.height:
            shape = (decoded.width, decoded.height)
    return shape


def _limits(task: Mapping[str, Any], options: ProviderOptions, out: list[Violation]) -> None:
    """Numeric limits on which doc versions disagree: the schema has the widest, the options narrow it."""
    limits = (
        (("seed",), task.get("seed"), options["seed_maximum"]),
        (("settings", "temperature"), (task.get("settings") or {}).get("temperature"), options["temperature_maximum"]),
    )
    for path, value, maximum in limits:
        if isinstance(value, (int, float)) and value > maximum:
            out.append(Violation(path, "maximum", f"{value} is greater than the maximum of {maximum}",
                                 value, maximum, maximum))


def plan_size(
    task: Mapping[str, Any], card: Mapping[str, Any], options: ProviderOptions
) -> SizePlan | list[Violation]:
    violations: list[Violation] = []
    _limits(task, options, violations)
    ref_path, references = reference_images(task)
    shape = _first_reference_shape(ref_path, references, violations)
    width, height, resolution = task.get("width"), task.get("height"), task.get("resolution")
    if (width is None) != (height is None):
        missing = "height" if height is None else "width"
        violations.append(Violation((missing,), "pairedDimension", f"'{missing}' is missing", None, missing))
    if resolution is not None and (width is not None or height is not None):
        violations.append(Violation(("resolution",), "incompatible",
                                    "'resolution' cannot be combined with 'width' and 'height'.", resolution))
    if width is None and height is None and resolution is None and not references:
        violations.append(Violation(("width",), "sizeSource",
                                    "Provide 'width' and 'height', 'resolution' or 'inputs.referenceImages'.", None))
    rule = card.get("resolutionWithoutReferences") or options["resolution_without_references"]
    if resolution is not None and not references and rule == "reject":
        violations.append(Violation(("inputs", "referenceImages"), "referencesRequired",
                                    "'resolution' needs reference images for this model.", None))
    pair = None
    if width is not None and height is not None:
        pairs = published_pairs(card)
        pair = pairs.get((width, height))
        if pair is None:
            expected = [f"{w}x{h}" for w, h in pairs]
            violations.append(Violation(("width",), "dimensions", "unsupported size", f"{width}x{height}", expected))
    if violations:
        return violations
    family = card["sizeFamily"]
    if pair is not None:
        tier, ratio = pair
    else:
        tier = resolution or card["defaultTier"]
        ratio = nearest_ratio(family, tier, *shape) if shape else SQUARE
    size = pixel_size(family, ratio, tier)
    return SizePlan(size[0], size[1], tier, references)


def unit_cost(task: Mapping[str, Any], card: Mapping[str, Any], plan: SizePlan, search_surcharge: float) -> float:
    """USD per image: the tier price, plus each reference image, plus grounding when it is charged."""
    google = (task.get("providerSettings") or {}).get("google") or {}
    searching = any(google.get(flag) for flag in card.get("searchFlags", []))
    cost = card["usdPerImage"][plan.tier] + card.get("usdPerReferenceImage", 0) * len(plan.references)
    return round(cost + (search_surcharge if searching else 0), 5)

"""The Nano Banana model cards (provider.json `models`): aliases, per-model rules, tokens and prices."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.images import nearest_ratio
from simulator.options import ProviderOptions
from simulator.pipeline import ProviderError
from simulator.providers.gemini.status import Wording

IMAGE = "IMAGE"
TEXT = "TEXT"
# An early transcription of the image guide's table, for option nb2_image_tokens=early (contract notes).
EARLY_NB2_TOKENS = {"512": 747, "1K": 1120, "2K": 1120, "4K": 2000}
# Rough prompt tokens per character of text (Gemini tokenizers average about four characters a token).
CHARS_PER_TOKEN = 4
# What one input image costs in prompt tokens (GIMG: an image input is 258 tokens up to 384 px per side).
INPUT_IMAGE_TOKENS = 258


@dataclass(frozen=True)
class Model:
    """One model id as asked for: the card of the model it names (an alias reads its target's)."""

    id: str
    card: Mapping[str, Any]
    version: str  # modelVersion in answers: the id asked for
    status: str

    def image_size(self, asked: str | None) -> str:
        return asked or str(self.card["defaultImageSize"])

    def tier(self, data: Mapping[str, Any], size: str) -> str:
        return str(data["imageSizeTiers"][size])

    def image_tokens(self, size: str, options: ProviderOptions) -> int:
        if self.card["sizeFamily"] == "gemini-3.1-flash-image" and options["nb2_image_tokens"] == "early" \
                and len(self.card["imageSizes"]) > 1:
            return EARLY_NB2_TOKENS[size]
        return int(self.card["imageTokens"][size])

    def thinks(self, generation: Mapping[str, Any], options: ProviderOptions) -> bool:
        mode = options["thought_parts"]
        if mode != "model":
            return bool(mode == "always")
        level = str((generation.get("thinkingConfig") or {}).get("thinkingLevel", "")).upper()
        return self.card["thinking"] == "always" or (self.card["thinking"] == "default" and level != "MINIMAL")

    def seconds(self, size: str) -> tuple[float, float]:
        low, high = self.card["secondsPerImage"][size]
        return float(low), float(high)

    def price(self, prompt_tokens: int, image_tokens: int, text_tokens: int) -> float:
        prices = self.card["prices"]
        return (prompt_tokens * prices["inputPerMillion"] + image_tokens * prices["imageOutputPerMillion"]
                + text_tokens * prices["textOutputPerMillion"]) / 1e6


def find_model(data: Mapping[str, Any], options: ProviderOptions, model_id: str) -> Model | None:
    """The model a path names (`gemini-3-pro-image` or `models/gemini-3-pro-image`), None if unknown."""
    name = model_id.removeprefix("models/")
    models: Mapping[str, Any] = data["models"]
    entry = models.get(name)
    if entry is None:
        return None
    card = models[entry["aliasOf"]] if "aliasOf" in entry else entry
    status = str(entry.get("status", card.get("status", "ga")))
    if status == "preview" and options["preview_models"] == "not_found":
        return None
    return Model(name, card, str(entry.get("modelVersion", name)), status)


def prompt_tokens(texts: Sequence[str], images: int) -> int:
    return max(1, sum(math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts)) + images * INPUT_IMAGE_TOKENS


def check_image_config(model: Model, wording: Wording, generation: Mapping[str, Any],
                       references: int) -> None:
    """The per-model rules the schema's unions cannot say: ratios, sizes, candidates, thinking, references."""
    image = generation.get("imageConfig") or {}
    card = model.card
    values = {"model": model.id}
    ratio = image.get("aspectRatio")
    if ratio is not None and ratio not in card["aspectRatios"]:
        raise wording.refusal("unsupported_aspect_ratio", value=ratio, expected=", ".join(card["aspectRatios"]),
                              **values)
    size = image.get("imageSize")
    if size is not None and size not in card["imageSizes"]:
        raise wording.refusal("unsupported_image_size", value=size, expected=", ".join(card["imageSizes"]), **values)
    if int(generation.get("candidateCount", 1)) > int(card["maxCandidates"]):
        raise wording.refusal("multiple_candidates", **values)
    level = (generation.get("thinkingConfig") or {}).get("thinkingLevel")
    levels = card.get("thinkingLevels")
    if level is not None and levels is not None and str(level).upper() not in levels:
        raise wording.refusal("unsupported_thinking_level", value=level, expected=", ".join(levels), **values)
    if references > int(card["maxReferenceImages"]):
        raise wording.refusal("too_many_images", expected=card["maxReferenceImages"], count=references, **values)


def aspect_ratio(model: Model, generation: Mapping[str, Any], tier: str, first_image: tuple[int, int] | None) -> str:
    """The asked ratio, else the first input image's nearest one the model has (GIMG), else 1:1."""
    asked = (generation.get("imageConfig") or {}).get("aspectRatio")
    if asked:
        return str(asked)
    if first_image is None:
        return "1:1"
    found = nearest_ratio(model.card["sizeFamily"], tier, first_image[0], first_image[1])
    return found if found in model.card["aspectRatios"] else "1:1"


def modalities(generation: Mapping[str, Any]) -> set[str]:
    asked = generation.get("responseModalities") or [TEXT, IMAGE]
    return {str(m).upper() for m in asked}


def refuse_unknown(wording: Wording, model_id: str, version: str, method: str, vertex: Mapping[str, str] | None
                   ) -> ProviderError:
    if vertex is not None:
        return wording.refusal("vertex_model_not_found", model=model_id.removeprefix("models/"), **vertex)
    return wording.refusal("model_not_found", model=model_id.removeprefix("models/"), version=version, method=method)

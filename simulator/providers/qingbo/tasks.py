"""A validated, normalised submit body → an engine Task: ID, timeline, planned images, verdict, price."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.engine import Durations, Engine, Failure, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.images import ImageReference, pixel_size
from simulator.options import ProviderOptions
from simulator.providers.qingbo.ids import new_task_id

SEARCH_ACTIONS = frozenset({"search_grounded"})
SEARCH_FLAGS = ("google_search", "google_image_search")


def uses_search(body: Mapping[str, Any]) -> bool:
    return body.get("action") in SEARCH_ACTIONS or any(body.get(flag) for flag in SEARCH_FLAGS)


class TaskBuilder:
    """Everything random comes from the task's own stream, so the same seed gives the same task."""

    def __init__(self, engine: Engine, data: Mapping[str, Any], options: ProviderOptions) -> None:
        self.engine = engine
        self.data = data
        self.options = options

    def card(self, model: str) -> Mapping[str, Any]:
        return self.data["models"][model]

    def build(
        self, owner: str, body: dict[str, Any], price: int, base_url: str, references: Sequence[ImageReference]
    ) -> Task:
        seq, rng = self.engine.next_rng("qingbo")
        now = self.engine.now()
        card = self.card(body["model"])
        task_id = new_task_id(str(self.options["task_id_style"]), owner, now, rng, self.engine.tasks)
        verdict = self.engine.moderation.verdict(body["prompt"])
        ratio = self._aspect_ratio(body, references, rng)
        resolution = str(body["resolution"])
        outputs = [] if verdict is not None else plan_images(
            rng,
            count=int(body["n"]),
            size=pixel_size(card["sizeFamily"], ratio, resolution),
            image_format=self.data["outputFormat"],
            blob_id=lambda _n, extension: f"{rng.getrandbits(128):032x}.{extension}",
            seed=body.get("seed"),
        )
        failure = None
        if verdict is not None:
            # A filtered prompt is an upstream refusal: the STATUS example words it "[code] Upstream returned: …".
            failure = Failure("blocked", verdict.message, code=str(self.options["block_error_code"]))
        timeline = self.engine.plan_timeline(rng, self._durations(body, card, blocked=verdict is not None))
        return Task(
            id=task_id,
            provider="qingbo",
            owner=owner,
            model=body["model"],
            prompt=body["prompt"],
            timeline=timeline,
            outcome=Phase.FAILED if failure else Phase.SUCCEEDED,
            outputs=outputs,
            failure=failure,
            request=body,
            cost=price,
            seq=seq,
            extra={
                "action": body["action"],
                "aspect_ratio": ratio,
                "resolution": resolution,
                "callback_url": body.get("callback_url"),
                "callback_events": list(body.get("callback_events") or self.options["callback_default_events"]),
                "base_url": base_url,
                "refunded": 0,
            },
        )

    def _durations(self, body: Mapping[str, Any], card: Mapping[str, Any], *, blocked: bool) -> Durations:
        if blocked:
            low, high = self.data["blockedSeconds"]
            return Durations(low, high)
        low, high = card["secondsPerImage"][str(body["resolution"])]
        count = int(body["n"])
        extra_low, extra_high = self.data["searchExtraSeconds"] if uses_search(body) else (0, 0)
        # "enabling google_search / google_image_search may slightly increase latency" (seed 001)
        return Durations(low * count + extra_low, high * count + extra_high)

    def _aspect_ratio(self, body: Mapping[str, Any], references: Sequence[ImageReference], rng: random.Random) -> str:
        """`auto` (CN contract): text-to-image picks 1:1 or 16:9, image-to-image follows the input image."""
        ratio = str(body["aspect_ratio"])
        if ratio != "auto":
            return ratio
        auto = self.data["autoAspectRatios"]
        if not body.get("image_urls"):
            return str(rng.choice(auto["generate"]))
        shapes = [(r.width, r.height) for r in references if r.width and r.height]
        if not shapes:
            return str(auto["fallback"])  # a remote URL is never fetched, so its shape is unknown
        width, height = shapes[0]
        # nearest_ratio() would search the whole size table, extreme ratios included; `auto` stays standard
        target = math.log(width / height)
        return min(auto["follow"], key=lambda r: abs(math.log(_ratio(r)) - target))


def _ratio(text: str) -> float:
    width, _, height = text.partition(":")
    return int(width) / int(height)

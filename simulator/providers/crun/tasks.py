"""A validated CreateTask body → an engine task: price, task ID, output image, timeline, verdict; and credits.

Everything model-specific (size family, credits and seconds per resolution tier, which -v2 channel
ignores output_format) is read from the `models` table of provider.json.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from simulator.engine import Durations, Engine, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.engine.rng import random_uuid
from simulator.images import UnknownSize, nearest_ratio, pixel_size
from simulator.options import ProviderOptions

SLUG = "crun"


class TaskFactory:
    def __init__(self, engine: Engine, card: Mapping[str, Any], options: ProviderOptions) -> None:
        self.engine = engine
        self.models: Mapping[str, Any] = card["models"]
        self.defaults: Mapping[str, str] = card["defaults"]
        self.options = options

    def tier(self, filled: Mapping[str, Any]) -> str:
        return str(filled["input"].get("resolution") or self.defaults["resolution"])

    def quote(self, filled: Mapping[str, Any]) -> float:
        """Credits a CreateTask with this (default-filled) body reserves; estimate-credits answers the same."""
        return float(self.models[filled["model"]]["credits"][self.tier(filled)])

    def output_format(self, model: str, filled: Mapping[str, Any]) -> str:
        fixed = self.models[model]["fixedOutputFormat"]  # a -v2 channel ignores output_format
        return str(fixed or filled["input"].get("output_format") or self.defaults["outputFormat"])

    def aspect_ratio(self, model: str, filled: Mapping[str, Any], tier: str) -> str:
        ratio = str(filled["input"].get("aspect_ratio") or self.defaults["aspectRatio"])
        if ratio != "auto":
            return ratio
        # `auto` follows the first reference image; the simulator can only measure its own outputs.
        urls = filled["input"].get("img_urls") or []
        blob = self.engine.blobs.get(urlsplit(urls[0]).path.rsplit("/", 1)[-1]) if urls else None
        if blob is not None:
            with contextlib.suppress(UnknownSize, ValueError):
                return nearest_ratio(self.models[model]["sizeFamily"], tier, blob.image.width, blob.image.height)
        return self.defaults["aspectRatio"]

    def task_id(self, model: str, rng: random.Random) -> str:
        if self.options["task_id_format"] == "uuid":
            return random_uuid(rng)
        version = self.models[model]["modelVersion"]
        return f"task_{version}_{self.engine.unique_millis(f'crun:{version}')}"

    def build(self, owner: str, body: Mapping[str, Any], filled: Mapping[str, Any], base_url: str) -> Task:
        seq, rng = self.engine.next_rng(SLUG)
        model = filled["model"]
        card = self.models[model]
        tier = self.tier(filled)
        task_id = self.task_id(model, rng)
        prompt = str(filled["input"]["prompt"])
        verdict = self.engine.moderation.verdict(prompt)
        low, high = card["blockedSeconds"] if verdict else card["seconds"][tier]
        timeline = self.engine.plan_timeline(rng, Durations(float(low), float(high)))
        size = pixel_size(card["sizeFamily"], self.aspect_ratio(model, filled, tier), tier)
        images = plan_images(
            rng, count=1, size=size, image_format=self.output_format(model, filled),
            blob_id=lambda n, extension: f"{task_id}-{n}.{extension}", verdict=verdict,
        )
        param = {"model": body["model"], "callback_url": body.get("callback_url"), "input": body["input"]}
        return Task(
            id=task_id, provider=SLUG, owner=owner, model=model, prompt=prompt, timeline=timeline,
            outcome=Phase.FAILED if verdict else Phase.SUCCEEDED, outputs=images, failure=verdict,
            request=dict(body), cost=self.quote(filled), seq=seq,
            extra={
                "param": param, "base_url": base_url,
                "provider": card["provider"], "model_version": card["modelVersion"],
            },
        )


def outcome(task: Task, phase: Phase) -> Phase:
    """CRun's reading of an engine phase. A task has one image, and CRun has no success without media, so a
    success whose every image was blocked after generation (fault `partial_block`) is a failed task."""
    if phase is Phase.SUCCEEDED and task.outputs and all(image.blocked for image in task.outputs):
        return Phase.FAILED
    return phase


class Ledger:
    """Credits reserved at CreateTask and settled once when the task ends (refunded on failure by default)."""

    def __init__(self, engine: Engine, options: ProviderOptions) -> None:
        self.engine = engine
        self.options = options

    def reserve(self, owner: str, amount: float) -> bool:
        return self.engine.wallets.debit(SLUG, owner, amount)

    def settle(self, task: Task) -> None:
        """Idempotent: the terminal event and a TaskInfo read may both get here first."""
        phase = outcome(task, task.phase(self.engine.now()))
        if "charged" in task.extra or not phase.terminal:
            return
        if phase is not Phase.SUCCEEDED and self.options["refund_failed_tasks"]:
            self.engine.wallets.credit(SLUG, task.owner, task.cost, task_id=task.id)
            task.extra["charged"] = 0.0
        else:
            task.extra["charged"] = task.cost
        task.touch()

    @staticmethod
    def credits(task: Task) -> float:
        """Reserved credits until settled, then the credits actually consumed."""
        return float(task.extra.get("charged", task.cost))

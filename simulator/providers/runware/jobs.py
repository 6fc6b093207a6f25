"""A validated imageInference task → a Runware job: one engine task per result image.

Runware runs the `numberResults` generations of a task in parallel and reports each one as it
finishes (seed 002 webhookURL: "each completed item triggers a separate webhook call as it becomes
available"; task polling: "completed generations include their final outputs, so you can access
partial results"). So each image is its own engine task with its own timeline, all sharing the
job (the client's taskUUID). The engine task ID is the image's imageUUID.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.clock import Timer
from simulator.engine import Durations, Engine, OutputImage, Phase, Task
from simulator.engine.outputs import image_seeds
from simulator.engine.rng import random_uuid
from simulator.images import file_extension, normalize_format
from simulator.providers.runware.sizing import SizePlan

SLUG = "runware"
# Seed 002: "When not provided, a random seed is generated in the unsigned 32-bit range"; a given
# seed may go up to the int64 limit, so seed+n for later images wraps there.
RANDOM_SEEDS = 2**32
PINNED_SEEDS = 2**63


@dataclass
class Job:
    """One imageInference task as the client knows it, and the engine tasks of its images."""

    task_uuid: str
    owner: str
    request: dict[str, Any]
    base_url: str
    unit_cost: float
    # Each image task names its job, so the job holds its images weakly: a cycle of the two would be freed only
    # by a full collection, which `serve` no longer walks once it has frozen the pair (simulator.heap). The task
    # store holds the images; an image retired for the store's capacity leaves the job as it leaves the store.
    _images: list[weakref.ref[Task]] = field(default_factory=list)
    timeout_at: float = math.inf  # a sync job's timeout on the clock, and the timer that enforces it
    deadline: Timer | None = None
    failure_posted: bool = False  # a failed job is posted to webhookURL once, not once per image

    @property
    def images(self) -> list[Task]:
        return [image for ref in self._images if (image := ref()) is not None]

    @property
    def output_types(self) -> list[str]:
        wanted = self.request["outputType"]
        return [wanted] if isinstance(wanted, str) else list(wanted)

    def flags_content(self) -> bool:
        """Whether results carry NSFWContent: safety checking on (or the deprecated checkNSFW)."""
        safety = self.request.get("safety") or {}
        return bool(safety.get("checkContent") or safety.get("mode") == "fast" or self.request.get("checkNSFW"))


def job_of(task: Task) -> Job | None:
    job = task.extra.get("job")
    return job if isinstance(job, Job) else None


class JobBuilder:
    def __init__(self, engine: Engine, models: Mapping[str, Any]) -> None:
        self.engine = engine
        self.models = models

    def build(self, owner: str, request: dict[str, Any], plan: SizePlan, base_url: str,
              unit_cost: float) -> tuple[Job, list[Task]]:
        """The job and its image tasks (the job holds them weakly: the caller stores them)."""
        seq, rng = self.engine.next_rng(SLUG)
        card = self.models[request["model"]]
        count = int(request["numberResults"])
        image_format = normalize_format(request["outputFormat"])
        verdict = self.engine.moderation.verdict(request["positivePrompt"])
        durations = Durations(*card["secondsPerImage"][plan.tier])
        seed = request.get("seed")
        seeds = image_seeds(rng, count, seed, PINNED_SEEDS if isinstance(seed, int) else RANDOM_SEEDS)
        # A blocked prompt is refused once, for every image at the same moment.
        shared = self.engine.plan_timeline(rng, durations) if verdict is not None else None
        job = Job(request["taskUUID"], owner, request, base_url, unit_cost)
        images: list[Task] = []
        for index, image_seed in enumerate(seeds):
            image_uuid = random_uuid(rng)
            image = OutputImage(
                blob_id=f"{image_uuid}.{file_extension(image_format)}", index=index,
                width=plan.width, height=plan.height, format=image_format, seed=image_seed,
                blocked=verdict is not None, blocked_reason=verdict.message if verdict else None,
            )
            images.append(Task(
                id=image_uuid, provider=SLUG, owner=owner, model=request["model"],
                prompt=request["positivePrompt"], timeline=shared or self.engine.plan_timeline(rng, durations),
                outcome=Phase.FAILED if verdict else Phase.SUCCEEDED, outputs=[image], failure=verdict,
                request=request, cost=unit_cost, seq=seq, extra={"job": job, "index": index},
            ))
            job._images.append(weakref.ref(images[-1]))
        return job, images

"""A validated WorkflowTemplate → an engine task: price, IDs, images, timeline, moderation verdict."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from simulator.clock import to_datetime
from simulator.engine import Durations, Engine, Failure, OutputImage, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.engine.rng import random_uuid
from simulator.images import InvalidImageReference, decode_image_reference, nearest_ratio, pixel_size
from simulator.validation import json_copy


@lru_cache(maxsize=1024)
def user_id(token: str) -> int:
    """A stable numeric account per API key, as real workflow IDs start with the user's ID."""
    return 1_000_000 + int(hashlib.sha256(token.encode()).hexdigest()[:12], 16) % 9_000_000


def workflow_id(owner: str, millis: int) -> str:
    """`{userId}-{yyyyMMddHHmmssfff}` as observed (`millis` unique per user, see Engine.unique_millis)."""
    m = to_datetime(millis / 1000)
    return f"{user_id(owner)}-{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}" \
           f"{millis % 1000:03d}"


@dataclass(frozen=True)
class Quote:
    per_step: list[int]

    @property
    def total(self) -> int:
        return sum(self.per_step)


def step_tier(card: Mapping[str, Any], step_input: Mapping[str, Any]) -> str:
    return str(card.get("fixedResolution") or step_input.get("resolution") or "1K")


def step_price(card: Mapping[str, Any], step_input: Mapping[str, Any]) -> int:
    """Seed 000's Buzz table: base per image by tier (+edit premium), plus each enabled search flag."""
    tier = step_tier(card, step_input)
    table = card["buzzPerImage"]
    if step_input.get("images") and "buzzPerImageWithImages" in card:
        table = card["buzzPerImageWithImages"]
    per_image = table[tier] + sum(
        surcharge for flag, surcharge in card.get("searchFlags", {}).items() if step_input.get(flag)
    )
    return int(per_image * image_count(card, step_input))


def image_count(card: Mapping[str, Any], step_input: Mapping[str, Any]) -> int:
    """How many images a step asks for: `numImages`, or the field the engine names it (gemini: `quantity`)."""
    return int(step_input.get(card.get("countField", "numImages")) or 1)


def step_ratio(card: Mapping[str, Any], step_input: Mapping[str, Any]) -> str:
    """The asked ratio; an engine whose card says `defaultAspectRatio: input` (gemini) follows the first source
    image's shape where it can be read (an inline image), else 1:1."""
    asked = step_input.get("aspectRatio")
    if asked:
        return str(asked)
    images = step_input.get("images") or []
    if card.get("defaultAspectRatio") != "input" or not images:
        return "1:1"
    try:
        source = decode_image_reference(str(images[0]))
    except InvalidImageReference:
        return "1:1"
    if not (source.width and source.height):
        return "1:1"  # a URL: never fetched, so its shape is unknown
    return nearest_ratio(card["sizeFamily"], step_tier(card, step_input), source.width, source.height)


def quote(models: Mapping[str, Any], steps: list[dict[str, Any]]) -> Quote:
    return Quote([step_price(models[s["input"]["model"]], s["input"]) for s in steps])


class WorkflowBuilder:
    """Turns one validated, default-filled template into a Task (not yet added to the engine)."""

    def __init__(self, engine: Engine, models: Mapping[str, Any], options: Any, fields: Mapping[str, Any]) -> None:
        self.engine = engine
        self.models = models
        self.options = options
        self.fields = fields  # what a workflow keeps of its template, each with the schema's default (or None)

    def build(self, owner: str, template: dict[str, Any], base_url: str, *, whatif: bool) -> Task:
        seq, rng = self.engine.next_rng("civitai")
        price = quote(self.models, template["steps"])
        if whatif:
            task_id = f"0-{random_uuid(rng)}"
        else:
            task_id = workflow_id(owner, self.engine.unique_millis(f"civitai:{owner}"))
        outputs: list[OutputImage] = []
        steps = [self._step(i, s, task_id, rng, outputs) for i, s in enumerate(template["steps"])]
        durations = [self._durations(s["input"]) for s in template["steps"]]
        timeline = self.engine.plan_timeline(
            rng, Durations(max(d.low for d in durations), max(d.high for d in durations))
        )
        blocked = [s for s in steps if s["blocked"]]
        # An explicit null means the default too.
        workflow = {key: json_copy(default) if template.get(key) is None else template[key]
                    for key, default in self.fields.items()}
        account = workflow["currencies"][0] if workflow["currencies"] else self.options["debit_account"]
        transactions = [{"type": "debit", "amount": price.total, "id": random_uuid(rng), "accountType": account}]
        first_prompt = template["steps"][0]["input"].get("prompt", "")
        return Task(
            id=task_id,
            provider="civitai",
            owner=owner,
            model=template["steps"][0]["input"]["model"],
            prompt=first_prompt,
            timeline=timeline,
            outcome=Phase.FAILED if blocked else Phase.SUCCEEDED,
            outputs=outputs,
            failure=Failure("blocked", blocked[0]["blockedReason"]) if blocked else None,
            request=template,
            cost=price.total,
            seq=seq,
            tags=list(template.get("tags") or []),
            extra={
                "workflow": workflow,
                "steps": steps,
                "transactions": transactions,
                "cost": {
                    "base": price.total, "factors": {}, "fixed": {},
                    "tips": {"civitai": 0, "creators": 0}, "total": price.total,
                },
                "base_url": base_url,
                "whatif": whatif,
                "insufficientBuzz": False,
            },
        )

    def _durations(self, step_input: Mapping[str, Any]) -> Durations:
        card = self.models[step_input["model"]]
        low, high = card["secondsPerImage"][step_tier(card, step_input)]
        count = image_count(card, step_input)
        return Durations(low * count, high * count)

    def _step(
        self, index: int, template: dict[str, Any], task_id: str, rng: random.Random, outputs: list[OutputImage]
    ) -> dict[str, Any]:
        step_input = template["input"]
        card = self.models[step_input["model"]]
        size = pixel_size(card["sizeFamily"], step_ratio(card, step_input), step_tier(card, step_input))
        job_id = random_uuid(rng)
        verdict = self.engine.moderation.verdict(step_input.get("prompt", ""))
        first = len(outputs)
        outputs.extend(plan_images(
            rng, count=image_count(card, step_input), size=size, first_index=first, verdict=verdict,
            image_format=step_input.get("outputFormat") or self.options["default_output_format"],
            blob_id=lambda n, extension: f"{job_id}-{n}.{extension}", seed=step_input.get("seed"),
        ))
        return {
            "name": template.get("name") or f"${index}",
            "priority": template.get("priority") or "normal",
            "timeout": template.get("timeout"),
            "retries": template.get("retries"),
            "metadata": template.get("metadata") or {},
            "input": step_input,
            "jobId": job_id,
            "outputs": list(range(first, len(outputs))),
            "blocked": verdict is not None,
            "blockedReason": verdict.message if verdict else None,
            "workflowId": task_id,
        }

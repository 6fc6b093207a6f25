"""A validated, default-filled create request → an engine Task: ID, size, format, timeline, credits, outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.engine import Durations, Failure, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.engine.rng import random_token
from simulator.images import ImageReference, InvalidImageReference, decode_image_reference, nearest_ratio, pixel_size
from simulator.providers.gateway.card import GatewayCard, ModelCard

if TYPE_CHECKING:
    from simulator.providers.gateway.provider import GatewayProvider

Reference = ImageReference | InvalidImageReference


@dataclass(frozen=True)
class CreateRequest:
    """The parts of a create body the simulation depends on, named provider-neutrally."""

    model: ModelCard
    tier: str
    ratio: str
    prompt: str
    images: list[Reference]
    output_format: str | None
    callback_url: str | None

    @property
    def image_problems(self) -> list[tuple[int, InvalidImageReference]]:
        return [(i, ref) for i, ref in enumerate(self.images) if isinstance(ref, InvalidImageReference)]

    @property
    def cost(self) -> int | float:
        return self.model.credits[self.tier]


def read_request(card: GatewayCard, body: dict[str, Any]) -> CreateRequest:
    """Decode a body that passed the schema (so `model`, the ratio and the tier are known values)."""
    fields = card.fields
    model = card.models[body["model"]]
    tier = body[fields.tier]
    images: list[Reference] = []
    for value in body.get(fields.images) or []:
        try:
            images.append(decode_image_reference(value, max_bytes=model.max_image_bytes))
        except InvalidImageReference as exc:
            images.append(exc)
    return CreateRequest(
        model=model,
        tier=card.tier_aliases.get(tier, tier),
        ratio=body[fields.ratio],
        prompt=body["prompt"],
        images=images,
        output_format=body.get(fields.format) if fields.format else None,
        callback_url=body.get(fields.callback) if fields.callback else None,
    )


class TaskPlanner:
    def __init__(self, provider: GatewayProvider) -> None:
        self.provider = provider
        self.card = provider.card

    def output_ratio(self, request: CreateRequest) -> str:
        """The requested ratio, or for `match_input_image`/`auto` the table ratio nearest the first input image."""
        if request.ratio not in self.card.match_input_ratios:
            return request.ratio
        first = request.images[0] if request.images else None
        if isinstance(first, ImageReference) and first.width and first.height:
            return nearest_ratio(request.model.size_family, request.tier, first.width, first.height)
        return str(self.provider.options["match_ratio_fallback"])

    def failure(self, request: CreateRequest) -> Failure | None:
        """A content block wins; otherwise an unusable input image fails the task (when not refused at submit)."""
        verdict = self.provider.engine.moderation.verdict(request.prompt)
        if verdict is not None:
            return verdict
        problems = request.image_problems
        if problems:
            index, problem = problems[0]
            return Failure("image", f"Image {index + 1}: {problem.message}")
        return None

    def build(self, owner: str, body: dict[str, Any], request: CreateRequest, base_url: str) -> Task:
        engine = self.provider.engine
        options = self.provider.options
        seq, rng = engine.next_rng(self.provider.slug)
        now = engine.now()
        id_format = self.card.task_id
        task_id = f"{id_format.prefix}{int(now)}-{random_token(rng, id_format.length, id_format.alphabet)}"
        ratio = self.output_ratio(request)
        size = pixel_size(request.model.size_family, ratio, request.tier)
        failure = self.failure(request)
        outputs = plan_images(
            rng, count=self.card.images_per_task, size=size,
            image_format=request.output_format or options["default_output_format"],
            blob_id=lambda n, extension: f"{task_id}-{n}.{extension}", verdict=failure,
        )
        low, high = request.model.seconds[request.tier]
        return Task(
            id=task_id,
            provider=self.provider.slug,
            owner=owner,
            model=request.model.name,
            prompt=request.prompt,
            timeline=engine.plan_timeline(rng, Durations(low, high)),
            outcome=Phase.FAILED if failure else Phase.SUCCEEDED,
            outputs=outputs,
            failure=failure,
            request=body,
            cost=request.cost,
            seq=seq,
            extra={
                "base_url": base_url,
                "ratio": ratio,
                "tier": request.tier,
                "estimated_time": request.model.estimated_time,
                "callback_url": request.callback_url,
                "refunded": False,
            },
        )

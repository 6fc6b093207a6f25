"""One generateContent request as an engine task, and the GenerateContentResponse it answers.

The same pieces serve generateContent, streamGenerateContent and every request of a Batch: `plan` reads a
normalised request into an engine Task (image size from the model card and Google's pixel table, tokens,
price, time on the clock), and `Responses` draws the answer once the task is over — real placeholder
images as standard base64 in `inlineData`, thought parts and signatures, grounding metadata, usage from the
token table, and Google's block semantics (a blocked prompt has no candidates; a withheld image is a
candidate with a finish reason and no content).
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.engine import Durations, Engine, Failure, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.engine.rng import random_token
from simulator.formats import iso_utc
from simulator.images import pixel_size
from simulator.options import ProviderOptions
from simulator.providers.gemini.models import (
    IMAGE,
    INPUT_IMAGE_TOKENS,
    TEXT,
    Model,
    aspect_ratio,
    modalities,
    prompt_tokens,
)

ROLE = "model"
FORCED = "forced"  # the code moderation gives a block a fault rule forced (an output block on this API)
# Words the model says beside its image; tokens counted as the tokenizer would, roughly.
REPLY = "Here is the image you asked for."
THOUGHT = "Planning the composition: subject first, then light and colour, then the details the prompt names."


@dataclass(frozen=True)
class Reference:
    """An input image: inline bytes or an uploaded file, with its pixel size where known."""

    size: tuple[int, int] | None


@dataclass
class Ask:
    """A generation request, normalised to lowerCamel: what `plan` needs to know of it."""

    model: Model
    body: Mapping[str, Any]
    references: Sequence[Reference] = ()
    vertex: bool = False
    batch: bool = False

    @property
    def generation(self) -> Mapping[str, Any]:
        return self.body.get("generationConfig") or {}

    @property
    def texts(self) -> list[str]:
        contents = [*self.body.get("contents", []), self.body.get("systemInstruction") or {}]
        return [str(part["text"]) for content in contents for part in content.get("parts", []) if "text" in part]

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)

    @property
    def grounded(self) -> bool:
        return any("googleSearch" in tool or "googleSearchRetrieval" in tool for tool in self.body.get("tools", []))


@dataclass
class Plan:
    """What the answer will say, decided when the task is made (so it is a function of the seed)."""

    ask: Ask
    prompt_tokens: int
    image_tokens: int
    text_tokens: int
    thought_tokens: int
    wants_image: bool
    wants_text: bool
    thinks: bool
    prompt_blocked: bool
    response_id: str
    signature: str
    extra: dict[str, Any] = field(default_factory=dict)


class Generator:
    def __init__(self, engine: Engine, data: Mapping[str, Any], options: ProviderOptions) -> None:
        self.engine = engine
        self.data = data
        self.options = options

    def plan(self, owner: str, ask: Ask, *, seq_rng: tuple[int, random.Random] | None = None,
             accepted_at: float | None = None) -> Task:
        """The engine task for one request (added to the engine, its clock running). A Batch passes its own
        start time: its requests run after its queue."""
        seq, rng = seq_rng or self.engine.next_rng("gemini")
        model, generation = ask.model, ask.generation
        wanted = modalities(generation)
        size = model.image_size((generation.get("imageConfig") or {}).get("imageSize"))
        tier = model.tier(self.data, size)
        first = next((r.size for r in ask.references if r.size), None)
        ratio = aspect_ratio(model, generation, tier, first)
        verdict = self.engine.moderation.verdict(ask.prompt)
        prompt_blocked = verdict is not None and verdict.code != FORCED
        wants_image = IMAGE in wanted and not prompt_blocked
        thinks = model.thinks(generation, self.options) and not prompt_blocked
        seed = generation.get("seed")
        outputs = plan_images(
            rng, count=1 if wants_image else 0, size=pixel_size(model.card["sizeFamily"], ratio, tier),
            image_format="png", blob_id=lambda _n, ext: f"gemini-{rng.getrandbits(96):024x}.{ext}",
            seed=seed if isinstance(seed, int) else None,
            verdict=verdict if verdict is not None and verdict.code == FORCED else None,
        )
        ids = self.data["ids"]
        plan = Plan(
            ask=ask, prompt_tokens=prompt_tokens(ask.texts, len(ask.references)),
            image_tokens=model.image_tokens(size, self.options) if wants_image else 0,
            text_tokens=_tokens(REPLY) if TEXT in wanted and not prompt_blocked else 0,
            thought_tokens=_tokens(THOUGHT) * 4 if thinks else 0,
            wants_image=wants_image, wants_text=TEXT in wanted, thinks=thinks, prompt_blocked=prompt_blocked,
            response_id=random_token(rng, ids["responseId"]["length"], ids["responseId"]["alphabet"]),
            signature=base64.b64encode(rng.randbytes(48)).decode(),
        )
        start = self.engine.now() if accepted_at is None else accepted_at
        low, high = model.seconds(size) if wants_image else (1.0, 3.0)
        timeline = self.engine.plan_timeline(rng, Durations(low, high, (0.0, 0.05)))
        shift = start - timeline.accepted_at
        timeline = type(timeline)(timeline.accepted_at, timeline.queued_at + shift, timeline.started_at + shift,
                                  timeline.finished_at + shift)
        task = Task(
            id=f"gemini-{seq}", provider="gemini", owner=owner, model=model.id, prompt=ask.prompt,
            timeline=timeline, outcome=Phase.SUCCEEDED, outputs=outputs, request=dict(ask.body), seq=seq,
            extra={"plan": plan, "ratio": ratio, "size": size},
        )
        if verdict is not None and verdict.code == FORCED:
            task.failure = Failure("blocked", verdict.message, code=FORCED)
        return self.engine.add_task(task)

    def price(self, task: Task) -> float:
        """USD for what the answer carries: prompt, image and text tokens (nothing for a withheld image)."""
        plan: Plan = task.extra["plan"]
        if plan.prompt_blocked or task.outcome is not Phase.SUCCEEDED:
            return 0.0
        shown = [image for image in task.outputs if not image.blocked]
        image_tokens = plan.image_tokens if shown else 0
        price = plan.ask.model.price(plan.prompt_tokens, image_tokens, plan.text_tokens + plan.thought_tokens)
        return price * (float(self.data["pricing"]["batchDiscount"]) if plan.ask.batch else 1.0)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class Responses:
    """GenerateContentResponse bodies for finished tasks."""

    def __init__(self, engine: Engine, data: Mapping[str, Any], options: ProviderOptions) -> None:
        self.engine = engine
        self.data = data
        self.options = options

    async def answer(self, task: Task) -> dict[str, Any]:
        plan: Plan = task.extra["plan"]
        if plan.prompt_blocked:
            return self.prompt_block(plan)
        image = next(iter(task.outputs), None)
        withheld = image is not None and image.blocked
        # A block the filter gives the whole answer (task fault `block`) withholds the reply too; a partial one
        # (`partial_block`) keeps the text and withholds the image.
        whole = withheld and task.failure is not None
        shows_image = image is not None and not withheld
        shows_text = plan.wants_text and not whole
        parts: list[dict[str, Any]] = await self._thoughts(plan, task) if plan.thinks and shows_image else []
        if shows_text:
            parts.append({"text": REPLY})
        if shows_image:
            parts.append({"inlineData": {"mimeType": "image/png", "data": await self._image(task)}})
        self._sign(plan, parts)
        candidate: dict[str, Any] = {"content": {"role": ROLE, "parts": parts}} if parts else {}
        if withheld:
            reason = str(self.options["output_block_reason"]) if whole else "IMAGE_SAFETY"
            candidate |= {"finishReason": reason, "index": 0}
            message = self.data["blocks"]["finishMessages"].get(reason)
            if message:
                candidate["finishMessage"] = message
        else:
            candidate |= {"finishReason": "STOP", "index": 0}
            if plan.ask.grounded:
                candidate["groundingMetadata"] = grounding(plan.ask.prompt)
        usage = self.usage(plan, image=shows_image, text=shows_text)
        return self._envelope(plan, {"candidates": [candidate], "usageMetadata": usage}, task)

    def prompt_block(self, plan: Plan, reason: str | None = None) -> dict[str, Any]:
        body = {"promptFeedback": {"blockReason": reason or str(self.options["prompt_block_reason"])},
                "usageMetadata": self.usage(plan, image=False, text=False)}
        return self._envelope(plan, body, None)

    def usage(self, plan: Plan, *, image: bool, text: bool) -> dict[str, Any]:
        """usageMetadata from the token table: only what the answer carries is counted (and charged)."""
        prompt = plan.prompt_tokens
        images = plan.image_tokens if image else 0
        texts = plan.text_tokens if text else 0
        thoughts = plan.thought_tokens if image else 0
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if images + texts:
            usage["candidatesTokenCount"] = images + texts
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt + images + texts + thoughts
        if plan.ask.vertex:
            usage["trafficType"] = "ON_DEMAND"
        image_input = INPUT_IMAGE_TOKENS * len(plan.ask.references)
        usage["promptTokensDetails"] = [{"modality": m, "tokenCount": n}
                                        for m, n in (("TEXT", prompt - image_input), ("IMAGE", image_input)) if n]
        produced = [{"modality": m, "tokenCount": n} for m, n in (("IMAGE", images), ("TEXT", texts)) if n]
        if produced:
            usage["candidatesTokensDetails"] = produced
        return usage

    def _envelope(self, plan: Plan, body: dict[str, Any], task: Task | None) -> dict[str, Any]:
        body["modelVersion"] = plan.ask.model.version
        if plan.ask.vertex:
            created = task.timeline.accepted_at if task is not None else self.engine.now()
            body["createTime"] = iso_utc(created, 6)
        body["responseId"] = plan.response_id
        return body

    async def _image(self, task: Task) -> str:
        blob = self.engine.blobs.get(task.outputs[0].blob_id)
        assert blob is not None, "a task's outputs are registered when it is added"
        return base64.b64encode(await self.engine.blobs.fetch(blob)).decode()

    async def _thoughts(self, plan: Plan, task: Task) -> list[dict[str, Any]]:
        """Gemini 3 image models think: a thought summary (with includeThoughts) and, on Pro, an interim image."""
        parts: list[dict[str, Any]] = []
        generation = plan.ask.generation
        if (generation.get("thinkingConfig") or {}).get("includeThoughts"):
            parts.append({"text": THOUGHT, "thought": True})
        if plan.ask.model.card["thinking"] == "always" and plan.wants_image:
            parts.append({"inlineData": {"mimeType": "image/png", "data": await self._image(task)}, "thought": True})
        return parts

    def _sign(self, plan: Plan, parts: list[dict[str, Any]]) -> None:
        """thoughtSignature where option thought_signature_placement says (contract notes)."""
        if not plan.thinks:
            return
        placement = str(self.options["thought_signature_placement"])
        answer_parts = [part for part in parts if not part.get("thought")]
        chosen = []
        if placement in ("first_and_images", "first") and answer_parts:
            chosen.append(answer_parts[0])
        if placement in ("first_and_images", "images"):
            chosen += [part for part in answer_parts if "inlineData" in part]
        for part in chosen:
            part["thoughtSignature"] = plan.signature


def grounding(prompt: str) -> dict[str, Any]:
    """Search grounding as the answer shows it: the query, one web source and the support for the reply."""
    digest = hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:12]
    query = " ".join(prompt.split()[:8]) or "image"
    return {
        "webSearchQueries": [query],
        "searchEntryPoint": {"renderedContent": f'<div class="container"><a class="chip">{_html(query)}</a></div>'},
        "groundingChunks": [{"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/{digest}",
                                     "title": "example.com"}}],
        "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": len(REPLY), "text": REPLY},
                               "groundingChunkIndices": [0], "confidenceScores": [0.9]}],
    }


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def stream_events(body: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    """An answer as SSE events: text parts first, then each image whole, finishReason and usage on the last
    (option stream_chunks `single`: one event). A blocked prompt is one event."""
    candidates = body.get("candidates")
    if mode == "single" or not candidates or "content" not in candidates[0]:
        return [dict(body)]
    envelope = {key: value for key, value in body.items() if key not in ("candidates", "usageMetadata")}
    candidate = candidates[0]
    parts = candidate["content"]["parts"]
    groups: list[list[dict[str, Any]]] = []
    texts = [part for part in parts if "inlineData" not in part]
    if texts:
        groups.append(texts)
    groups += [[part] for part in parts if "inlineData" in part]
    events = []
    for number, group in enumerate(groups):
        event_candidate: dict[str, Any] = {"content": {"role": ROLE, "parts": group}}
        if number == len(groups) - 1:
            event_candidate |= {key: value for key, value in candidate.items() if key != "content"}
        else:
            event_candidate["index"] = candidate.get("index", 0)
        event: dict[str, Any] = {"candidates": [event_candidate]}
        if number == len(groups) - 1 and "usageMetadata" in body:
            event["usageMetadata"] = body["usageMetadata"]
        events.append(event | envelope)
    return events

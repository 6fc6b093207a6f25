"""Imagen 4's `:predict`, served only with option `imagen_predict=legacy` (the models were shut down).

`{instances: [{prompt}], parameters: {sampleCount, aspectRatio, …}}` → `{predictions: [{bytesBase64Encoded,
mimeType} | {raiFilteredReason}]}`, at Imagen 4's 1K sizes (the only tier the shared size table has).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from simulator.engine import Durations, Engine, Phase, Task
from simulator.engine.outputs import plan_images
from simulator.images import pixel_size

TIER = "1K"
FILTERED = "Your current safety filter threshold filtered out the generated image. You will not be charged."


async def predict(engine: Engine, owner: str, model_id: str, card: Mapping[str, Any], body: Mapping[str, Any],
                  deadline: float) -> tuple[Task, dict[str, Any]]:
    """Generate on the clock; the task (for the journal and the price) and the answer."""
    parameters = body.get("parameters") or {}
    prompt = str(body["instances"][0]["prompt"])
    seq, rng = engine.next_rng("gemini")
    verdict = engine.moderation.verdict(prompt)
    count = int(parameters.get("sampleCount", 1))
    outputs = plan_images(
        rng, count=count, size=pixel_size(card["sizeFamily"], str(parameters.get("aspectRatio", "1:1")), TIER),
        image_format="png", blob_id=lambda _n, ext: f"imagen-{rng.getrandbits(96):024x}.{ext}", verdict=verdict,
    )
    low, high = card["secondsPerImage"]
    task = engine.add_task(Task(
        id=f"gemini-{seq}", provider="gemini", owner=owner, model=model_id, prompt=prompt,
        timeline=engine.plan_timeline(rng, Durations(float(low) * count, float(high) * count)),
        outcome=Phase.SUCCEEDED, outputs=outputs, request=dict(body), seq=seq,
    ))
    await engine.wait(task, deadline)
    predictions: list[dict[str, Any]] = []
    for image in task.outputs:
        if image.blocked:
            predictions.append({"raiFilteredReason": FILTERED})
            continue
        blob = engine.blobs.get(image.blob_id)
        assert blob is not None, "a task's outputs are registered when it is added"
        data = base64.b64encode(await engine.blobs.fetch(blob)).decode()
        predictions.append({"bytesBase64Encoded": data, "mimeType": "image/png"})
    task.cost = float(card["pricePerImage"]) * sum(1 for image in task.outputs if not image.blocked)
    return task, {"predictions": predictions}

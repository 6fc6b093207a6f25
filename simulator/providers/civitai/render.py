"""Engine state → Civitai's wire format (Workflow, WorkflowStep, ImageBlob), as of a clock time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from simulator.engine import Engine, OutputImage, Phase, Task
from simulator.formats import iso_utc

STATUS = {
    Phase.ACCEPTED: "unassigned",
    Phase.QUEUED: "scheduled",
    Phase.PROCESSING: "processing",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELED: "canceled",
    Phase.EXPIRED: "expired",
}

BLOB_PATH = "/v2/consumer/blobs/{blob_id}"


def timestamp(t: float | None) -> str | None:
    """Orchestrator style: UTC with seven fractional digits, `2026-05-25T23:21:19.4610000Z`."""
    return iso_utc(t, digits=7)


@dataclass(frozen=True)
class View:
    """What a rendering needs besides the task: the clock, URL base, signing and TTL."""

    engine: Engine
    base_url: str
    url_ttl: float

    @property
    def now(self) -> float:
        return self.engine.clock.now()

    def signed_url(self, blob_id: str) -> tuple[str, str]:
        expires = timestamp(self.now + self.url_ttl) or ""
        path = BLOB_PATH.format(blob_id=blob_id)
        signature = self.engine.signer.signature(path, expires)
        return f"{self.base_url}{path}?sig={signature}&exp={expires}", expires


def step_phase(task: Task, step: dict[str, Any], now: float) -> Phase:
    """Steps share the workflow's timeline; only a blocked step ends differently from the rest."""
    phase = task.phase(now)
    if phase is Phase.FAILED and not step.get("blocked"):
        return Phase.SUCCEEDED
    return phase


def render_image(view: View, task: Task, image: OutputImage, step: dict[str, Any], phase: Phase) -> dict[str, Any]:
    blob: dict[str, Any] = {
        "type": "image",
        "id": image.blob_id,
        "available": phase is Phase.SUCCEEDED,
        "jobId": step["jobId"],
        "width": image.width,
        "height": image.height,
        "blockedReason": None,
    }
    if phase is Phase.FAILED and step.get("blocked"):
        blob["blockedReason"] = step.get("blockedReason")
        return blob
    if phase in (Phase.CANCELED, Phase.EXPIRED):
        return blob
    url, expires = view.signed_url(image.blob_id)
    blob.update({"url": url, "urlExpiresAt": expires, "previewUrl": url, "previewUrlExpiresAt": expires})
    if phase is Phase.SUCCEEDED:
        blob["nsfwLevel"] = "pg"
    return blob


def render_step(view: View, task: Task, index: int) -> dict[str, Any]:
    now = view.now
    step = task.extra["steps"][index]
    phase = step_phase(task, step, now)
    status = STATUS[phase]
    started = task.started(now)
    completed = task.completed(now)
    job: dict[str, Any] = {
        "id": step["jobId"],
        "status": status,
        "startedAt": timestamp(started),
        "completedAt": timestamp(completed),
        "queuePosition": _queue_position(task, now),
        "cost": 1.0,
        "estimatedProgressRate": None if phase.terminal else round(task.progress(now), 4),
    }
    if phase is Phase.FAILED:
        job["reason"] = "blocked"
        job["blockedReason"] = step.get("blockedReason")
    rendered: dict[str, Any] = {
        "$type": "imageGen",
        "name": step["name"],
        "priority": step["priority"],
        "timeout": step["timeout"],
        "retries": step["retries"],
        "jobs": [job] if not task.extra.get("whatif") else None,
        "status": status,
        "startedAt": timestamp(started),
        "completedAt": timestamp(completed),
        "metadata": step["metadata"],
        "estimatedProgressRate": job["estimatedProgressRate"],
        "input": step["input"],
    }
    if phase not in (Phase.ACCEPTED, Phase.QUEUED) and not task.extra.get("whatif"):
        images = [task.outputs[i] for i in step["outputs"]]
        rendered["output"] = {
            "images": [render_image(view, task, image, step, phase) for image in images],
            "errors": ["blocked"] if phase is Phase.FAILED else None,
        }
    return rendered


def _queue_position(task: Task, now: float) -> dict[str, Any]:
    phase = task.phase(now)
    if phase in (Phase.ACCEPTED, Phase.QUEUED):
        return {
            "support": "available",
            "precedingJobs": 0,
            "startAt": timestamp(task.timeline.started_at),
            "completeAt": timestamp(task.timeline.finished_at),
        }
    return {"support": "unavailable"}


def render_workflow(view: View, task: Task) -> dict[str, Any]:
    now = view.now
    workflow = task.extra["workflow"]
    phase = task.phase(now)
    body: dict[str, Any] = {
        "id": task.id,
        "createdAt": timestamp(task.timeline.accepted_at),
        "startedAt": timestamp(task.started(now)),
        "completedAt": timestamp(task.completed(now)),
        "status": STATUS[phase],
        "transactions": {"list": task.extra["transactions"]},
        "cost": task.extra["cost"],
        "metadata": workflow["metadata"],
        "arguments": workflow["arguments"],
        "tags": task.tags,
        "callbacks": workflow["callbacks"],
        "tips": workflow["tips"],
        "currencies": workflow["currencies"],
        "upgradeMode": workflow["upgradeMode"],
        "allowMatureContent": workflow["allowMatureContent"],
        "experimental": workflow["experimental"],
        "nsfwLevel": workflow["nsfwLevel"],
        "forceRefunded": False,
        "ephemeral": workflow["ephemeral"],
        "externalId": workflow["externalId"],
        "steps": [render_step(view, task, i) for i in range(len(task.extra["steps"]))],
    }
    if body["nsfwLevel"] is None:
        del body["nsfwLevel"]  # NSFWLevel is a non-nullable enum: absent, never null
    if task.extra.get("whatif"):
        body["transactions"]["insufficientBuzz"] = task.extra["insufficientBuzz"]
    return body


def trace_id(seed: int, seq: int) -> str:
    digest = hashlib.sha256(f"{seed}:trace:{seq}".encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-00"

"""Engine state → Civitai's wire format (Workflow, WorkflowStep, ImageBlob), as of a clock time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from simulator.engine import Engine, OutputImage, Phase, Task
from simulator.formats import iso_utc
from simulator.pipeline.settled import Late

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
    """What a rendering needs besides the task: the clock, URL base, signing and TTL. With `late`, the links
    (signed from the moment of each read) are left for each read to fill in (simulator.pipeline.settled)."""

    engine: Engine
    base_url: str
    url_ttl: float
    late: Late | None = None

    @property
    def now(self) -> float:
        return self.engine.clock.now()

    def signed_url(self, blob_id: str) -> tuple[str, str]:
        """A blob's link and its expiry, `url_ttl` seconds from now."""
        if self.late is None:
            return self._signed_at(blob_id, self.now), self._expiry(self.now)
        # The fills are kept with the rendering, so they hold a view without `late`: one holding this view
        # would make a cycle through `late` (see simulator.heap).
        plain = replace(self, late=None)
        return self.late.slot(partial(plain._signed_at, blob_id)), self.late.slot(plain._expiry)

    def _expiry(self, now: float) -> str:
        return timestamp(now + self.url_ttl) or ""

    def _signed_at(self, blob_id: str, now: float) -> str:
        expires = self._expiry(now)
        path = BLOB_PATH.format(blob_id=blob_id)
        signature = self.engine.signer.signature(path, expires)
        return f"{self.base_url}{path}?sig={signature}&exp={expires}"


def step_phase(task: Task, step: dict[str, Any], now: float) -> Phase:
    """Steps share the workflow's timeline; when moderation fails the workflow, only its blocked steps fail
    (an upstream failure or an expiry ends every step)."""
    phase = task.phase(now)
    blocked_workflow = task.failure is not None and task.failure.kind == "blocked"
    if phase is Phase.FAILED and blocked_workflow and not step.get("blocked"):
        return Phase.SUCCEEDED
    return phase


def started(task: Task, now: float) -> float | None:
    """A task that expired in the queue reaches its end at the moment it would have started: it never ran."""
    t = task.timeline
    if t.started_at >= t.finished_at and task.outcome is Phase.EXPIRED:
        return None
    return task.started(now)


def job_reason(task: Task, step: dict[str, Any], phase: Phase) -> str | None:
    """`jobs[].reason` in the guide's words (errors-and-retries): None means a generic failure."""
    failure = task.failure
    if phase is Phase.CANCELED:
        return "canceled"
    if phase is Phase.FAILED:
        if step.get("blocked"):
            return "blocked"
        return failure.code if failure is not None else None  # e.g. `no_provider_available` from the rule
    if phase is Phase.EXPIRED:
        if failure is not None and failure.code:
            return failure.code
        # The guide's two words for one deadline: a job that never left the queue expired, a running one timed out.
        t = task.timeline
        return "expired" if t.started_at >= t.finished_at else "timeout"
    return None


def output_errors(task: Task, step: dict[str, Any], phase: Phase) -> list[str] | None:
    """`output.errors`: `blocked` for a moderated step (dossier §6.5), the failure message for the rest."""
    if phase is Phase.FAILED and step.get("blocked"):
        return ["blocked"]
    if phase in (Phase.FAILED, Phase.EXPIRED) and task.failure is not None:
        return [task.failure.message]
    return None


def is_blocked(image: OutputImage, step: dict[str, Any], phase: Phase) -> bool:
    """Moderation is known only once the step ends: a blocked step hides every image, a partial block
    (step succeeded) hides only the images it marked."""
    if phase is Phase.FAILED:
        return bool(step.get("blocked"))
    return phase is Phase.SUCCEEDED and image.blocked


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
    if is_blocked(image, step, phase):
        blob["available"] = False
        blob["blockedReason"] = image.blocked_reason or step.get("blockedReason")
        return blob
    if phase in (Phase.FAILED, Phase.CANCELED, Phase.EXPIRED):
        return blob  # nothing was produced: no URL to hand out
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
    began = started(task, now)
    completed = task.completed(now)
    job: dict[str, Any] = {
        "id": step["jobId"],
        "status": status,
        "startedAt": timestamp(began),
        "completedAt": timestamp(completed),
        "queuePosition": _queue_position(task, now),
        "cost": 1.0,
        "estimatedProgressRate": None if phase.terminal else round(task.progress(now), 4),
    }
    if phase in (Phase.FAILED, Phase.EXPIRED, Phase.CANCELED):
        job["reason"] = job_reason(task, step, phase)  # null: a generic failure (guide errors-and-retries)
        job["blockedReason"] = step.get("blockedReason") if job["reason"] == "blocked" else None
    rendered: dict[str, Any] = {
        "$type": "imageGen",
        "name": step["name"],
        "priority": step["priority"],
        "timeout": step["timeout"],
        "retries": step["retries"],
        "jobs": [job] if not task.extra.get("whatif") else None,
        "status": status,
        "startedAt": timestamp(began),
        "completedAt": timestamp(completed),
        "metadata": step["metadata"],
        "estimatedProgressRate": job["estimatedProgressRate"],
        "input": step["input"],
    }
    if phase not in (Phase.ACCEPTED, Phase.QUEUED) and not task.extra.get("whatif"):
        images = [task.outputs[i] for i in step["outputs"]]
        rendered["output"] = {
            "images": [render_image(view, task, image, step, phase) for image in images],
            "errors": output_errors(task, step, phase),
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
        "startedAt": timestamp(started(task, now)),
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

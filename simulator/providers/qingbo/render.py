"""Engine state → qingbo's wire format (task object, submit, cancel, legacy sync), as of a clock time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.engine import OutputImage, Phase, Task
from simulator.providers.signed_files import SignedFiles

STATUS = {
    Phase.ACCEPTED: "queued",
    Phase.QUEUED: "queued",
    Phase.PROCESSING: "processing",
    Phase.SUCCEEDED: "completed",
    Phase.FAILED: "failed",
    Phase.CANCELED: "cancelled",
    Phase.EXPIRED: "failed",
}
TASK_PATH = "/v1/tasks/{task_id}"
# The STATUS example message: "[upstream_bad_request] Upstream returned: invalid prompt".
ERROR_MESSAGE = "[{code}] Upstream returned: {message}"


@dataclass(frozen=True)
class View:
    """What a rendering needs besides the task: the moment, the URL base and the wire options."""

    now: float
    base_url: str
    files: SignedFiles
    options: Any

    def stamp(self, t: float) -> int:
        return round(t * 1000) if self.options["timestamp_unit"] == "ms" else int(t)

    def task_url(self, task: Task) -> str:
        return self.base_url + TASK_PATH.format(task_id=task.id)


def delivered(task: Task) -> list[OutputImage]:
    """The images a client gets: a partial block (fault `partial_block`) removes some of them."""
    return [image for image in task.outputs if not image.blocked]


def wire_phase(task: Task, now: float) -> Phase:
    """The phase as qingbo reports it. qingbo has no expired or timed-out status, so an expired task
    reads as failed; so does a task whose every image the filter removed, since a task that returns
    no usable image is refunded (NEXT) and a `completed` task with nothing in it would be a lie."""
    phase = task.phase(now)
    if phase is Phase.EXPIRED or (phase is Phase.SUCCEEDED and not delivered(task)):
        return Phase.FAILED
    return phase


def settled_cost(task: Task, phase: Phase) -> int:
    """`cost` once terminal (TS): 0 after a failure or cancel (refunded in full); per-image billing
    (seed) settles a partly blocked batch to the images actually delivered."""
    if phase is not Phase.SUCCEEDED or not task.outputs:
        return 0
    return int(task.cost) * len(delivered(task)) // len(task.outputs)


def progress_percent(task: Task, now: float) -> int:
    """0 while queued and after a failure or cancel, 100 once completed (STATUS); processing never
    shows 100 because the task is not done until the result exists."""
    phase = wire_phase(task, now)
    if phase is Phase.SUCCEEDED:
        return 100
    if phase is Phase.PROCESSING:
        return min(99, int(task.progress(now) * 100))
    return 0


def _progress(view: View, task: Task) -> int | str:
    if view.options["progress_type"] == "integer":
        return progress_percent(task, view.now)
    phase = wire_phase(task, view.now)
    if phase.terminal:
        return "100%"  # NEXT: "100%" at any terminal state, failed included
    return "" if phase is not Phase.PROCESSING else f"{progress_percent(task, view.now)}%"


def expires_at(view: View, task: Task) -> int:
    """Seconds (STATUS example), counted from completion: a link's life does not restart on each read."""
    return int(task.terminal_at() + float(view.options["url_ttl_seconds"]))


def image_urls(view: View, task: Task) -> list[str]:
    expiry = expires_at(view, task)
    return [view.files.url(view.base_url, image.blob_id, expiry) for image in delivered(task)]


def _result(view: View, task: Task) -> dict[str, Any]:
    urls = image_urls(view, task)
    expiry = expires_at(view, task)
    if view.options["result_layout"] == "one_item":
        return {"images": [{"url": urls, "expires_at": expiry}]}
    return {"images": [{"url": [url], "expires_at": expiry} for url in urls]}


def task_error(view: View, task: Task) -> dict[str, str]:
    """A failure without its own code (fault `fail` or `expire` without `code`) gets `task_failed`, the
    generic in-task code of RR's example; a batch blocked image by image reads like a blocked prompt."""
    failure = task.failure
    if failure is not None:
        code = failure.code or "task_failed"
        message = failure.message
    else:
        code = str(view.options["block_error_code"])
        message = next((i.blocked_reason for i in task.outputs if i.blocked_reason), None) or "The task failed."
    return {"message": ERROR_MESSAGE.format(code=code, message=message), "code": code}


def task_object(view: View, task: Task, *, links: bool = True, integer_progress: bool = False) -> dict[str, Any]:
    """GET /v1/tasks/{id} (STATUS field order); callbacks send exactly this."""
    phase = wire_phase(task, view.now)
    body: dict[str, Any] = {
        "task_id": task.id,
        "status": STATUS[phase],
        "action": task.extra["action"],
        "model": task.model,
        "progress": progress_percent(task, view.now) if integer_progress else _progress(view, task),
        "created_at": view.stamp(task.timeline.accepted_at),
    }
    completed = task.completed(view.now)
    if completed is not None:
        body["completed_at"] = view.stamp(completed)
        body["cost"] = settled_cost(task, phase)
    if phase is Phase.FAILED:
        body["error"] = task_error(view, task)
    if phase is Phase.SUCCEEDED:
        body["result"] = _result(view, task)
    if links:
        url = view.task_url(task)
        body["urls"] = {"get": url, "cancel": f"{url}/cancel"}
    return body


def submit_object(view: View, task: Task, *, waited: bool) -> dict[str, Any]:
    """The Gemini page's submit body (no `urls`); after `Prefer: wait` the full current state (SUBMIT:
    "the current state plus pre_consumed_cost", or the terminal result). Progress is always an
    integer here, even where GET uses NEXT's percent strings."""
    body = task_object(view, task, links=waited, integer_progress=True)
    body["pre_consumed_cost"] = int(task.cost)
    return body


def legacy_submit_object(task: Task) -> dict[str, Any]:
    return {"code": "success", "data": task.id}


def cancel_object(task: Task) -> dict[str, Any]:
    refunded = int(task.extra.get("refunded", 0))
    return {"task_id": task.id, "status": "cancelled", "refunded": refunded > 0, "refunded_quota": refunded}


def sync_object(view: View, task: Task, prefix: str) -> dict[str, Any]:
    """Legacy POST /v1/tasks/sync (SYNC page): a finished task without action, urls or cost and with
    each url a plain string; otherwise the state and a relative poll_url (mount prefix included, so
    that joining it to the client's base reaches this simulator)."""
    phase = task.phase(view.now)
    if not phase.terminal:
        return {
            "task_id": task.id,
            "status": STATUS[phase],
            "progress": progress_percent(task, view.now),
            "poll_url": prefix + TASK_PATH.format(task_id=task.id),
        }
    full = task_object(view, task, links=False, integer_progress=True)
    body = {key: full[key] for key in ("task_id", "model", "status", "created_at", "completed_at", "progress")}
    if "result" in full:
        expiry = expires_at(view, task)
        body["result"] = {"images": [{"url": url, "expires_at": expiry} for url in image_urls(view, task)]}
    if "error" in full:
        body["error"] = full["error"]
    return body

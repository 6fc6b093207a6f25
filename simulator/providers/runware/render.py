"""Engine state → Runware's wire items: image results, pending items, the error of a failed job."""

from __future__ import annotations

import base64
from typing import Any

from simulator.engine import Engine, Phase, Task
from simulator.images import content_type
from simulator.options import ProviderOptions
from simulator.providers.runware.errors import ErrorCatalog, TaskError
from simulator.providers.runware.jobs import Job
from simulator.providers.signed_files import SignedFiles

TASK_TYPE = "imageInference"


class Renderer:
    def __init__(self, engine: Engine, files: SignedFiles, options: ProviderOptions, errors: ErrorCatalog) -> None:
        self.engine = engine
        self.files = files
        self.options = options
        self.errors = errors

    def image_bytes(self, task: Task) -> bytes:
        blob = self.engine.blobs.get(task.outputs[0].blob_id)
        assert blob is not None, "every image task registers its blob"
        return self.engine.blobs.content(blob)

    def url_expiry(self, job: Job, task: Task) -> float:
        """The URL lives `ttl` seconds (or the default) from the moment the image was ready."""
        ttl = job.request.get("ttl") or self.options["default_url_ttl_seconds"]
        return task.timeline.finished_at + float(ttl)

    def result(self, job: Job, task: Task, *, polled: bool) -> dict[str, Any]:
        """A finished image, keys in the order of seed 002's examples; `status` only on getResponse."""
        image = task.outputs[0]
        item: dict[str, Any] = {"taskType": TASK_TYPE, "taskUUID": job.task_uuid, "imageUUID": task.id}
        for kind in job.output_types:
            if kind == "URL":
                item["imageURL"] = self.files.url(job.base_url, image.blob_id, self.url_expiry(job, task))
            else:
                encoded = base64.b64encode(self.image_bytes(task)).decode()
                if kind == "base64Data":
                    item["imageBase64Data"] = encoded
                else:
                    item["imageDataURI"] = f"data:{content_type(image.format)};base64,{encoded}"
        item["seed"] = image.seed
        if job.flags_content():
            # Only a partial_block fault (style nsfw_flag) flags an image; a prompt block fails the task.
            item["NSFWContent"] = bool(task.extra.get("nsfw"))
        if job.request.get("includeCost"):
            item["cost"] = job.unit_cost
        if polled:
            item["status"] = "success"
        return item

    def pending(self, job: Job, *, polled: bool) -> dict[str, Any]:
        """The async acknowledgement, or a generation still running (getResponse, without outputs)."""
        item: dict[str, Any] = {"taskType": TASK_TYPE, "taskUUID": job.task_uuid}
        if polled:
            item["status"] = self.options["processing_status_word"]
        return item

    @staticmethod
    def withheld(task: Task) -> bool:
        """A generation that finished but whose image the safety filter blocked (a partial block)."""
        return task.outcome is Phase.SUCCEEDED and task.canceled_at is None and task.outputs[0].blocked

    def _with_status(self, error: TaskError, *, polled: bool) -> TaskError:
        if polled:
            error.item["status"] = "error"
        return error

    def blocked_image(self, job: Job, task: Task, *, polled: bool) -> TaskError:
        """One image of several blocked: that generation failed, named by its imageUUID."""
        image = task.outputs[0]
        error = self.errors.named(self.options["block_error_code"], "blocked", job.request, template="blocked",
                                  reason=image.blocked_reason or "blocked")
        error.item["imageUUID"] = task.id
        return self._with_status(error, polled=polled)

    def failure(self, job: Job, task: Task, *, polled: bool) -> TaskError:
        """The one error of a job whose generations failed: blocked, failed upstream, or timed out."""
        failure = task.failure
        codes = self.errors.data["taskFailureCodes"]
        if task.canceled_at is not None or task.outcome is Phase.EXPIRED:
            # Canceled only by the sync timeout: Runware has no cancel task.
            code = (failure.code if failure and task.canceled_at is None else None) or codes["timeout"]
            error = self.errors.named(code, "timeout", job.request, template="timeoutProvider")
        elif failure is not None and failure.kind == "blocked":
            error = self.errors.named(self.options["block_error_code"], "blocked", job.request, template="blocked",
                                      parameter="positivePrompt", reason=failure.message)
        else:
            error = self.errors.named(failure.code if failure and failure.code else codes["error"], "failed",
                                      job.request, template="taskFailed",
                                      reason=failure.message if failure else "The generation failed.")
        return self._with_status(error, polled=polled)

    def image(self, job: Job, task: Task, now: float, *, polled: bool) -> dict[str, Any] | TaskError | None:
        """One generation as it stands: its result or pending item, a blocked image's own error, or None once it
        failed (the job then reports one error for all its failed generations)."""
        phase = task.phase(now)
        if phase is Phase.SUCCEEDED:
            return self.blocked_image(job, task, polled=polled) if self.withheld(task) else \
                self.result(job, task, polled=polled)
        return None if phase.terminal else self.pending(job, polled=polled)

    def state(self, job: Job, now: float, *, polled: bool) -> tuple[list[dict[str, Any]], list[TaskError]]:
        """Every generation as it stands: results and pending items in data[], a blocked image as its own
        error, and one error for the job once a generation failed."""
        data: list[dict[str, Any]] = []
        errors: list[TaskError] = []
        failed: Task | None = None
        for task in job.images:
            found = self.image(job, task, now, polled=polled)
            if isinstance(found, TaskError):
                errors.append(found)
            elif found is not None:
                data.append(found)
            elif failed is None:
                failed = task
        if failed is not None:
            errors.insert(0, self.failure(job, failed, polled=polled))
        return data, errors

"""Civitai Orchestration v2, engine `google` (Nano Banana 2 / Pro, Imagen 4): a careful client from Civitai's docs.

What the docs say, and what this client does with it (developer.civitai.com, "Google image generation"
recipe, the orchestration guide, the v2-consumers OpenAPI):

- `POST /v2/consumer/workflows?wait=N` waits on the server up to N s (capped at 100): 200 when terminal,
  202 while running. The recipe recommends `wait=60` for 1K nano-banana-2 / imagen4, and `wait=0` plus
  polling for Pro, 2K/4K or more than two images; polling goes 2, 5, 10, 15, then every 30 s.
- `externalId` is the idempotency key: a resubmit after a dropped connection returns the same workflow.
- Terminal statuses: succeeded, failed, expired, canceled. A step failed with job `reason: "blocked"` is
  Google's content filter ("don't retry the same input"); a blocked image of a batch is `available: false`
  with a `blockedReason` while the others succeed.
- Blob URLs are signed and expire ("403 after a few minutes"): `POST /v2/consumer/blobs/{id}/refresh`
  returns a fresh one.
- Errors are RFC 7807 ProblemDetails; 400 carries an `errors` map; insufficient Buzz is a 403 whose body
  is a bare JSON string (Civitai's own web app reads orchestrator 403s as insufficient funds).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any

from simulator.example_clients.common import (
    AuthError,
    BaseClient,
    BlockedImage,
    CallbackHandler,
    ContentBlockedError,
    GenerationFailedError,
    Image,
    InsufficientCreditsError,
    NanoBananaError,
    Result,
    intervals,
)

TERMINAL = frozenset({"succeeded", "failed", "expired", "canceled"})
POLL_PACE = (2.0, 5.0, 10.0, 15.0, 30.0)
MAX_WAIT = 100  # the orchestrator's request timeout caps `wait`


class CivitaiClient(BaseClient):
    provider = "civitai"
    default_base_url = "https://orchestration.civitai.com"

    def generate(
        self,
        prompt: str,
        *,
        model: str = "nano-banana-2",
        num_images: int = 1,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        images: list[str] | None = None,
        wait: int | None = None,
        external_id: str | None = None,
        callbacks: list[dict[str, Any]] | None = None,
        **input_options: Any,
    ) -> Result:
        """Submit one `imageGen` step, wait until the workflow is terminal, download its images.

        `input_options` go into the step input as written (`seed`, `negativePrompt`, `enableWebSearch`, …).
        """
        step_input = {"engine": "google", "model": model, "prompt": prompt, "numImages": num_images, **input_options}
        for name, value in (("aspectRatio", aspect_ratio), ("resolution", resolution), ("images", images)):
            if value is not None:
                step_input[name] = value
        if wait is None:
            quick = model in ("nano-banana-2", "imagen4") and resolution in (None, "1K") and num_images <= 2
            wait = 60 if quick else 0
        wait = max(0, min(wait, MAX_WAIT))
        body: dict[str, Any] = {
            "steps": [{"$type": "imageGen", "input": step_input}],
            "externalId": external_id or uuid.uuid4().hex,  # same key on every resend of this submit
        }
        if callbacks:
            body["callbacks"] = callbacks
        started = self.clock()
        workflow = self.request("POST", "/v2/consumer/workflows", json_body=body, params={"wait": wait},
                                timeout=wait + 30)
        workflow_id = workflow["id"]
        workflow = self.wait_for(
            workflow,
            lambda: self.request("GET", f"/v2/consumer/workflows/{workflow_id}"),
            lambda w: w.get("status") in TERMINAL,
            intervals(*POLL_PACE),
            f"workflow {workflow_id}",
            started=started,
        )
        return self._result(workflow, model)

    def refresh_blob(self, blob_id: str) -> str | None:
        url = self.request("POST", f"/v2/consumer/blobs/{blob_id}/refresh").get("url")
        return url if isinstance(url, str) else None

    def _result(self, workflow: dict[str, Any], model: str) -> Result:
        if workflow["status"] != "succeeded":
            raise self._failure(workflow)
        images: list[Image] = []
        blocked: list[BlockedImage] = []
        blobs = [blob for step in workflow.get("steps", []) for blob in (step.get("output") or {}).get("images", [])]
        for index, blob in enumerate(blobs):
            if not (blob.get("available") and blob.get("url")):
                blocked.append(BlockedImage(reason=blob.get("blockedReason"), id=blob.get("id"), index=index))
                continue
            data, content_type = self.download(blob["url"], refresh=functools.partial(self.refresh_blob, blob["id"]))
            images.append(Image(data, blob["url"], content_type, id=blob["id"]))
        if not images:
            reasons = "; ".join(b.reason or "withheld" for b in blocked) or "no images"
            text = f"civitai: workflow {workflow['id']} delivered no image ({reasons})"
            raise ContentBlockedError(text, body=workflow)
        cost = (workflow.get("cost") or {}).get("total")
        return Result(self.provider, workflow["id"], model, images, blocked, cost, workflow)

    def _failure(self, workflow: dict[str, Any]) -> NanoBananaError:
        steps = workflow.get("steps", [])
        jobs = [job for step in steps for job in step.get("jobs") or []]
        errors = [e for step in steps for e in (step.get("output") or {}).get("errors") or []]
        reasons = [job.get("reason") for job in jobs if job.get("reason")] + errors
        detail = "; ".join([str(r) for r in reasons] + [j["blockedReason"] for j in jobs if j.get("blockedReason")])
        text = f"civitai: workflow {workflow['id']} {workflow['status']}" + (f" ({detail})" if detail else "")
        cls = ContentBlockedError if "blocked" in reasons else GenerationFailedError
        return cls(text, code=next((str(r) for r in reasons), None), body=workflow)

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        if isinstance(body, str):
            return None, body  # SubmitWorkflow's 403 is a bare JSON string
        if not isinstance(body, dict):
            return None, None
        messages = [f"{path}: {m}" for path, ms in (body.get("errors") or {}).items() for m in ms]
        return body.get("title"), "; ".join(messages) or body.get("detail") or body.get("title")

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if status == 400 and isinstance(body, dict) and "messages" in (body.get("errors") or {}):
            return ContentBlockedError  # a submit-time refusal of the prompt ("requires mature content …")
        if status == 403:
            text = (message or "").lower()
            return InsufficientCreditsError if "buzz" in text or "insufficient" in text else AuthError
        return super().error_class(status, code, message, body)


class CivitaiCallbackHandler(CallbackHandler):
    """Workflow, step and job callbacks; the docs' dedupe key is (workflowId, status, timestamp)."""

    terminal = TERMINAL

    def subject(self, event: Mapping[str, Any]) -> tuple[tuple[Any, ...], str | None]:
        about = (event.get("workflowId"), event.get("$type"), event.get("name") or event.get("stepName"),
                 event.get("jobId"))
        return about, event.get("status")

    def key(self, event: Mapping[str, Any]) -> tuple[Any, ...]:
        about, status = self.subject(event)
        return (*about, status, event.get("timestamp"))

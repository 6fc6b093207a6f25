"""Runware REST (`imageInference`, Nano Banana 2 / Pro / Nano Banana): a careful client from Runware's docs.

What the docs say, and what this client does with it (runware.ai/docs: the Nano Banana 2 model page,
Task Polling, Webhooks, Errors, Authentication):

- `POST https://api.runware.ai/v1` takes a JSON array of tasks; answers are `{"data": [...]}` and/or
  `{"errors": [...]}`, matched to the request by `taskUUID`. Auth: `Authorization: Bearer <key>`.
- `taskUUID` (UUID v4, chosen by the client) names the task: resending the same task after a dropped
  connection cannot make a second one; the server answers `conflictTaskUUID`, and the results are
  collected with `getResponse` instead.
- `deliveryMethod: "sync"` (default) returns the results in the answer; `"async"` acknowledges at once and
  the client polls `{"taskType": "getResponse", "taskUUID": …}` with exponential backoff from 1-2 s. Each
  generation reports `processing` until `success`; failed generations come back in `errors[]`.
- One item per image (`imageUUID`, `imageURL`, `seed`, `cost` with `includeCost`); errors are scoped per
  generation, so a batch can be partial. Image URLs live `ttl` seconds.
- Webhooks: one POST per image, the flat item; retried, so deduplicate.
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
    NotFoundError,
    RateLimitedError,
    Result,
    ValidationError,
    intervals,
)

SYNC_SECONDS = 300  # how long a sync request may be held (the official SDK's own sync timeout)
SAFETY_CODES = frozenset({
    "contentPolicyViolation", "providerContentPolicyViolation", "sensitiveContentDetected", "unsafeContentDetected",
    "nsfwContentDetected", "promptBlocked", "imageBlocked", "moderationFailed", "invalidProviderContent",
})
AUTH_CODES = frozenset({"invalidApiKey", "missingApiKey", "forbidden"})


class RunwareClient(BaseClient):
    provider = "runware"
    default_base_url = "https://api.runware.ai"

    def generate(
        self,
        prompt: str,
        *,
        model: str = "google:4@3",
        number_results: int = 1,
        width: int | None = None,
        height: int | None = None,
        resolution: str | None = None,
        reference_images: list[str] | None = None,
        delivery: str = "sync",
        task_uuid: str | None = None,
        webhook_url: str | None = None,
        **options: Any,
    ) -> Result:
        """Run one `imageInference` task (sync, or async + getResponse), download its images.

        `options` go into the task as written (`seed`, `outputFormat`, `settings`, `providerSettings`, `ttl`, …).
        """
        task_uuid = task_uuid or str(uuid.uuid4())
        task: dict[str, Any] = {
            "taskType": "imageInference", "taskUUID": task_uuid, "model": model, "positivePrompt": prompt,
            "numberResults": number_results, "deliveryMethod": delivery, "includeCost": True, **options,
        }
        if width is None and height is None and resolution is None and not reference_images:
            width = height = 1024
        for name, value in (("width", width), ("height", height), ("resolution", resolution),
                            ("webhookURL", webhook_url)):
            if value is not None:
                task[name] = value
        if reference_images:
            task["inputs"] = {"referenceImages": reference_images}
        started = self.clock()
        try:
            answer = self.request("POST", "/v1", json_body=[task],
                                  timeout=SYNC_SECONDS + 30 if delivery == "sync" else None)
        except NanoBananaError as exc:
            if exc.code != "conflictTaskUUID":
                raise
            answer = {}  # an earlier send of this very task got through: collect it with getResponse
        if not self._finished(answer, task_uuid, number_results):
            answer = self.wait_for(
                answer,
                lambda: self.get_response(task_uuid),
                lambda a: self._finished(a, task_uuid, number_results),
                intervals(2.0, growth=1.5, cap=10.0),
                f"task {task_uuid}",
                started=started,
            )
        return self._result(answer, task_uuid, model)

    def get_response(self, task_uuid: str) -> dict[str, Any]:
        return self.request("POST", "/v1", json_body=[{"taskType": "getResponse", "taskUUID": task_uuid}])

    @staticmethod
    def _mine(answer: dict[str, Any], key: str, task_uuid: str) -> list[dict[str, Any]]:
        return [item for item in answer.get(key) or [] if item.get("taskUUID") == task_uuid]

    def _finished(self, answer: dict[str, Any], task_uuid: str, number_results: int) -> bool:
        data, errors = self._mine(answer, "data", task_uuid), self._mine(answer, "errors", task_uuid)
        if any(item.get("status") in ("processing", "pending") for item in data):
            return False
        if any(not error.get("imageUUID") for error in errors):
            return True  # the task as a whole failed
        return sum(1 for item in data if item.get("imageUUID")) + len(errors) >= number_results

    def _result(self, answer: dict[str, Any], task_uuid: str, model: str) -> Result:
        data, errors = self._mine(answer, "data", task_uuid), self._mine(answer, "errors", task_uuid)
        images: list[Image] = []
        for item in data:
            if item.get("imageURL"):
                refresh = functools.partial(self._url_again, task_uuid, item["imageUUID"])
                content, content_type = self.download(item["imageURL"], refresh=refresh)
                images.append(Image(content, item["imageURL"], content_type, item["imageUUID"], item.get("seed")))
        blocked = [BlockedImage(reason=f"{e.get('code')}: {e.get('message')}", id=e.get("imageUUID")) for e in errors]
        if not images:
            first = errors[0] if errors else {}
            cls = ContentBlockedError if first.get("code") in SAFETY_CODES else GenerationFailedError
            raise cls(f"runware: task {task_uuid} delivered no image ({first.get('message', 'no result')})",
                      code=first.get("code"), body=answer)
        cost = sum(item.get("cost") or 0.0 for item in data) if any("cost" in item for item in data) else None
        return Result(self.provider, task_uuid, model, images, blocked, cost, answer)

    def _url_again(self, task_uuid: str, image_uuid: str) -> str | None:
        items = self._mine(self.get_response(task_uuid), "data", task_uuid)
        return next((item.get("imageURL") for item in items if item.get("imageUUID") == image_uuid), None)

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors:
            return None, body if isinstance(body, str) else None
        return errors[0].get("code"), errors[0].get("message")

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        code = code or ""
        lowered = code.lower()
        if code in AUTH_CODES:
            return AuthError
        if any(word in lowered for word in ("credit", "balance", "quota")) or code == "paymentRequired":
            return InsufficientCreditsError
        if "ratelimit" in lowered:
            return RateLimitedError
        if code in SAFETY_CODES:
            return ContentBlockedError
        if code == "taskFailedOrNotFound":
            return NotFoundError
        if code == "conflictTaskUUID" or lowered.startswith(("invalid", "missing", "unsupported")):
            return ValidationError
        first = (body.get("errors") or [{}])[0] if isinstance(body, dict) else {}
        if code == "inferenceError" or first.get("status") == "error":
            return GenerationFailedError  # the task ran and failed (getResponse marks it `status: error`)
        return super().error_class(status, code, message, body)


class RunwareWebhookHandler(CallbackHandler):
    """One POST per image (the flat result item, or an error item); retried by Runware, so deduplicated."""

    def subject(self, event: Mapping[str, Any]) -> tuple[Any, str | None]:
        return (event.get("taskUUID"), event.get("imageUUID") or event.get("code")), event.get("status")

    def key(self, event: Mapping[str, Any]) -> Any:
        return self.subject(event)[0]

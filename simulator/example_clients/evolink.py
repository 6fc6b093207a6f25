"""Evolink Nano Banana 2 / Pro image generation: a careful client from Evolink's docs.

What the docs say, and what this client does with it (docs.evolink.ai: Nanobanana 2 / Pro Image
Generation, Query Task Status, Error Codes Reference):

- `POST /v1/images/generations` (Bearer auth) `{model, prompt, size, quality, image_urls, model_params,
  callback_url}` answers the task `pending`; `GET /v1/tasks/{task_id}` reports `pending` → `processing` →
  `completed` | `failed`. `results` is a list of URLs, "valid for 24 hours".
- A failed task carries `error{code, message, type: "task_error"}`. Codes: `content_policy_violation`
  (fix the content), `invalid_parameters` / `image_processing_error` (fix the request), `service_error`,
  `generation_timeout`, `resource_exhausted`, … (server side, retry later).
- Errors: `{"error": {"code", "message", "type", "param"}}`: 400 `invalid_request`, 401 `unauthorized`,
  402 `insufficient_quota`, 403 `model_access_denied`, 429 `rate_limit_exceeded`, 500 `internal_error`.
- The Error Codes page polls every 3 s and advises 1-2 s between requests; one image per task.
- `callback_url` (HTTPS) gets the task-detail body on completed / failed, retried 3 times (1/2/4 s).
- No idempotency key: a create is never resent once it may have reached Evolink.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from simulator.example_clients.common import (
    BaseClient,
    CallbackHandler,
    ContentBlockedError,
    GenerationFailedError,
    Image,
    NanoBananaError,
    Result,
    ValidationError,
    intervals,
)

TERMINAL = frozenset({"completed", "failed"})
POLL_SECONDS = 3.0
CLIENT_TASK_CODES: dict[str, type[NanoBananaError]] = {
    "content_policy_violation": ContentBlockedError,
    "invalid_parameters": ValidationError,
    "image_processing_error": ValidationError,
    "image_dimension_mismatch": ValidationError,
}


class EvolinkClient(BaseClient):
    provider = "evolink"
    default_base_url = "https://api.evolink.ai"
    generation_timeout = 300.0

    def generate(
        self,
        prompt: str,
        *,
        model: str = "gemini-3.1-flash-image-preview",
        size: str | None = None,
        quality: str | None = None,
        image_urls: list[str] | None = None,
        model_params: dict[str, Any] | None = None,
        callback_url: str | None = None,
    ) -> Result:
        """Create one task, poll it until terminal, download its image(s)."""
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        for name, value in (("size", size), ("quality", quality), ("image_urls", image_urls),
                            ("model_params", model_params), ("callback_url", callback_url)):
            if value is not None:
                body[name] = value
        started = self.clock()
        task = self.request("POST", "/v1/images/generations", json_body=body, idempotent=False)
        reserved = (task.get("usage") or {}).get("credits_reserved")  # only the create answer carries usage
        task = self.wait_for(
            task,
            lambda: self.get_task(task["id"]),
            lambda t: t.get("status") == "failed" or (t.get("status") == "completed" and bool(t.get("results"))),
            intervals(POLL_SECONDS),
            f"task {task['id']}",
            started=started,
        )
        return self._result(task, model, reserved)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/tasks/{task_id}")

    def _result(self, task: dict[str, Any], model: str, reserved: float | None) -> Result:
        if task["status"] != "completed":
            error = task.get("error") or {}
            code = error.get("code")
            cls = CLIENT_TASK_CODES.get(code or "", GenerationFailedError)
            raise cls(f"evolink: task {task['id']} failed: {error.get('message', '')}", code=code, body=task)
        images = []
        for index, item in enumerate(task["results"]):
            url = item["url"] if isinstance(item, dict) else item  # a reseller of the gateway shows {url}
            data, content_type = self.download(url, refresh=functools.partial(self._url_again, task["id"], index))
            images.append(Image(data, url, content_type))
        return Result(self.provider, task["id"], task.get("model", model), images, [], reserved, task)

    def _url_again(self, task_id: str, index: int) -> str | None:
        results = self.get_task(task_id).get("results") or []
        item = results[index] if index < len(results) else None
        return item.get("url") if isinstance(item, dict) else item

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if code == "content_policy_violation":
            return ContentBlockedError
        return super().error_class(status, code, message, body)


class EvolinkCallbackHandler(CallbackHandler):
    """The callback body is the task-detail object; one per terminal state, so (id, status) identifies it."""

    terminal = TERMINAL

    def subject(self, event: Mapping[str, Any]) -> tuple[Any, str | None]:
        return event.get("id"), event.get("status")

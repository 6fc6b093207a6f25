"""FoxAPI / AIHubMax "Nanobanana Image Generation" (Nano Banana 2 / Pro): a careful client from FoxAPI's docs.

What the docs say, and what this client does with it (the FoxAPI / AIHubMax API manual: the
gemini-3.1-flash-image-preview and gemini-3-pro-image-preview pages, Query Task Status, Error Codes):

- `POST /v1/images/generations` (Bearer auth) creates an async task and answers it `pending`, with
  `task_info.estimated_time`; `GET /v1/tasks/{id}` reports `pending` → `processing` → `completed` |
  `failed`. Image results are `results: [{"url"}]`, valid for 24 hours ("please save them promptly").
- Seen in practice and documented by the gateway's guides: `completed` can briefly show `results: null`
  (progress < 100); the client reads the task again a little later instead of failing.
- Optional fields (`output_format`, `google_search`, `image_search`): "Do not pass this parameter unless
  necessary", so they are sent only when the caller sets them. One image per task. No callbacks.
- Errors: `{"error": {"message", "type"[, "code"]}}`; 400 bad JSON, 401, 402 `insufficient_quota`, 404,
  422 validation (`model_not_found`, `unsupported_advanced_options`, …), 429, 500/503. A failed task carries
  `error{code, message, type: "task_error"}`, e.g. `content_policy_violation`.
- No idempotency key: a create is never resent once it may have reached the gateway.
- The gateway's guides poll every 5-10 s.
"""

from __future__ import annotations

import functools
from typing import Any

from simulator.example_clients.common import (
    BaseClient,
    ContentBlockedError,
    GenerationFailedError,
    Image,
    NanoBananaError,
    Result,
    intervals,
)

TERMINAL = frozenset({"completed", "failed"})
POLL_SECONDS = 5.0
CONTENT_CODES = frozenset({"content_policy_violation"})


class FoxapiClient(BaseClient):
    provider = "foxapi"
    default_base_url = "https://api.foxapi.cc"  # or https://api.aihubmax.com (same gateway)

    def generate(
        self,
        prompt: str,
        *,
        model: str = "gemini-3.1-flash-image-preview",
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        image_urls: list[str] | None = None,
        **options: Any,
    ) -> Result:
        """Create one task, poll it until terminal, download its image.

        `options` (`output_format`, `google_search`, `image_search`) are sent only when given.
        """
        body: dict[str, Any] = {"model": model, "prompt": prompt, **options}
        for name, value in (("aspect_ratio", aspect_ratio), ("resolution", resolution), ("image_urls", image_urls)):
            if value is not None:
                body[name] = value
        started = self.clock()
        task = self.request("POST", "/v1/images/generations", json_body=body, idempotent=False)
        task = self.wait_for(
            task,
            lambda: self.get_task(task["id"]),
            self._done,
            intervals(POLL_SECONDS),
            f"task {task['id']}",
            started=started,
        )
        return self._result(task, model)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/tasks/{task_id}")

    @staticmethod
    def _done(task: dict[str, Any]) -> bool:
        # "completed" with no results yet is the documented race: keep polling until they are there.
        return task.get("status") == "failed" or (task.get("status") == "completed" and bool(task.get("results")))

    def _result(self, task: dict[str, Any], model: str) -> Result:
        if task["status"] != "completed":
            error = task.get("error") or {}
            code = error.get("code")
            cls = ContentBlockedError if code in CONTENT_CODES else GenerationFailedError
            raise cls(f"foxapi: task {task['id']} failed: {error.get('message', '')}", code=code, body=task)
        images = []
        for index, item in enumerate(task["results"]):
            url = item["url"] if isinstance(item, dict) else item
            data, content_type = self.download(url, refresh=functools.partial(self._url_again, task["id"], index))
            images.append(Image(data, url, content_type))
        credits = (task.get("usage") or {}).get("credits_reserved")
        return Result(self.provider, task["id"], task.get("model", model), images, [], credits, task)

    def _url_again(self, task_id: str, index: int) -> str | None:
        results = self.get_task(task_id).get("results") or []
        item = results[index] if index < len(results) else None
        return item.get("url") if isinstance(item, dict) else item

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if code in CONTENT_CODES:
            return ContentBlockedError
        return super().error_class(status, code, message, body)

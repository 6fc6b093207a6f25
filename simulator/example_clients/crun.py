"""CRun unified task API (Google Nano Banana): a careful client from CRun's docs.

What the docs say, and what this client does with it (docs.crun.ai: "Generate images using google nano
banana", Get Task Info, Common API; CRun's own CLI for pacing):

- `POST /api/v1/client/job/CreateTask` `{model, input, callback_url?}` with header `x-api-key` answers
  `{"code": 200, "message": "success", "data": {"task_id"}}`; `GET /api/v1/client/job/TaskInfo?task_id=`
  reports `pending` → `running` → `success` | `failed`, with `result.media_urls` on success and
  `result.code` / `result.message` on failure (501 "Generation Failed", e.g. content moderation).
- Every answer is `{code, message, data}`; the body `code` is what counts (401, 402, 404, 422, 429,
  455 maintenance, 500, 501, 505), whatever the HTTP status says.
- There is no idempotency key: CreateTask is never resent once it may have reached CRun (CRun's CLI never
  retries it at all). A lost answer raises `SubmitUncertainError`.
- CRun's CLI polls every 5 s. Media URLs are temporary; one image per task.
- `callback_url` receives the TaskInfo `data` object when the task ends.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import httpx

from simulator.example_clients.common import (
    BaseClient,
    CallbackHandler,
    ContentBlockedError,
    GenerationFailedError,
    Image,
    NanoBananaError,
    Result,
    UpstreamError,
    intervals,
)

TERMINAL = frozenset({"success", "failed"})
POLL_SECONDS = 5.0


def _is_moderation(message: str | None) -> bool:
    text = (message or "").lower()
    return "moderation" in text or "content" in text or "policy" in text


class CrunClient(BaseClient):
    provider = "crun"
    default_base_url = "https://api.crun.ai"
    generation_timeout = 300.0

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def generate(
        self,
        prompt: str,
        *,
        model: str = "google/nano-banana",
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        output_format: str | None = None,
        img_urls: list[str] | None = None,
        callback_url: str | None = None,
        **input_options: Any,
    ) -> Result:
        """Create one task, poll TaskInfo until `success`/`failed`, download its image."""
        task_input: dict[str, Any] = {"prompt": prompt, **input_options}
        for name, value in (("aspect_ratio", aspect_ratio), ("resolution", resolution),
                            ("output_format", output_format), ("img_urls", img_urls)):
            if value is not None:
                task_input[name] = value
        body: dict[str, Any] = {"model": model, "input": task_input}
        if callback_url:
            body["callback_url"] = callback_url
        started = self.clock()
        created = self.request("POST", "/api/v1/client/job/CreateTask", json_body=body, idempotent=False)
        task_id = created["data"]["task_id"]
        info = self.wait_for(
            {"status": "pending"},
            lambda: self.task_info(task_id),
            lambda t: t.get("status") in TERMINAL,
            intervals(POLL_SECONDS),
            f"task {task_id}",
            started=started,
        )
        return self._result(info, model)

    def task_info(self, task_id: str) -> dict[str, Any]:
        info: dict[str, Any] = self.request("GET", "/api/v1/client/job/TaskInfo", params={"task_id": task_id})["data"]
        return info

    def _result(self, info: dict[str, Any], model: str) -> Result:
        result = info.get("result") or {}
        if info["status"] != "success":
            message = result.get("message") or "generation failed"
            cls = ContentBlockedError if _is_moderation(message) else GenerationFailedError
            raise cls(f"crun: task {info['task_id']} failed: {message}", code=str(result.get("code")), body=info)
        images = []
        for index, url in enumerate(result.get("media_urls") or []):
            data, content_type = self.download(url, refresh=functools.partial(self._url_again, info["task_id"], index))
            images.append(Image(data, url, content_type))
        if not images:
            raise GenerationFailedError(f"crun: task {info['task_id']} succeeded without media", body=info)
        return Result(self.provider, info["task_id"], model, images, [], info.get("credits"), info)

    def _url_again(self, task_id: str, index: int) -> str | None:
        urls = (self.task_info(task_id).get("result") or {}).get("media_urls") or []
        return urls[index] if index < len(urls) else None

    def status_of(self, response: httpx.Response, body: Any) -> int:
        if response.is_success and isinstance(body, dict) and isinstance(body.get("code"), int):
            return int(body["code"])  # errors may come as HTTP 200 with the code in the body
        return response.status_code

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        if not isinstance(body, dict):
            return None, "non-JSON error page" if body else None
        message = "; ".join([body.get("message") or "", *(body.get("errors") or [])]).strip("; ")
        return str(body.get("code")), message

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if status == 455:
            return UpstreamError  # maintenance: retried with backoff
        if status == 501:
            return ContentBlockedError if _is_moderation(message) else GenerationFailedError
        if status == 505:
            return NanoBananaError  # feature disabled: not transient
        return super().error_class(status, code, message, body)


class CrunCallbackHandler(CallbackHandler):
    """The callback body is the TaskInfo `data` object, sent when the task ends."""

    terminal = TERMINAL

    def subject(self, event: Mapping[str, Any]) -> tuple[Any, str | None]:
        data = event.get("data")
        if not isinstance(data, Mapping):  # the documented body is the bare `data` object; tolerate an envelope
            data = event
        return data.get("task_id"), data.get("status")

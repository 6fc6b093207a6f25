"""qingbo.dev ("QWave API") Gemini Image Series: a careful client from qingbo's docs.

What the docs say, and what this client does with it (docs.qingbo.dev: Gemini Image Series, Submit Task,
Query Task Status, Task System, Request & Response):

- `POST /v1/tasks` with `Prefer: wait=N` (N ≤ 60) answers the finished task when it ends inside the
  window, else its current state; then `GET /v1/tasks/{task_id}` every 2-5 s, giving up after ~5 min.
- `Idempotency-Key`: a repeat with the same key within 24 h returns the same task with no second charge,
  so a submit whose answer was lost is resent with the same key.
- Statuses: queued → processing → completed | failed (| cancelled). `result.images[].url` is always an
  array; links expire (`expires_at`, 24 h on the Gemini page). Failed tasks carry `error.code`:
  `upstream_bad_request` (the upstream refused the input, e.g. its content filter), `upstream_unavailable`,
  `upstream_rate_limited`, `task_failed`; failed and cancelled tasks are refunded.
- Per-image billing: a batch may come back with fewer images than `n` (the missing ones are not charged).
- Errors: `{"error": {"message", "code"}}`; 400 invalid, 401 auth, 402 balance (403 `quota_not_enough` in
  older docs), 404 `task_not_found`, 429 (incl. `quota_window_exceeded`), 500.
- Callbacks: `callback_url` is called at a terminal state, filtered by `callback_events`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any

from simulator.example_clients.common import (
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

TERMINAL = frozenset({"completed", "failed", "cancelled"})
MAX_PREFER_WAIT = 60
POLL_SECONDS = 3.0  # "every 2-5 s"


class QingboClient(BaseClient):
    provider = "qingbo"
    default_base_url = "https://www.qingbo.dev"
    generation_timeout = 300.0  # "give up after about 5 min"

    def generate(
        self,
        prompt: str,
        *,
        model: str = "gemini-3.1-flash-image-preview",
        n: int = 1,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        image_urls: list[str] | None = None,
        action: str | None = None,
        wait: int = MAX_PREFER_WAIT,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        callback_events: list[str] | None = None,
        **options: Any,
    ) -> Result:
        """Submit one task, wait (server side, then polling) until terminal, download its images.

        `options` go into the body as written (`seed`, `google_search`, `official_fallback`, …).
        """
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, **options}
        if image_urls and action is None:
            action = "edit"  # the one image action both the EN and CN pages document
        for name, value in (("aspect_ratio", aspect_ratio), ("resolution", resolution), ("image_urls", image_urls),
                            ("action", action), ("callback_url", callback_url), ("callback_events", callback_events)):
            if value is not None:
                body[name] = value
        wait = max(0, min(wait, MAX_PREFER_WAIT))
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        if wait:
            headers["Prefer"] = f"wait={wait}"
        started = self.clock()
        task = self.request("POST", "/v1/tasks", json_body=body, headers=headers, timeout=wait + 30)
        task_id = task["task_id"]
        task = self.wait_for(
            task,
            lambda: self.get_task(task_id),
            lambda t: t.get("status") in TERMINAL,
            intervals(POLL_SECONDS),
            f"task {task_id}",
            started=started,
        )
        return self._result(task, n)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/tasks/{task_id}")

    def _result(self, task: dict[str, Any], requested: int) -> Result:
        status = task["status"]
        if status != "completed":
            error = task.get("error") or {}
            code = error.get("code")
            cls = ContentBlockedError if code == "upstream_bad_request" else GenerationFailedError
            raise cls(f"qingbo: task {task['task_id']} {status}: {error.get('message', '')}", code=code, body=task)
        images: list[Image] = []
        for index, item in enumerate((task.get("result") or {}).get("images", [])):
            urls = item["url"] if isinstance(item["url"], list) else [item["url"]]
            for url in urls:
                # qingbo signs each link once: re-reading the task gives it again, which is all there is to try.
                refresh = functools.partial(self._url_again, task["task_id"], index)
                data, content_type = self.download(url, refresh=refresh)
                images.append(Image(data, url, content_type))
        missing = max(0, requested - len(images))  # withheld images are simply not listed (and not charged)
        blocked = [BlockedImage(reason="not delivered by the provider (not charged)") for _ in range(missing)]
        return Result(self.provider, task["task_id"], task.get("model", ""), images, blocked, task.get("cost"), task)

    def _url_again(self, task_id: str, index: int) -> str | None:
        items = (self.get_task(task_id).get("result") or {}).get("images", [])
        url = items[index]["url"] if index < len(items) else None
        return url[0] if isinstance(url, list) else url

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if code == "quota_not_enough":
            return InsufficientCreditsError
        if status == 400 and "content" in (message or "").lower():
            return ContentBlockedError
        return super().error_class(status, code, message, body)


class QingboCallbackHandler(CallbackHandler):
    """Callbacks carry the task object; one per terminal event, so (task_id, status) identifies it."""

    terminal = TERMINAL

    def subject(self, event: Mapping[str, Any]) -> tuple[Any, str | None]:
        return event.get("task_id"), event.get("status")

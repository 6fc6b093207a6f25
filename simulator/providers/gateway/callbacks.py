"""`callback_url`: which URLs are acceptable at submit, and the deliveries a finished task sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.engine import Delivery, Phase, Task
from simulator.engine.webhooks import callback_refusal

if TYPE_CHECKING:
    from simulator.providers.gateway.provider import GatewayProvider


class Callbacks:
    def __init__(self, provider: GatewayProvider) -> None:
        self.provider = provider
        self.spec = provider.card.callback

    def problem(self, url: str) -> str | None:
        """Why `url` cannot be a callback target (None when it can), worded for the error message."""
        assert self.spec is not None
        if len(url) > self.spec.max_length:
            return f"must not exceed {self.spec.max_length} characters (got {len(url)})"
        return callback_refusal(url, https_only=True,
                                loopback=self.provider.options["allow_http_callbacks_to_loopback"])

    def on_event(self, task: Task, phase: Phase, at: float) -> None:
        url = task.extra.get("callback_url")
        if self.spec is None or not url or phase not in self.spec.phases:
            return
        values = self.provider.renderer.values(task, at, settled=True)
        self.provider.engine.webhooks.enqueue(Delivery(
            stream=f"{self.provider.slug}:{task.id}",
            url=url,
            payload=self.provider.card.bodies[self.spec.body].fill(values),
            provider=self.provider.slug,
            # The status the body carries (a task whose every image was blocked ends `failed`, not `completed`).
            event=str(values["status"]),
            task_id=task.id,
            policy=self.provider.retry_policy(),
        ))

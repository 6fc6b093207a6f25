"""Webhook delivery: ordered per stream, retried on the clock by the provider's policy, all journaled."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator.clock import Clock
from simulator.engine.journal import Journal


@dataclass(frozen=True)
class RetryPolicy:
    """Delays (seconds on the clock) before each retry; attempts = 1 + len(delays)."""

    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    timeout: float = 10.0


@dataclass
class Delivery:
    stream: str
    url: str
    payload: Any
    provider: str
    event: str
    task_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    attempts: int = 0


class WebhookDispatcher:
    def __init__(
        self,
        clock: Clock,
        journal: Journal,
        transport_factory: Callable[[], httpx.AsyncBaseTransport | None] = lambda: None,
    ) -> None:
        self.clock = clock
        self.journal = journal
        self._transport_factory = transport_factory
        self._queues: dict[str, deque[Delivery]] = {}
        self._busy: set[str] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport_factory(), follow_redirects=False)
        return self._client

    def enqueue(self, delivery: Delivery) -> None:
        self._queues.setdefault(delivery.stream, deque()).append(delivery)
        if delivery.stream not in self._busy:
            self._busy.add(delivery.stream)
            self._spawn(delivery.stream)

    def _spawn(self, stream: str) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(stream))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _attempt(self, stream: str) -> None:
        queue = self._queues[stream]
        delivery = queue[0]
        delivery.attempts += 1
        started = self.clock.now()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                delivery.url,
                content=json.dumps(delivery.payload).encode(),
                headers={"content-type": "application/json", "user-agent": "nanobanana-sim", **delivery.headers},
                timeout=delivery.policy.timeout,
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivered = status is not None and 200 <= status < 300
        retries_left = delivery.attempts <= len(delivery.policy.delays)
        outcome = "delivered" if delivered else "retrying" if retries_left else "abandoned"
        self.journal.record(
            "webhook", started, provider=delivery.provider, method="POST", path=delivery.url,
            request_headers=dict(delivery.headers), request_body=delivery.payload, status=status,
            finished_at=self.clock.now(), task_id=delivery.task_id, note=error,
            detail={"attempt": delivery.attempts, "event": delivery.event, "outcome": outcome},
        )
        if outcome == "retrying":
            delay = delivery.policy.delays[delivery.attempts - 1]
            self.clock.call_at(self.clock.now() + delay, lambda: self._attempt(stream))
            return
        queue.popleft()
        if queue:
            await self._attempt(stream)
        else:
            self._busy.discard(stream)
            del self._queues[stream]

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def flush(self) -> None:
        """Wait for attempts already under way (retries wait for the clock, not for this)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def reset(self) -> None:
        self._queues.clear()
        self._busy.clear()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

"""The provider-neutral engine: tasks on a timeline, waiting, events, blobs, wallets, journal."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from simulator.clock import Clock, Timer, VirtualClock
from simulator.engine.blobs import BlobStore, URLSigner
from simulator.engine.jobs import Job
from simulator.engine.journal import Journal
from simulator.engine.moderation import Moderation
from simulator.engine.rng import SeedSource
from simulator.engine.tasks import Phase, Task, TaskStore, Timeline
from simulator.engine.wallets import LEDGER_CAPACITY, Wallets
from simulator.engine.webhooks import Delivery, WebhookDispatcher
from simulator.faults import tasks as task_faults
from simulator.faults.actions import check_action
from simulator.faults.limits import RateLimits
from simulator.faults.plan import FaultPlan, RequestFacts
from simulator.images import PlaceholderCache

EventListener = Callable[[Task, Phase, float], None]

@dataclass(frozen=True)
class Durations:
    """Seconds from acceptance to a terminal state, drawn uniformly per task."""

    low: float
    high: float
    queue_share: tuple[float, float] = (0.1, 0.3)


class Engine:
    def __init__(
        self,
        clock: Clock,
        seed: int = 0,
        *,
        secret: bytes | None = None,
        journal_capacity: int = 50_000,
        image_cache_bytes: int = 256 * 1024 * 1024,
        task_capacity: int = 100_000,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.seeds = SeedSource(seed)
        # Random per process unless given: a link signed by another process (even with the same seed) is forged.
        # Nothing seeded reads the key, so IDs and pixels stay a function of the seed and the requests.
        self.signer = URLSigner(secret or secrets.token_bytes(32))
        self.journal = Journal(journal_capacity)
        self.tasks = TaskStore(task_capacity)
        self.jobs: dict[str, Job] = {}
        # The ledger keeps no more movements than the journal keeps exchanges (each movement has one).
        self._ledger_capacity = min(LEDGER_CAPACITY, journal_capacity)
        self.wallets = Wallets(now=clock.now, ledger_capacity=self._ledger_capacity)
        self.webhooks = WebhookDispatcher(clock, self.journal)
        self.blobs = BlobStore(PlaceholderCache(image_cache_bytes))
        self.moderation = Moderation()
        self.faults = FaultPlan(seed, check=check_action)
        self.limits = RateLimits()
        self.webhooks.faults_for = self._webhook_faults
        self._seq = itertools.count(1)
        self._timers: dict[str, list[Timer]] = {}
        self._changes: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, EventListener] = {}
        self._last_millis: dict[str, int] = {}

    # -- state -----------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Forget every task, blob, balance, delivery and journal entry; optionally reseed."""
        for timers in self._timers.values():
            for timer in timers:
                timer.cancel()
        if seed is not None:
            self.seed = seed
            self.seeds = SeedSource(seed)
        self.tasks = TaskStore(self.tasks.capacity)
        self.jobs.clear()
        self.wallets = Wallets(now=self.clock.now, ledger_capacity=self._ledger_capacity)
        self.blobs.clear()
        self.journal.clear()
        self.webhooks.reset()
        self.moderation = Moderation()
        self.faults.clear(self.seed)
        self.limits.clear()
        self._seq = itertools.count(1)
        self._timers.clear()
        self._changes.clear()
        self._last_millis.clear()

    def _webhook_faults(self, delivery: Delivery) -> list[dict[str, Any]]:
        """Rules match a delivery as operation `webhook` (the event in `body.event`, the URL as `path`)."""
        if not self.faults.rules:
            return []
        task = self.tasks.get(delivery.task_id) if delivery.task_id else None
        facts = RequestFacts(
            provider=delivery.provider, operation="webhook", method=delivery.method, path=delivery.url,
            api_key=task.owner if task else None, model=task.model if task else None,
            body={"event": delivery.event, "payload": delivery.payload},
        )
        fired = self.faults.fire(facts, self.clock.now())
        for rule in fired:
            self.journal.record("event", self.clock.now(), provider=delivery.provider, task_id=delivery.task_id,
                                note=f"fault rule {rule.name} fired on webhook {delivery.event}",
                                faults=[{"rule": rule.name, "do": rule.do}])
        return [rule.do for rule in fired]

    def listen(self, provider: str, listener: EventListener) -> None:
        """The provider hears each phase change of its tasks at the moment it happens on the clock."""
        self._listeners[provider] = listener

    def now(self) -> float:
        return self.clock.now()

    # -- submission --------------------------------------------------------------------------------

    def next_rng(self, provider: str) -> tuple[int, random.Random]:
        seq = next(self._seq)
        return seq, self.seeds.stream(provider, "task", seq)

    def unique_millis(self, scope: str) -> int:
        """The clock in milliseconds, moved on past the last value handed out in `scope`: time-based IDs
        stay unique when the virtual clock stands still between advances."""
        millis = max(round(self.clock.now() * 1000), self._last_millis.get(scope, -1) + 1)
        self._last_millis[scope] = millis
        return millis

    def plan_timeline(self, rng: random.Random, durations: Durations) -> Timeline:
        now = self.clock.now()
        total = rng.uniform(durations.low, durations.high)
        queued_at = now + min(0.5, total * 0.02)
        started_at = queued_at + total * rng.uniform(*durations.queue_share)
        return Timeline(accepted_at=now, queued_at=queued_at, started_at=started_at, finished_at=now + total)

    def add_task(self, task: Task) -> Task:
        if task_faults.any_active():  # the task's fault stream is drawn from only then: seeding it costs
            task.faults = task_faults.apply(task, self.seeds.stream(task.provider, "faults", task.seq))
        self.tasks.add(task)
        for retired in self.tasks.retire(self.clock.now()):
            self.blobs.forget(retired)
            self._changes.pop(retired.id, None)
        self.wallets.link(task.provider, task.owner, task.id)
        self.blobs.register(task)
        timeline = task.timeline
        moments = [(at, phase) for at, phase in timeline.transitions()]
        moments.append((timeline.finished_at, task.outcome))
        self._timers[task.id] = [
            self.clock.call_at(at, self._transition(task, phase)) for at, phase in moments if math.isfinite(at)
        ]
        self._emit(task, Phase.ACCEPTED, timeline.accepted_at)
        return task

    def _transition(self, task: Task, phase: Phase) -> Callable[[], Awaitable[None] | None]:
        # A plain function, not a coroutine: most phase changes start no webhook, and a task per change (three per
        # submitted task) cost more than the change itself. When deliveries are under way the clock is handed the
        # wait for them (a virtual clock's advance returns once they are done).
        def fire() -> Awaitable[None] | None:
            if task.phase(self.clock.now()) is Phase.CANCELED:
                return None
            task.touch()
            self._emit(task, phase, self.clock.now())
            if phase.terminal:
                # Its last timer has fired: holding the handles (and these closures) would cost every finished
                # task about 2.5 KB for the rest of the run.
                self._timers.pop(task.id, None)
                self._notify(task)
            return self.webhooks.flush() if self.webhooks.in_flight else None

        return fire

    def _emit(self, task: Task, phase: Phase, at: float) -> None:
        listener = self._listeners.get(task.provider)
        if listener is not None:
            listener(task, phase, at)

    def _notify(self, task: Task) -> None:
        event = self._changes.pop(task.id, None)
        if event is not None:
            event.set()

    # -- control -----------------------------------------------------------------------------------

    def cancel(self, task: Task) -> bool:
        now = self.clock.now()
        if task.phase(now).terminal:
            return False
        task.canceled_at = now
        task.touch()
        for timer in self._timers.pop(task.id, []):
            timer.cancel()
        self._emit(task, Phase.CANCELED, now)
        self._notify(task)
        return True

    def add_job(self, job: Job) -> Job:
        """Keep `job`; past the task store's capacity the oldest ended job is forgotten, as the oldest finished
        task is (a job holds its tasks: kept forever, jobs would keep every retired task alive)."""
        self.jobs[job.id] = job
        if len(self.jobs) > self.tasks.capacity:
            now = self.clock.now()
            ended = next((old for old in self.jobs.values() if old.phase(now)[1] is not None), None)
            if ended is not None:
                del self.jobs[ended.id]
        return job

    def cancel_job(self, job: Job) -> bool:
        """Cancel a job and every task of it still running; False when the job had already ended."""
        if job.phase(self.clock.now())[1] is not None:
            return False
        job.canceled_at = self.clock.now()
        for task in job.tasks:
            self.cancel(task)
        return True

    def delete_job(self, job: Job) -> None:
        """Forget a job; tasks of it still running are canceled (nothing is left to deliver them to)."""
        self.jobs.pop(job.id, None)
        for task in job.tasks:
            self.cancel(task)

    async def wait(self, task: Task, seconds: float) -> None:
        """Return when the task is terminal or `seconds` of clock time have passed, whichever is first."""
        deadline = self.clock.now() + max(0.0, seconds)
        while True:
            now = self.clock.now()
            if task.phase(now).terminal or now >= deadline:
                return
            target = min(deadline, task.terminal_at())
            if isinstance(self.clock, VirtualClock) and self.clock.autojump:
                # The sleep *is* the clock advance (firing timers, awaiting deliveries): never cut it short.
                await self.clock.sleep_until(target)
                continue
            changed = self._changes.setdefault(task.id, asyncio.Event())
            sleeper = asyncio.ensure_future(self.clock.sleep_until(target))
            watcher = asyncio.ensure_future(changed.wait())
            _, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()

    async def advance(self, seconds: float) -> float:
        if not isinstance(self.clock, VirtualClock):
            raise TypeError("only the virtual clock can be advanced")
        now = await self.clock.advance(seconds)
        await self.webhooks.flush()
        return now

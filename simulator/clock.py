"""The one source of time for everything the simulator does.

Every timestamp, queue duration, URL expiry, rate window and webhook retry reads a `Clock`.
`RealClock` follows the wall clock, optionally sped up; `VirtualClock` only moves when told to
(or, in autojump mode, jumps straight to the moment a waiter is waiting for), so tests never
sleep for a provider's queue time.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulator.checks import Invalid, number

TimerCallback = Callable[[], Awaitable[None] | None]

# 2026-01-01T00:00:00Z: a fixed start makes virtual timestamps (and so IDs) reproducible by seed.
DEFAULT_VIRTUAL_EPOCH = 1767225600.0
# 3000-01-01T00:00:00Z, the latest moment a virtual clock shows. Far past any test, and far enough inside
# what a datetime can print (year 9999) that the clock plus any bounded duration (a URL lifetime, a queue,
# an expiry) still prints as a date: every route renders times, so a clock past that would break them all.
HORIZON = 32503680000.0
# Seconds a virtual clock may move on by itself before each provider request.
MAX_TICK = 86400.0
# A real clock faster than this would pass the horizon within days of wall time.
MAX_SPEED = 100_000.0


class ClockError(Invalid):
    """A clock setting or move that is refused (it would go backwards, past the horizon, or is not a number)."""


def check_moment(t: object, field: str = "to") -> float:
    """A moment the virtual clock can show: a finite number of POSIX seconds, up to the horizon."""
    try:
        return float(number(t, field, low=0, high=HORIZON, unit="(POSIX seconds; the clock ends at 3000-01-01)"))
    except Invalid as exc:
        raise ClockError(str(exc), exc.field) from None


def check_tick(tick: object, field: str = "tick") -> float:
    try:
        return float(number(tick, field, low=0, high=MAX_TICK, unit="seconds"))
    except Invalid as exc:
        raise ClockError(str(exc), exc.field) from None


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    callback: TimerCallback | None = field(compare=False)

    def cancel(self) -> None:
        self.callback = None

    @property
    def cancelled(self) -> bool:
        return self.callback is None


class Timer:
    """Handle for a scheduled callback."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel

    def cancel(self) -> None:
        self._cancel()


class Clock:
    """Interface shared by both clocks; times are POSIX seconds on the simulated timeline."""

    mode: str = "abstract"

    def now(self) -> float:
        raise NotImplementedError

    async def sleep_until(self, t: float) -> None:
        raise NotImplementedError

    def call_at(self, t: float, callback: TimerCallback) -> Timer:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    def describe(self) -> dict[str, object]:
        now = self.now()
        return {"mode": self.mode, "now": now, "iso": to_datetime(now).isoformat().replace("+00:00", "Z")}


async def _run(callback: TimerCallback) -> None:
    result = callback()
    if inspect.isawaitable(result):
        await result


async def _awaited(result: Awaitable[None]) -> None:
    await result


class RealClock(Clock):
    """Wall-clock time, optionally sped up: with speed 50 a 20 s queue passes in 0.4 s."""

    mode = "real"

    def __init__(self, speed: float = 1.0) -> None:
        try:
            self.speed = float(number(speed, "speed", low=0, high=MAX_SPEED, above=True))
        except Invalid as exc:
            raise ClockError(str(exc), exc.field) from None
        self._epoch = time.time()
        self._mono = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        return self._epoch + (time.monotonic() - self._mono) * self.speed

    def _real_delay(self, t: float) -> float:
        return max(0.0, (t - self.now()) / self.speed)

    async def sleep_until(self, t: float) -> None:
        delay = self._real_delay(t)
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, t: float, callback: TimerCallback) -> Timer:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            # Run at once; only what is left to await (a callback's coroutine) becomes a task of its own.
            result = callback()
            if inspect.isawaitable(result):
                task = loop.create_task(_awaited(result))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        handle = loop.call_later(self._real_delay(t), fire)
        return Timer(handle.cancel)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "speed": self.speed}


class VirtualClock(Clock):
    """Time that moves only when advanced.

    Timers fire in due order while the clock advances, and asynchronous callbacks (webhook
    deliveries) are awaited before the next one, so a test that advances the clock sees every
    consequence of that advance when the call returns. With `autojump`, a waiter makes the clock
    jump to the instant it waits for, firing everything due on the way: a request with `wait=60`
    returns at once, at the simulated moment its task finished.
    """

    mode = "virtual"

    def __init__(self, start: float = DEFAULT_VIRTUAL_EPOCH, autojump: bool = False, tick: float = 0.0) -> None:
        self._now = check_moment(start, "start")
        self.autojump = autojump
        # Seconds the clock moves on before each provider request: a client that polls (and really sleeps
        # a little, or not at all) still sees its task progress, without the test driving the clock.
        self.tick = check_tick(tick)
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._advancing: asyncio.Lock | None = None

    def now(self) -> float:
        return self._now

    def _lock(self) -> asyncio.Lock:
        if self._advancing is None:
            self._advancing = asyncio.Lock()
        return self._advancing

    def call_at(self, t: float, callback: TimerCallback) -> Timer:
        timer = _Timer(max(t, self._now), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return Timer(timer.cancel)

    async def advance(self, seconds: float) -> float:
        if not seconds >= 0:  # also refuses NaN, which compares false with everything
            raise ClockError(f"seconds: the clock cannot go backwards or by {seconds!r}", "seconds")
        return await self.advance_to(self._now + seconds)

    async def advance_to(self, t: float) -> float:
        """Fire everything due up to `t`, in order, then show `t`. The clock stops at its horizon: a waiter or
        tick that would carry it further leaves it there (the control plane refuses such a move outright)."""
        if math.isnan(t):
            raise ClockError("to: the clock cannot move to NaN", "to")
        t = min(t, HORIZON)
        async with self._lock():
            while self._timers and self._timers[0].due <= t:
                timer = heapq.heappop(self._timers)
                if timer.callback is None:
                    continue
                self._now = max(self._now, timer.due)
                await _run(timer.callback)
            self._now = max(self._now, t)
        return self._now

    async def sleep_until(self, t: float) -> None:
        if not t > self._now:
            return
        if self.autojump:
            await self.advance_to(t)
            if t <= self._now:
                return
            # Past the horizon: time cannot get there, so the waiter waits as on a manual clock (until a reset
            # or its client gives up) rather than spinning; nothing else is held up.
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_at(t, wake)
        try:
            await woken
        finally:
            timer.cancel()

    def rewind(self, start: float = DEFAULT_VIRTUAL_EPOCH) -> None:
        """Start over at `start` with nothing scheduled (used by a full simulator reset)."""
        self._timers.clear()
        self._now = check_moment(start, "start")

    def pending_timers(self) -> int:
        return sum(1 for timer in self._timers if not timer.cancelled)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "autojump": self.autojump, "tick": self.tick,
                "pending_timers": self.pending_timers()}

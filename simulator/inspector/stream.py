"""The live journal as Server-Sent Events: `GET /_sim/journal/stream`.

Entries are coalesced: the stream sends at most one `entries` event per BATCH_SECONDS (wall time: this paces a
screen, not the simulation), holding summaries of everything recorded since the last one, at most MAX_BATCH of
them (the rest counted in `skipped`, which tells the page to refetch). A `state` event carries the clock and the
counts each second, so a page sees a clock advanced by a script. `?after=N` first replays the entries after N,
so a page that reconnects misses nothing. The stream ends when the server shuts down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from simulator.engine.journal import JournalEntry
from simulator.inspector.records import summary

if TYPE_CHECKING:
    from simulator.sim import Simulator

BATCH_SECONDS = 0.2
STATE_SECONDS = 1.0
MAX_BATCH = 500
# Entries waiting for a slow reader; beyond this the oldest are dropped and counted as skipped.
MAX_BACKLOG = 5_000


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), allow_nan=False)}\n\n"


def state(sim: Simulator) -> dict[str, Any]:
    engine = sim.engine
    return {"clock": engine.clock.describe(), "tasks": len(engine.tasks), "journal": len(engine.journal),
            "last_seq": _last_seq(sim), "webhooks_pending": engine.webhooks.pending()}


def _last_seq(sim: Simulator) -> int:
    last = sim.engine.journal.entries(limit=1)
    return last[0].seq if last else 0


async def stream(sim: Simulator, request: Request, after: int | None) -> StreamingResponse:
    backlog: deque[JournalEntry] = deque()
    skipped = 0
    wake = asyncio.Event()

    def observe(entry: JournalEntry) -> None:
        nonlocal skipped
        if len(backlog) >= MAX_BACKLOG:
            backlog.popleft()
            skipped += 1
        backlog.append(entry)
        wake.set()

    async def events() -> AsyncIterator[str]:
        nonlocal skipped
        unsubscribe = sim.engine.journal.subscribe(observe)
        try:
            yield "retry: 1000\n\n"
            if after is not None:
                backlog.extendleft(reversed(sim.engine.journal.entries(after_seq=after)))
            yield event("state", state(sim))
            last_state = time.monotonic()
            while not sim.closing:
                if backlog:
                    batch = [summary(e) for e in list(backlog)[-MAX_BATCH:]]
                    skipped += max(0, len(backlog) - MAX_BATCH)
                    backlog.clear()
                    yield event("entries", {"entries": batch, "skipped": skipped})
                    skipped = 0
                if time.monotonic() - last_state >= STATE_SECONDS:
                    last_state = time.monotonic()
                    yield event("state", state(sim))
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), STATE_SECONDS)
                    await asyncio.sleep(BATCH_SECONDS)  # let a burst gather into one event
                except TimeoutError:
                    pass
        finally:
            unsubscribe()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

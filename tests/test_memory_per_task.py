"""What a stored task costs, with its journal entry: bounded in bytes (tracemalloc, not wall-clock time).

Before the journal kept bytes instead of parsed copies and finished tasks let go of their timers, an Evolink
task with its entry held about 10 KB; then 3.5 KB; 3.1 KB since a task keeps its request as compact JSON and
shares its key and URL base with every other task. The bound leaves room for Python versions and allocator
differences and still catches any of those regressions coming back (the parsed request alone would break it).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import httpx

from simulator.clock import VirtualClock
from simulator.sim import Simulator

BOUND = 4 * 1024
BODY = {"model": "gemini-3.1-flash-image-preview", "prompt": "A banana astronaut above Saturn", "size": "1:1"}


def test_a_stored_task_with_its_journal_entry_stays_small() -> None:
    async def scenario() -> float:
        sim = Simulator(clock=VirtualClock(start=1_800_000_000), providers=["evolink"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://127.0.0.1") as client:

            async def submit() -> None:
                answer = await client.post("/evolink/v1/images/generations", json=BODY,
                                           headers={"authorization": "Bearer sk-memory"})
                assert answer.status_code == 200, answer.text

            for _ in range(20):  # first-use costs (schemas compiled, caches filled) out of the measurement
                await submit()
            await sim.engine.advance(3600)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                count = 400
                for _ in range(count):
                    await submit()
                await sim.engine.advance(3600)  # every task finished: what a long run keeps of each
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            assert len(sim.engine.tasks) == 420 and len(sim.engine.journal) >= 420
            assert sim.engine._timers == {}
            return (after - before) / count

    per_task = asyncio.run(scenario())
    assert per_task < BOUND, f"{per_task:.0f} bytes per stored task with its journal entry"

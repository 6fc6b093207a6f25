"""Jobs: several tasks as one long-running operation whose phase is read off the clock (the Batch lifecycle)."""

from __future__ import annotations

import asyncio
import math

from test_engine import make_task

from simulator.clock import VirtualClock
from simulator.engine import Durations, Engine, Job, Phase


def job_of(engine: Engine, tasks: int, *, starts: float = 5, expires: float = 100) -> Job:
    members = [engine.add_task(make_task(engine, f"t{n}", Durations(10, 10))) for n in range(tasks)]
    return engine.add_job(Job("j", "test", "k", 0, starts, expires, members))


def test_a_job_is_queued_then_runs_then_ends_with_its_last_task() -> None:
    engine = Engine(VirtualClock(start=0))
    job = job_of(engine, 2)
    job.tasks[1].timeline = type(job.tasks[1].timeline)(0, 0, 5, 30)
    assert job.phase(0) == (Phase.QUEUED, None) and job.phase(12) == (Phase.PROCESSING, None)
    assert job.phase(30) == (Phase.SUCCEEDED, 30)
    job.tasks[0].outcome = job.tasks[1].outcome = Phase.FAILED
    assert job.phase(30) == (Phase.FAILED, 30)  # none succeeded
    assert Job("empty", "test", "k", 0, 5, 100).phase(5) == (Phase.FAILED, 5)  # every request refused


def test_an_unfinished_job_expires_and_cancel_and_delete_go_through_the_engine() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0))
        job = job_of(engine, 1, expires=50)
        job.tasks[0].timeline = type(job.tasks[0].timeline)(0, 0, 5, math.inf)  # never finishes
        assert job.phase(49) == (Phase.PROCESSING, None) and job.phase(50) == (Phase.EXPIRED, 50)
        await engine.advance(60)
        assert not engine.cancel_job(job)  # an ended job cannot be canceled

        other = Engine(VirtualClock(start=0))
        running = job_of(other, 2)
        await other.advance(7)
        assert other.cancel_job(running) and running.phase(other.now()) == (Phase.CANCELED, 7)
        assert all(task.phase(other.now()) is Phase.CANCELED for task in running.tasks)
        other.delete_job(running)
        assert "j" not in other.jobs
        kept = job_of(other, 1)
        other.reset()
        assert other.jobs == {} and kept.canceled_at is None

    asyncio.run(scenario())

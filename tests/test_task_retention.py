"""Stored tasks are bounded: past the store's capacity the oldest finished task is retired (with its blobs and
timers), a task still running never is; and a finished task holds no timers."""

from __future__ import annotations

import asyncio

from test_engine import TEN_SECONDS, make_task

from simulator.clock import VirtualClock
from simulator.engine import Engine, Job


def test_past_capacity_the_oldest_finished_tasks_are_retired_with_their_blobs() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0), task_capacity=3)
        for n in range(3):
            engine.add_task(make_task(engine, f"old{n}", TEN_SECONDS))
        await engine.advance(30)
        assert engine._timers == {}  # finished: no timer (nor its closure) is held any longer
        for n in range(2):
            engine.add_task(make_task(engine, f"new{n}", TEN_SECONDS))
        assert [task.id for task in engine.tasks.all()] == ["old2", "new0", "new1"]
        assert engine.blobs.get("old0-0.png") is None and engine.blobs.get("old2-0.png") is not None

    asyncio.run(scenario())


def test_a_running_task_is_never_retired() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0), task_capacity=2)
        for n in range(4):
            engine.add_task(make_task(engine, f"t{n}", TEN_SECONDS))
        assert len(engine.tasks) == 4  # all still running: over capacity rather than losing one
        await engine.advance(30)
        engine.add_task(make_task(engine, "t4", TEN_SECONDS))
        assert [task.id for task in engine.tasks.all()] == ["t3", "t4"]

    asyncio.run(scenario())


def test_a_reset_keeps_the_capacity() -> None:
    engine = Engine(VirtualClock(start=0), task_capacity=7)
    engine.reset()
    assert engine.tasks.capacity == 7


def test_a_retired_tasks_idempotency_key_goes_with_it() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0), task_capacity=2)
        for n in range(2):
            engine.add_task(make_task(engine, f"old{n}", TEN_SECONDS))
            engine.tasks.remember_key("qingbo", "key", f"idem{n}", f"old{n}")
        engine.tasks.remember_key("qingbo", "key", "idem0", "old1")  # a key used again now names the later task
        await engine.advance(30)
        engine.add_task(make_task(engine, "new0", TEN_SECONDS))
        engine.tasks.remember_key("qingbo", "key", "idem-new", "new0")
        assert engine.tasks.by_key("qingbo", "key", "idem0") is engine.tasks.get("old1")
        assert engine.tasks.get("old0") is None
        engine.add_task(make_task(engine, "new1", TEN_SECONDS))  # retires old1: both keys naming it go
        assert engine.tasks.by_key("qingbo", "key", "idem0") is None
        assert engine.tasks._keys.keys() == {("qingbo", "key", "idem-new")}

    asyncio.run(scenario())


def test_past_capacity_the_oldest_ended_job_is_forgotten_and_a_running_one_never() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0), task_capacity=2)
        for n in range(2):
            engine.add_job(Job(f"done{n}", "test", "k", 0, 0, 100, [make_task(engine, f"d{n}", TEN_SECONDS)]))
        await engine.advance(30)
        engine.add_job(Job("running", "test", "k", 30, 30, 100, [make_task(engine, "r", TEN_SECONDS)]))
        assert list(engine.jobs) == ["done1", "running"]  # a job holds its tasks: kept forever, it kept them all
        engine.add_job(Job("new", "test", "k", 30, 30, 100, [make_task(engine, "n", TEN_SECONDS)]))
        assert list(engine.jobs) == ["running", "new"]
        engine.add_job(Job("newer", "test", "k", 30, 30, 100, [make_task(engine, "m", TEN_SECONDS)]))
        assert list(engine.jobs) == ["running", "new", "newer"]  # none has ended: over capacity rather than lose one

    asyncio.run(scenario())


def test_the_ledger_keeps_no_more_movements_than_the_journal_keeps_exchanges() -> None:
    engine = Engine(VirtualClock(start=0), journal_capacity=5)
    for _ in range(8):
        engine.wallets.debit("test", "k", 1.0)
    engine.reset()  # and a reset keeps the bound
    for _ in range(8):
        engine.wallets.credit("test", "k", 1.0)
    assert [move["balance"] for move in engine.wallets.ledger()] == [1_000_004.0 + n for n in range(5)]

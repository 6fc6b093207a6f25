"""The provider-neutral engine: timelines, events, waiting at scale, cancel, journal, wallets, webhooks."""

from __future__ import annotations

import asyncio
import random
import uuid

from simulator.clock import VirtualClock
from simulator.engine import Delivery, Durations, Engine, Journal, OutputImage, Phase, Task
from simulator.engine.rng import random_uuid
from simulator.engine.wallets import Wallets


async def settle() -> None:
    """Let woken coroutines run (a few loop turns: future → asyncio.wait → waiter)."""
    for _ in range(10):
        await asyncio.sleep(0)


TEN_SECONDS = Durations(10, 10)


def make_task(engine: Engine, task_id: str, durations: Durations = TEN_SECONDS) -> Task:
    seq, rng = engine.next_rng("test")
    return Task(
        id=task_id, provider="test", owner="k", model="m", prompt="p",
        timeline=engine.plan_timeline(rng, durations), outcome=Phase.SUCCEEDED,
        outputs=[OutputImage(f"{task_id}-0.png", 0, 64, 64, "png", 1)], seq=seq,
    )


def test_phases_follow_the_timeline_and_events_fire_in_order() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0))
        seen: list[tuple[Phase, float]] = []
        engine.listen("test", lambda task, phase, at: seen.append((phase, at)))
        task = engine.add_task(make_task(engine, "t1", Durations(10, 10)))
        assert task.phase(0) is Phase.ACCEPTED
        await engine.advance(30)
        phases = [phase for phase, _ in seen]
        assert phases == [Phase.ACCEPTED, Phase.QUEUED, Phase.PROCESSING, Phase.SUCCEEDED]
        times = [at for _, at in seen]
        assert times == sorted(times)
        assert times[-1] == 10
        assert task.phase(engine.now()) is Phase.SUCCEEDED
        assert task.progress(task.timeline.started_at + (10 - task.timeline.started_at) / 2) == 0.5

    asyncio.run(scenario())


def test_timelines_are_deterministic_by_seed_and_vary_by_task() -> None:
    def timelines(seed: int) -> list[float]:
        engine = Engine(VirtualClock(start=0), seed)
        return [make_task(engine, f"t{i}", Durations(8, 20)).timeline.finished_at for i in range(5)]

    assert timelines(3) == timelines(3)
    assert timelines(3) != timelines(4)
    assert len(set(timelines(3))) == 5
    assert all(8 <= t <= 20 for t in timelines(3))


def test_thousands_of_waiters_do_not_block_each_other() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0))
        tasks = [engine.add_task(make_task(engine, f"t{i}", Durations(5, 50))) for i in range(2000)]
        waiters = [asyncio.create_task(engine.wait(task, 60)) for task in tasks]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        await engine.advance(25)
        await settle()
        finished_early = sum(w.done() for w in waiters)
        expected_early = sum(t.timeline.finished_at <= 25 for t in tasks)
        assert finished_early == expected_early
        await engine.advance(25)
        await asyncio.gather(*waiters)
        assert all(t.phase(engine.now()).terminal for t in tasks)

    asyncio.run(scenario())


def test_wait_returns_at_the_deadline_when_the_task_is_slower() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0, autojump=True))
        task = engine.add_task(make_task(engine, "slow", Durations(100, 100)))
        await engine.wait(task, 30)
        assert engine.now() == 30
        assert not task.phase(engine.now()).terminal
        await engine.wait(task, 100)
        assert engine.now() == 100
        assert task.phase(engine.now()) is Phase.SUCCEEDED

    asyncio.run(scenario())


def test_cancel_wakes_waiters_and_stops_later_events() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0))
        seen: list[Phase] = []
        engine.listen("test", lambda task, phase, at: seen.append(phase))
        task = engine.add_task(make_task(engine, "c", Durations(50, 50)))
        waiter = asyncio.create_task(engine.wait(task, 60))
        await engine.advance(1)
        assert engine.cancel(task)
        await asyncio.wait_for(waiter, 1)
        assert task.phase(engine.now()) is Phase.CANCELED
        assert not engine.cancel(task)
        await engine.advance(100)
        assert seen[-1] is Phase.CANCELED
        assert Phase.SUCCEEDED not in seen

    asyncio.run(scenario())


def test_journal_filters_and_stays_bounded() -> None:
    journal = Journal(capacity=3)
    for i in range(5):
        journal.record("http", float(i), provider="a" if i % 2 else "b", status=200 + i)
    assert len(journal) == 3
    assert journal.dropped == 2
    assert [e.seq for e in journal.entries()] == [3, 4, 5]
    assert [e.seq for e in journal.entries(provider="a")] == [4]
    assert [e.seq for e in journal.entries(status=[202, 204])] == [3, 5]
    assert [e.seq for e in journal.entries(since=3, until=3)] == [4]
    assert [e.seq for e in journal.entries(after_seq=4)] == [5]


def test_wallets_debit_only_what_is_there() -> None:
    wallets = Wallets(default_balance=100)
    assert wallets.debit("p", "k", 60)
    assert not wallets.debit("p", "k", 60)
    assert wallets.balance("p", "k") == 40
    wallets.credit("p", "k", 10)
    wallets.set_default("q", 5)
    assert wallets.balance("q", "k") == 5
    assert wallets.balance("p", "k") == 50



def test_wallets_link_each_debit_to_its_task_in_one_lookup_whatever_the_ledger_holds() -> None:
    wallets = Wallets(default_balance=1e9)
    for n in range(5_000):  # another wallet's movements in between change nothing
        assert wallets.debit("p", f"other-{n % 7}", 1)
        wallets.link("p", f"other-{n % 7}", f"o{n}")
    assert wallets.debit("p", "k", 3)
    assert wallets.debit("q", "k", 4)  # same key, another provider: another wallet
    wallets.link("p", "k", "t1")
    wallets.link("q", "k", "t2")
    wallets.link("p", "k", "t3")  # no unlinked debit left in p/k: nothing to name
    wallets.credit("p", "k", 3, task_id="t1")
    wallets.link("p", "k", "t4")  # the wallet's latest movement is a credit: not a debit to link
    mine = [(m["provider"], m["kind"], m["task_id"]) for m in wallets.ledger(owner="k")]
    assert mine == [("p", "debit", "t1"), ("q", "debit", "t2"), ("p", "credit", "t1")]
    assert [m["task_id"] for m in wallets.ledger(owner="other-3")][-1] == "o4994"
    # The scan this replaced walked the ledger backwards per task; the lookup reads one wallet's latest move.
    assert len(wallets._latest) == 9

def test_webhooks_to_non_loopback_hosts_are_refused_and_journaled_without_sending() -> None:
    async def scenario() -> None:
        engine = Engine(VirtualClock(start=0))
        engine.webhooks.enqueue(Delivery(
            stream="s", url="https://hooks.example.invalid/x", payload={"a": 1}, provider="test", event="e",
        ))
        await engine.webhooks.flush()
        [entry] = engine.journal.entries(kind="webhook")
        assert entry.status is None
        assert entry.detail["outcome"] == "refused"
        assert "loopback" in (entry.note or "")
        assert engine.webhooks.pending() == 0

    asyncio.run(scenario())


def test_seed_streams_are_independent_of_draw_order() -> None:
    from simulator.engine.rng import SeedSource

    source = SeedSource(11)
    first = source.stream("x", 1).random()
    source.stream("y", 2).random()
    assert source.stream("x", 1).random() == first
    assert random.Random("11:x:1").random() == first


def test_time_based_ids_stay_unique_while_the_virtual_clock_stands_still() -> None:
    engine = Engine(VirtualClock(start=10))
    assert [engine.unique_millis("a") for _ in range(3)] == [10_000, 10_001, 10_002]
    assert engine.unique_millis("b") == 10_000
    engine.reset()
    assert engine.unique_millis("a") == 10_000


def test_random_uuids_are_what_the_uuid_module_makes_of_the_same_draw() -> None:
    for seed in range(2000):
        ours, theirs = random.Random(seed), random.Random(seed)
        assert random_uuid(ours) == str(uuid.UUID(int=theirs.getrandbits(128), version=4))

"""The clocks: virtual time moves only when told, fires timers in order, and autojumps for waiters."""

from __future__ import annotations

import asyncio

import pytest

from simulator.clock import DEFAULT_VIRTUAL_EPOCH, RealClock, VirtualClock


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_virtual_clock_starts_at_fixed_epoch_and_only_moves_when_advanced() -> None:
    clock = VirtualClock()
    assert clock.now() == DEFAULT_VIRTUAL_EPOCH
    assert clock.now() == DEFAULT_VIRTUAL_EPOCH
    assert run(clock.advance(12.5)) == DEFAULT_VIRTUAL_EPOCH + 12.5


def test_timers_fire_in_due_order_at_their_own_time() -> None:
    clock = VirtualClock(start=0)
    seen: list[tuple[str, float]] = []
    clock.call_at(5, lambda: seen.append(("b", clock.now())))
    clock.call_at(2, lambda: seen.append(("a", clock.now())))
    cancelled = clock.call_at(3, lambda: seen.append(("x", clock.now())))
    cancelled.cancel()
    clock.call_at(9, lambda: seen.append(("late", clock.now())))
    run(clock.advance(6))
    assert seen == [("a", 2), ("b", 5)]
    assert clock.now() == 6
    assert clock.pending_timers() == 1


def test_async_timer_callbacks_finish_before_advance_returns() -> None:
    clock = VirtualClock(start=0)
    done: list[float] = []

    async def slow() -> None:
        await asyncio.sleep(0.01)
        done.append(clock.now())

    async def scenario() -> None:
        clock.call_at(1, slow)
        await clock.advance(1)
        assert done == [1]

    run(scenario())


def test_sleep_until_wakes_when_the_clock_passes() -> None:
    clock = VirtualClock(start=0)

    async def scenario() -> list[float]:
        woke: list[float] = []

        async def sleeper() -> None:
            await clock.sleep_until(10)
            woke.append(clock.now())

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        await clock.advance(9)
        await asyncio.sleep(0)
        assert woke == []
        await clock.advance(1)
        await task
        return woke

    assert run(scenario()) == [10]


def test_autojump_moves_the_clock_to_what_the_waiter_waits_for() -> None:
    clock = VirtualClock(start=100, autojump=True)
    fired: list[float] = []
    clock.call_at(130, lambda: fired.append(clock.now()))
    run(clock.sleep_until(160))
    assert clock.now() == 160
    assert fired == [130]


def test_rewind_forgets_timers() -> None:
    clock = VirtualClock(start=0)
    clock.call_at(5, lambda: None)
    clock.rewind(0)
    assert clock.pending_timers() == 0
    assert clock.now() == 0


def test_clock_cannot_go_backwards() -> None:
    with pytest.raises(ValueError):
        run(VirtualClock().advance(-1))


def test_real_clock_speed_factor_compresses_waits() -> None:
    clock = RealClock(speed=1000)

    async def scenario() -> float:
        start = clock.now()
        await clock.sleep(20)  # 20 simulated seconds = 20 ms of real time
        return clock.now() - start

    elapsed = run(scenario())
    assert elapsed >= 20
    with pytest.raises(ValueError):
        RealClock(speed=0)


def test_real_clock_timers_fire() -> None:
    clock = RealClock(speed=1000)

    async def scenario() -> list[str]:
        seen: list[str] = []
        clock.call_at(clock.now() + 5, lambda: seen.append("fired"))
        await clock.sleep(10)
        await asyncio.sleep(0.01)
        return seen

    assert run(scenario()) == ["fired"]


def test_real_clock_runs_a_plain_callback_in_its_timer_and_awaits_what_one_returns() -> None:
    clock = RealClock(speed=1000)

    async def scenario() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()

        async def rest() -> None:
            await asyncio.sleep(0)
            seen.append("awaited")
            done.set()

        def plain() -> None:
            seen.append(f"plain, tasks running: {len(asyncio.all_tasks())}")

        def returning() -> object:
            seen.append("returning")
            return rest()

        clock.call_at(clock.now() + 1, plain)
        clock.call_at(clock.now() + 2, returning)
        for _ in range(5000):  # a real clock: waited for by polling, which makes no task of its own
            if done.is_set():
                break
            await asyncio.sleep(0.001)
        return seen

    # No task is made for a callback with nothing to await: only the test's own task was running.
    assert run(scenario()) == ["plain, tasks running: 1", "returning", "awaited"]


def test_tick_moves_the_clock_before_each_provider_request() -> None:
    import httpx

    from simulator.control_client import ControlClient
    from simulator.live import LiveServer
    from simulator.sim import Simulator

    with LiveServer(Simulator(clock=VirtualClock(start=0), providers=["civitai"])) as server:
        control = ControlClient(server.url)
        control.set_tick(5)
        for _ in range(3):
            httpx.get(server.provider_url("civitai") + "/v2/consumer/workflows", headers={"Authorization": "Bearer k"})
        assert control.now() == 15
        response = httpx.get(server.url + "/civitai/nothing-here")
        assert response.headers.get_list("date") == ["Thu, 01 Jan 1970 00:00:20 GMT"]  # the simulated time
        control.reset()
        assert control.now() == 0
        control.close()

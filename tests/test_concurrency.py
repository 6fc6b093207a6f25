"""Many clients waiting on the same server at once: none blocks another, nor the server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from conftest import nb2_body, provider_server

from simulator.control_client import ControlClient
from simulator.live import LiveServer

WAITERS = 200


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with provider_server("civitai") as live:
        yield live


def test_hundreds_of_long_polls_wait_on_the_clock_while_the_server_keeps_answering(server: LiveServer) -> None:
    control = ControlClient(server.url)
    control.reset(seed=0)
    base = server.provider_url("civitai") + "/v2/consumer/workflows"
    headers = {"Authorization": "Bearer many"}

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=WAITERS + 10)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
            submitted = await asyncio.gather(*[
                client.post(base, json=nb2_body(prompt=f"waiter {i}")) for i in range(WAITERS)
            ])
            ids = [r.json()["id"] for r in submitted]
            assert all(r.status_code == 202 for r in submitted)
            waiting = [asyncio.create_task(client.get(f"{base}/{i}", params={"wait": 60})) for i in ids]
            await asyncio.sleep(0.5)
            assert not any(w.done() for w in waiting), "a long poll returned before the clock moved"
            # The server still answers other requests promptly while every long poll is parked.
            probe = await client.get(f"{base}/{ids[0]}")
            assert probe.status_code == 202
            await client.post(server.url + "/_sim/clock/advance", json={"seconds": 25})
            done = await asyncio.wait_for(asyncio.gather(*waiting), 30)
            assert [r.status_code for r in done] == [200] * WAITERS
            assert {r.json()["status"] for r in done} == {"succeeded"}

    asyncio.run(scenario())
    control.close()

"""Capacity: thousands of long-poll waiters at once, and the memory each stored task costs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from load import Holder, drive
from routes import PROVIDERS, Request, finished_task, send
from servers import Server

CIVITAI = PROVIDERS["civitai"]


@dataclass
class Waiters:
    count: int
    rss_before_mb: float
    rss_mb: float
    p99_idle_ms: float
    p99_waiting_ms: float
    answered: int


def waiters(server: Server, count: int, probe_seconds: float, rate: float) -> Waiters:
    """`count` submits held open with ?wait=60 on tasks that never finish, and a paced poll meanwhile."""
    base = f"{server.url}/civitai"
    with httpx.Client(timeout=60) as client:
        poll = finished_task(client, base, CIVITAI)
        rule = {"match": {"provider": "civitai", "operation": "SubmitWorkflow"}, "do": {"task": "never_finish"}}
        client.post(f"{server.url}/_sim/faults", json={"rules": [rule]}).raise_for_status()

    def probe() -> float:
        return drive(base, poll, CIVITAI.headers, connections=8, duration=probe_seconds, rate=rate).p99_ms

    idle = probe()
    before = server.rss_mb()
    submit = CIVITAI.submit
    held = Holder(base, Request(submit.method, submit.path + "?wait=60", submit.body, submit.headers),
                  CIVITAI.headers, count)
    try:
        _wait_for_tasks(server, count + 1)
        waiting = probe()
        rss = server.rss_mb()
    finally:
        held.stop()
    with httpx.Client(timeout=60) as client:
        client.delete(f"{server.url}/_sim/faults").raise_for_status()
    return Waiters(held.ready, before, rss, idle, waiting, held.ready)


def _wait_for_tasks(server: Server, count: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=60) as client:
        while True:
            found = client.get(f"{server.url}/_sim/").json()["tasks"]
            if found >= count or time.monotonic() > deadline:
                return int(found)
            time.sleep(0.5)


@dataclass
class Stored:
    tasks: int
    rss_before_mb: float
    rss_mb: float
    rate: float
    p50_ms: float
    p99_ms: float

    @property
    def per_task_kb(self) -> float:
        return (self.rss_mb - self.rss_before_mb) * 1024 / max(1, self.tasks)


def stored_tasks(server: Server, count: int, slug: str = "evolink") -> Stored:
    """RSS growth over `count` submitted (and finished) tasks, each with its journal entry."""
    provider = PROVIDERS[slug]
    base = f"{server.url}/{slug}"
    with httpx.Client(timeout=60) as client:
        send(client, base, provider, provider.submit.with_uuid())  # first-use costs out of the measurement
        client.post(f"{server.url}/_sim/reset").raise_for_status()
    before = server.rss_mb()
    fill = drive(base, provider.submit, provider.headers, connections=32, requests=count)
    found = _wait_for_tasks(server, count, timeout=60)
    time.sleep(1.0)  # let the last lifecycles finish (speed 1000) before reading memory
    return Stored(found, before, server.rss_mb(), fill.rate, fill.p50_ms, fill.p99_ms)

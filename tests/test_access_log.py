"""The log a person watches: one line per request from `nanobanana-sim serve`, as text or JSON, or none at all."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from support_cli import Served, served

from simulator.access_log import AccessLog, clock_text
from simulator.clock import VirtualClock, to_datetime
from simulator.logs import ACCESS, PROGRESS, ROOT, JsonFormatter, Progress, TextFormatter, _Handover, configure
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
AUTH = {"Authorization": "Bearer sim-token"}
SUBMIT = "/civitai/v2/consumer/workflows"


def workflow(**extra: Any) -> dict[str, Any]:
    step_input = {"engine": "google", "model": "nano-banana-2", "prompt": "a banana", **extra}
    return {"steps": [{"$type": "imageGen", "input": step_input}]}


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served("--port", "0", "--virtual-clock", "--autojump") as running:
        yield running


def test_a_request_is_one_line_with_time_provider_operation_status_task_and_clock(server: Served) -> None:
    answer = httpx.post(f"{server.base}{SUBMIT}", params={"wait": 60}, headers=AUTH, json=workflow())
    task = answer.json()["id"]
    line = server.wait_for(lambda text: f"task={task}" in text, "for the submit")
    assert re.fullmatch(
        rf"{STAMP} civitai SubmitWorkflow POST {SUBMIT}\?wait=60 -> 200 task={re.escape(task)} "
        r"clock=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z took=\d+\.\d{3}s", line)


def test_a_rejected_request_names_each_field_and_rule(server: Served) -> None:
    httpx.post(f"{server.base}{SUBMIT}", headers=AUTH, json=workflow(aspectRatio="16:10", prompt=None))
    line = server.wait_for(lambda text: "-> 400" in text, "for the rejected submit")
    assert re.search(r" rejected: steps\[0\]\.input\.aspectRatio \[enum\] nearest \"[\d:]+\"; "
                     r"steps\[0\]\.input\.prompt \[type\]", line), line


def test_a_faulted_exchange_names_the_rule_that_fired(server: Served) -> None:
    rule = {"name": "third-submit-throttled", "match": {"operation": "SubmitTask"}, "do": {"error": "rate_limited"}}
    httpx.post(f"{server.base}/_sim/faults", json={"rules": [rule]}).raise_for_status()
    try:
        httpx.post(f"{server.base}/qingbo/v1/tasks", headers=AUTH, json={"model": "x", "prompt": "p"})
        line = server.wait_for(lambda text: "qingbo SubmitTask" in text, "for the faulted submit")
    finally:
        httpx.delete(f"{server.base}/_sim/faults").raise_for_status()
    assert re.fullmatch(rf"{STAMP} qingbo SubmitTask POST /qingbo/v1/tasks -> 429 clock=\S+ "
                        r"fault: rule 'third-submit-throttled' error rate_limited", line), line


def test_a_webhook_attempt_and_an_unknown_route_are_lines_too(server: Served) -> None:
    with WebhookReceiver() as receiver:
        callbacks = [{"url": receiver.url, "type": ["workflow:succeeded"]}]
        body = {**workflow(), "callbacks": callbacks}
        httpx.post(f"{server.base}{SUBMIT}", params={"wait": 60}, headers=AUTH, json=body).raise_for_status()
        line = server.wait_for(lambda text: " webhook " in text, "for the callback")
    assert re.fullmatch(rf"{STAMP} civitai webhook workflow:succeeded POST {re.escape(receiver.url)} -> 200 "
                        r"delivered attempt=1 task=\S+ clock=\S+", line), line
    httpx.get(f"{server.base}/no/such/route")
    assert re.fullmatch(rf"{STAMP} - - GET /no/such/route -> 404 clock=\S+",
                        server.wait_for(lambda text: "/no/such/route" in text, "for the 404"))


def test_json_lines_carry_the_same_facts_as_keys() -> None:
    with served("--port", "0", "--virtual-clock", "--autojump", "--log-format", "json") as server:
        httpx.post(f"{server.base}{SUBMIT}", headers=AUTH, json=workflow(aspectRatio="16:10"))
        submitted = httpx.post(f"{server.base}{SUBMIT}", params={"wait": 60}, headers=AUTH, json=workflow()).json()
        server.wait_for(lambda text: submitted["id"] in text, "for the submit")
        rejected, accepted = (json.loads(line) for line in server.log[:2])
    assert rejected["logger"] == ACCESS and rejected["level"] == "info"
    assert (rejected["provider"], rejected["operation"], rejected["status"]) == ("civitai", "SubmitWorkflow", 400)
    assert [(v["path"], v["rule"]) for v in rejected["violations"]] == [("steps[0].input.aspectRatio", "enum")]
    assert accepted["task_id"] == submitted["id"] and accepted["query"] == "wait=60"
    assert accepted["clock"] == "2026-01-01T00:00:00.000Z"
    assert rejected["message"].startswith("civitai SubmitWorkflow POST") and "time" in rejected


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answer_when_up(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60  # a bound on a hang, not a speed assertion
    while True:
        try:
            return httpx.get(url)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_quiet_prints_no_banner_no_log_no_goodbye() -> None:
    port = _free_port()
    with served("--port", str(port), "--quiet", banner=False) as server:
        assert _answer_when_up(f"http://127.0.0.1:{port}/qingbo/v1/tasks/x").status_code == 401
        out = server.stop()
    assert server.returncode == 0 and out == "" and server.log == []


def test_log_level_warning_keeps_the_banner_and_drops_the_access_lines() -> None:
    with served("--port", "0", "--log-level", "warning") as server:
        httpx.get(f"{server.base}/qingbo/v1/tasks/x")
        out = server.stop()
    assert "1 request(s) served" in out and server.log == []


# -- the same line whatever the transport, in-process ---------------------------------------------------------


def test_an_in_process_exchange_is_logged_like_a_served_one(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(clock=VirtualClock(autojump=True))
    sim.engine.journal.subscribe(AccessLog())

    async def exchange() -> None:
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://orchestration.civitai.com") as client:
            await client.post("/v2/consumer/workflows", headers=AUTH, json=workflow(aspectRatio="16:10"))

    with caplog.at_level(logging.INFO, logger=ACCESS):
        asyncio.run(exchange())
    [record] = caplog.records
    # The path as the client sent it: on the real host there is no /civitai prefix.
    assert record.getMessage().startswith("civitai SubmitWorkflow POST /v2/consumer/workflows -> 400 "
                                          "clock=2026-01-01T00:00:00.000Z rejected: steps[0].input.aspectRatio [enum]")
    assert record.fields["status"] == 400  # type: ignore[attr-defined]


def test_unsubscribing_stops_the_lines() -> None:
    sim = Simulator(clock=VirtualClock())
    access = AccessLog()
    unsubscribe = sim.engine.journal.subscribe(access)
    sim.engine.journal.record("http", 0.0)
    unsubscribe()
    sim.engine.journal.record("http", 0.0)
    assert access.requests == 1


def test_clock_text_is_the_clock_time_as_datetime_prints_it_to_the_millisecond() -> None:
    # The line's clock is worked out once a second plus the milliseconds: the same text as strftime, also where
    # the microseconds round up into the next millisecond, second or year.
    moments = [0.0, 1.0005, 1767225599.9999996, 1767225599.9995, 1767225600.0000004, 1767225600.123456,
               32503679999.999999, 1767225599.4999995, *(1767225600 + n / 7 for n in range(2000))]
    for t in moments:
        assert clock_text(t) == to_datetime(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", t


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_log_stamp_is_the_local_time_datetime_gives(fmt: str) -> None:
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    record = logging.makeLogRecord({"name": ACCESS, "msg": "a line", "levelno": logging.INFO, "levelname": "INFO"})
    for created in (1767225599.9999996, 1767225599.9995, 1767225600.25, *(1.7e9 + n / 3 for n in range(300))):
        record.created = created
        moment = datetime.fromtimestamp(created).astimezone()
        formatted = formatter.format(record)
        if fmt == "json":
            assert json.loads(formatted)["time"] == moment.isoformat(timespec="milliseconds")
        else:
            assert formatted == moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " a line"


def test_the_background_writer_writes_every_line_in_order_and_all_of_them_when_stopped() -> None:
    stream = io.StringIO()
    handler = configure("info", "text", stream, background=True)
    try:
        logger = logging.getLogger(ACCESS)
        for n in range(500):  # more than one batch: the writer wakes for the first and takes what follows
            logger.info("line %d", n)
            if n == 250:
                time.sleep(0.05)
    finally:
        assert isinstance(handler, _Handover)
        handler.stop()  # what happens at exit: nothing waiting is lost
        for name in (ROOT, "uvicorn"):
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [f"line {n}" for n in range(500)]


# -- progress of long work -----------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_short_work_stays_silent(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    with caplog.at_level(logging.INFO, logger=PROGRESS), Progress("render", total=4, clock=clock) as progress:
        for _ in range(4):
            clock.now += 0.1
            progress.advance()
    assert caplog.records == []


def test_long_work_reports_after_a_while_then_at_intervals_and_when_done(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    with caplog.at_level(logging.INFO, logger=PROGRESS), \
            Progress("render 4096x4096 PNG", total=10, unit="bands", after=2, every=5, clock=clock) as progress:
        for _ in range(10):
            clock.now += 1.5
            progress.advance()
    assert [record.getMessage() for record in caplog.records] == [
        "render 4096x4096 PNG: 2/10 bands (20%), 3.0 s",
        "render 4096x4096 PNG: 6/10 bands (60%), 9.0 s",
        "render 4096x4096 PNG: 10/10 bands (100%), 15.0 s",
        "render 4096x4096 PNG done: 10 bands in 15.0 s",
    ]
    assert caplog.records[-1].name == PROGRESS
    assert caplog.records[-1].fields == {  # type: ignore[attr-defined]
        "work": "render 4096x4096 PNG", "done": 10, "total": 10, "unit": "bands", "elapsed": 15.0, "finished": True,
    }


def test_announced_work_opens_and_closes_with_its_outcome(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    with caplog.at_level(logging.INFO, logger=PROGRESS), \
            Progress("render a 12288x1536 png placeholder", announce=True, clock=clock) as progress:
        clock.now += 0.4
        progress.outcome = "812345 bytes"
    assert [record.getMessage() for record in caplog.records] == [
        "render a 12288x1536 png placeholder...",
        "render a 12288x1536 png placeholder done in 0.4 s (812345 bytes)",
    ]


def test_announced_work_that_fails_says_what_stopped_it(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    with caplog.at_level(logging.INFO, logger=PROGRESS), pytest.raises(MemoryError), \
            Progress("render", announce=True, clock=clock) as progress:
        progress.outcome = "never shown"
        raise MemoryError
    assert caplog.records[-1].getMessage() == "render stopped by MemoryError in 0.0 s"

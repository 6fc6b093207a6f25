"""The validating proxy: forwards with the caller's key, checks both directions, journals as proxied, and says
what went wrong when the upstream answers badly (no test reaches a real provider)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from support_proxy import KEY, Session, poll, submit, upstream

from simulator.access_log import describe
from simulator.engine.journal import JournalEntry
from simulator.live import LiveServer
from simulator.proxy.cassette import load
from simulator.sim import Simulator


@pytest.fixture(scope="module")
def origin() -> Iterator[LiveServer]:
    with upstream() as server:
        yield server


def test_forwards_with_the_callers_key_and_journals_the_exchange_as_proxied(origin: LiveServer) -> None:
    with Session(origin, None) as session:
        task = submit()
        answer = session.tasks(task)
        assert answer.status_code == 200 and answer.json()["data"][0]["taskUUID"] == task["taskUUID"]
        seen = httpx.get(origin.url + "/_sim/journal", params={"provider": "runware"}).json()["entries"][-1]
        assert seen["request_headers"]["authorization"] == f"Bearer {KEY}"  # the key reached the provider
        entry = session.journal()[-1]
        assert entry["proxied"] == {"upstream": origin.url + "/runware", "blocked": False, "response": []}
        assert entry["request_headers"]["authorization"] == "<redacted>"  # and stays nowhere else
        assert KEY not in json.dumps(session.journal())
        line, fields = describe(JournalEntry(**{k: v for k, v in entry.items()}))
        assert f"proxied: {origin.url}/runware" in line and fields["proxied"]["blocked"] is False


def test_a_request_breaking_the_contract_is_reported_in_the_providers_words_and_forwarded(origin: LiveServer) -> None:
    with Session(origin, None) as session:
        answer = session.tasks(submit(model="google:4@3", numberResults=99))
        entry = session.journal()[-1]
        assert [v["path"] for v in entry["violations"]] == ["[0].numberResults"]
        assert answer.json().get("errors")  # the upstream's own refusal came back: it was forwarded
        assert len(httpx.get(origin.url + "/_sim/journal").json()["entries"]) >= 1


def test_block_invalid_refuses_before_the_request_leaves(origin: LiveServer) -> None:
    before = len(httpx.get(origin.url + "/_sim/journal").json()["entries"])
    with Session(origin, None, block_invalid=True) as session:
        answer = session.tasks(submit(numberResults=99))
        assert answer.status_code == 400
        error = answer.json()["errors"][0]
        assert error["parameter"] == "numberResults" and error["code"]  # Runware's own validation envelope
        assert session.journal()[-1]["proxied"]["blocked"] is True
    assert len(httpx.get(origin.url + "/_sim/journal").json()["entries"]) == before


def test_an_answer_outside_the_contract_is_the_upstreams_finding_not_a_simulator_bug() -> None:
    with upstream(rewrite=[(b'"taskType":"imageInference"', b'"taskType":"imageInference","queuePosition":3')]) \
            as drifting, Session(drifting, None) as session:
        answer = session.tasks(submit())
        assert answer.status_code == 200 and answer.json()["data"][0]["queuePosition"] == 3  # passed on untouched
        entry = session.journal()[-1]
        assert entry["self_check"] == []
        [finding] = entry["proxied"]["response"]
        assert "queuePosition" in json.dumps(finding)


async def _malformed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b'{"data": [' if scope["path"].endswith("/v1") else b"x" * (3 * 1024 * 1024)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def broken() -> Iterator[LiveServer]:
    with LiveServer(Simulator(providers=["runware"]), app=_malformed) as server:
        yield server


def test_malformed_and_oversized_answers_are_reported_never_a_500(broken: LiveServer, tmp_path: Path) -> None:
    with Session(broken, tmp_path / "c.jsonl") as session:
        session.relay.upstream.max_bytes = 1024 * 1024  # type: ignore[attr-defined]
        answer = session.tasks(submit())
        assert answer.status_code == 200 and answer.content == b'{"data": ['  # what the provider sent
        assert "not valid JSON" in json.dumps(session.journal()[-1]["proxied"]["response"])
        big = session.http.get("/image/ws/2/ii/x.jpg")
        assert big.status_code == 502 and "more than 1048576 bytes" in big.text
        assert big.json()["errors"][0]["code"] == "bad_gateway"
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["response"]["body"] == {"text": '{"data": ['}


GOOGLE = "AIzaSyD" + "k" * 32


async def _misbehaving(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that cuts its answer short, streams events that are not JSON, and sets secrets in headers."""
    if scope["type"] != "http":
        return
    case = scope["query_string"].decode()
    secrets = [(b"set-cookie", b"sid=" + GOOGLE.encode()), (b"x-api-key", GOOGLE.encode())]
    if case.startswith("cut"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b'{"data": [{"ta'})
        return
    body = b"data: {not json\r\n\r\ndata: [1]\r\n\r\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), *secrets]})
    await send({"type": "http.response.body", "body": body})


def test_a_cut_answer_is_a_502_and_a_stream_of_junk_passes_as_sent_with_no_secret_kept(tmp_path: Path) -> None:
    with LiveServer(Simulator(providers=["runware"]), app=_misbehaving) as misbehaving, \
            Session(misbehaving, tmp_path / "c.jsonl") as session:
        cut = session.tasks(submit(), params={"cut": ""})
        assert cut.status_code == 502 and "broke off its answer" in cut.json()["errors"][0]["message"]
        junk = session.tasks(submit(), params={"junk": ""})
        assert junk.status_code == 200 and junk.content == b"data: {not json\r\n\r\ndata: [1]\r\n\r\n"
    text = (tmp_path / "c.jsonl").read_text()
    assert GOOGLE not in text and "sid=" not in text
    [kept] = [line for line in load(tmp_path / "c.jsonl").exchanges if line["response"]["status"] == 200]
    assert kept["response"]["body"] == {"text": "data: {not json\r\n\r\ndata: [1]\r\n\r\n"}
    assert kept["response"]["headers"] == {"content-type": "text/event-stream"}


def test_an_unreachable_upstream_answers_502_in_the_providers_shape() -> None:
    sim = Simulator(providers=["runware"], default_provider="runware")
    from simulator import proxy

    proxy.proxy(sim, "runware", "http://127.0.0.1:9")
    with LiveServer(sim) as server:
        answer = httpx.post(server.url + "/v1", json=[poll("x")], headers={"Authorization": "Bearer k"})
    assert answer.status_code == 502 and "gave no answer" in answer.json()["errors"][0]["message"]


def test_the_access_log_marks_proxied_exchanges(origin: LiveServer) -> None:
    lines: list[str] = []
    with Session(origin, None) as session:
        session.sim.engine.journal.subscribe(lambda entry: lines.append(describe(entry)[0]))
        session.tasks(submit(numberResults=99))
        session.journal()  # the entry is journaled just after the answer went out: this request comes after it
    [line] = lines
    assert "proxied: " in line and "rejected: [0].numberResults" in line

"""Cassettes: a whole lifecycle recorded, secrets planted everywhere never reach the file, lint catches a planted one,
and replay answers on the clock however the client polls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support_proxy import KEY, LOOPBACK, PROMPT, Session, poll, run_lifecycle, submit, upstream

from simulator import proxy
from simulator.cli import main
from simulator.clock import VirtualClock
from simulator.live import LiveServer
from simulator.proxy.cassette import CassetteError, lint, load
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver

GOOGLE = "AIzaSyD" + "x" * 32
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
SK = "sk-" + "A1b2C3d4" * 4
HEX = "0123456789abcdef" * 3


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[tuple[float, str]]]]:
    path = tmp_path_factory.mktemp("cassettes") / "runware.jsonl"
    with upstream() as origin, Session(origin, path, hash_prompts=True, keep_images=True) as session:
        seen = run_lifecycle(session, session.advance, every=2.0)
    yield path, seen


def test_a_whole_lifecycle_is_recorded_with_its_header(recorded: tuple[Path, list[tuple[float, str]]]) -> None:
    path, seen = recorded
    cassette = load(path)
    assert cassette.header["provider"] == "runware" and cassette.header["redaction"]["prompts"] == "hashed"
    operations = [e["operation"] for e in cassette.exchanges]
    assert operations == ["Tasks"] * (len(seen) + 1) + ["DownloadImage", "Tasks"]
    assert [e["at"] for e in cassette.exchanges][:3] == [0.0, 2000.0, 4000.0]
    image = cassette.exchanges[-2]["response"]["body"]
    assert image["blob"].startswith("sha256:") and (cassette.blobs / image["blob"][7:]).is_file()
    assert PROMPT not in path.read_text() and lint(path) == []


def test_secrets_planted_in_headers_query_and_bodies_never_reach_the_cassette(tmp_path: Path) -> None:
    path = tmp_path / "planted.jsonl"
    echoed = f'"taskType":"imageInference","debug":"session {JWT} for {KEY}"'.encode()
    with upstream(rewrite=[(b'"taskType":"imageInference"', echoed)]) as origin, Session(origin, path) as session:
        session.tasks(submit(positivePrompt=f"use {GOOGLE} and {SK} then {JWT} or {HEX}"),
                      params={"key": GOOGLE, "sig": "abc", "ok": "1"},
                      headers={"x-goog-api-key": GOOGLE, "user-agent": f"client/1 token={SK}", "cookie": "s=1"})
    text = path.read_text()
    for secret in (KEY, GOOGLE, SK, JWT, HEX, "s=1"):
        assert secret not in text
    request = load(path).exchanges[0]["request"]
    assert request["query"] == {"key": ["<redacted>"], "sig": ["<redacted>"], "ok": ["1"]}
    assert "x-goog-api-key" not in request["headers"] and "authorization" not in request["headers"]
    answered = load(path).exchanges[0]["response"]["body"]["json"]["data"][0]["debug"]
    assert answered == "session <redacted:jwt> for <redacted>"  # the answer's direction is scrubbed too
    assert lint(path) == []


def test_cassette_lint_catches_a_secret_planted_by_hand(recorded: tuple[Path, list[tuple[float, str]]],
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = recorded
    assert main(["cassette", "lint", str(path)]) == 0
    planted = tmp_path / "planted.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"user-agent":"python-httpx', f'"user-agent":"{GOOGLE} python-httpx')
    planted.write_text("\n".join(lines) + "\n")
    assert main(["cassette", "lint", str(planted)]) == 1
    assert "line 2: google-api-key at $.request.headers.user-agent" in capsys.readouterr().out


def test_a_cassette_breaking_its_format_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "exchange"}\n')
    with pytest.raises(CassetteError, match=r"bad.jsonl:1: not a valid cassette file"):
        load(path)


def _replayed_states(path: Path, every: float) -> list[tuple[float, str]]:
    sim = Simulator(clock=VirtualClock(), providers=["runware"], default_provider="runware")
    proxy.replay(sim, path)
    with LiveServer(sim) as server:
        http = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer another-key"})
        task = submit()
        assert http.post("/v1", json=[task]).json()["data"][0]["taskUUID"] == task["taskUUID"]
        seen = []
        for step in range(1, int(40 / every) + 1):
            LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": every})
            item = http.post("/v1", json=[poll(task["taskUUID"])]).json()["data"][0]
            assert item["taskUUID"] == task["taskUUID"]  # the live id, not the recorded one
            seen.append((step * every, item.get("status", "success")))
            if item.get("status") is None:
                assert http.get(item["imageURL"]).content[:2] == b"\xff\xd8"  # the recorded JPEG
                break
    return seen


def test_replay_reaches_each_state_at_its_recorded_offset_however_the_client_polls(
        recorded: tuple[Path, list[tuple[float, str]]]) -> None:
    path, seen = recorded
    done_at = next(at for at, status in seen if status == "success")
    for every in (1.0, 5.0):
        states = _replayed_states(path, every)
        for at, status in states:
            assert status == ("success" if at >= done_at else "processing"), (every, states)
        assert states[-1][1] == "success"


def test_a_request_matching_nothing_names_the_field_where_it_differs(
        recorded: tuple[Path, list[tuple[float, str]]]) -> None:
    path, _ = recorded
    sim = Simulator(clock=VirtualClock(), providers=["runware"], default_provider="runware")
    proxy.replay(sim, path)
    with LiveServer(sim) as server:
        answer = httpx.post(server.url + "/v1", json=[submit(height=768, width=1376)],
                            headers={"Authorization": "Bearer k"})
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["code"] == "not_found"
        note = LOOPBACK.get(server.url + "/_sim/journal").json()["entries"][-1]["note"]
    assert "differs at body[0].height: recorded 1024, sent 768 (and 1 more)" in note


def test_callbacks_come_back_through_the_proxy_are_recorded_and_replayed_on_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "callbacks.jsonl"
    with upstream() as origin, Session(origin, path) as session, WebhookReceiver() as client:
        task = submit(webhookURL=client.url)
        assert session.tasks(task).status_code == 200
        for _ in range(30):
            session.advance(2)
            if client.bodies():
                break
        [delivered] = client.bodies()
        assert delivered["taskUUID"] == task["taskUUID"]  # Runware posts the flat task object
        assert session.journal()[-1]["proxied"]["callback"] is True
    cassette = load(path)
    [callback] = cassette.webhooks
    assert callback["to"] == client.url and callback["response"]["status"] == 200
    offset = (callback["at"] - cassette.exchanges[0]["at"]) / 1000

    sim = Simulator(clock=VirtualClock(), providers=["runware"], default_provider="runware")
    proxy.replay(sim, path)
    with LiveServer(sim) as server, WebhookReceiver() as replayed:
        live = submit(webhookURL=replayed.url)
        http = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"})
        assert http.post("/v1", json=[live]).status_code == 200
        LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": offset - 0.5})
        LOOPBACK.post(server.url + "/_sim/webhooks/flush")
        assert replayed.bodies() == []
        LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": 0.5})
        LOOPBACK.post(server.url + "/_sim/webhooks/flush")
        [again] = replayed.bodies()
    assert again["taskUUID"] == live["taskUUID"]  # the live id, in the recorded payload
    assert again["imageUUID"] == delivered["imageUUID"]

"""Cassettes: a whole lifecycle recorded, secrets planted everywhere never reach the file, lint catches a planted one,
and replay answers on the clock however the client polls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support_proxy import KEY, LOOPBACK, PROMPT, Session, poll, run_lifecycle, submit, upstream

from simulator import proxy
from simulator.cli import main
from simulator.clock import VirtualClock
from simulator.live import LiveServer
from simulator.proxy.cassette import CassetteError, lint, load
from simulator.proxy.redaction import Redactor, scan_value
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver

GOOGLE = "AIzaSyD" + "x" * 32
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
SK = "sk-" + "A1b2C3d4" * 4
HEX = "0123456789abcdef" * 3
GEMINI = "gemini-3.1-flash-image-preview"
GENERATE = {"contents": [{"parts": [{"text": PROMPT}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}


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


def test_inline_base64_content_is_kept_whole_while_keys_in_text_are_not() -> None:
    # A Gemini image inlined as base64 holds key-shaped runs by chance (~2 % per megabyte): content, not a key.
    image = "iVBORw0KGgo" + "A" * 600 + GOOGLE + "/+" + "B" * 600 + "=="
    oauth = "ya29.a0AfB_byC" + "x" * 40
    body = {"inlineData": {"data": image}, "note": f"key {GOOGLE} and token {oauth}"}
    kept = Redactor().value(body)
    assert kept["inlineData"]["data"] == image and scan_value({"data": image}) == []
    assert kept["note"] == "key <redacted:google-api-key> and token <redacted:google-oauth>"


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


def _replayed(path: Path, every: float) -> list[tuple[float, dict[str, Any]]]:
    """Each poll's answer by clock seconds since the submit (the live task id and base URL put in words)."""
    sim = Simulator(clock=VirtualClock(), providers=["runware"], default_provider="runware")
    proxy.replay(sim, path)
    with LiveServer(sim) as server:
        http = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer another-key"})
        task = submit()
        assert http.post("/v1", json=[task]).json()["data"][0]["taskUUID"] == task["taskUUID"]
        seen, downloaded = [], False
        for step in range(1, int(40 / every) + 1):
            LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": every})
            item = http.post("/v1", json=[poll(task["taskUUID"])]).json()["data"][0]
            assert item["taskUUID"] == task["taskUUID"]  # the live id, not the recorded one
            seen.append((step * every, json.loads(json.dumps(item).replace(task["taskUUID"], "<the task>")
                                                  .replace(server.url, "<base URL>"))))
            if item["status"] == "success" and not downloaded:
                downloaded = True
                assert http.get(item["imageURL"]).content[:2] == b"\xff\xd8"  # the recorded JPEG
    return seen


def test_replay_reaches_each_state_at_its_recorded_offset_however_the_client_polls(
        recorded: tuple[Path, list[tuple[float, str]]]) -> None:
    path, seen = recorded
    done_at = next(at for at, status in seen if status == "success")
    rhythms = {every: dict(_replayed(path, every)) for every in (1.0, 5.0)}
    for every, answers in rhythms.items():
        for at, item in answers.items():
            assert item["status"] == ("success" if at >= done_at else "processing"), (every, at)
    # At every moment both clients asked (5 s to 40 s, before and after the task ended), the very same answer.
    shared = sorted(set(rhythms[1.0]) & set(rhythms[5.0]))
    assert len(shared) == 8 and {item["status"] for item in rhythms[5.0].values()} == {"processing", "success"}
    assert all(rhythms[1.0][at] == rhythms[5.0][at] for at in shared)


def _gemini_cassette(path: Path, took: float) -> Path:
    """One generateContent recorded through the proxy, as if the provider had taken `took` seconds over it."""
    with upstream(provider="gemini", autojump=True) as origin, Session(origin, path, provider="gemini") as session:
        assert session.http.post(f"/v1beta/models/{GEMINI}:generateContent", json=GENERATE).status_code == 200
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[1]["took"] = took * 1000
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def _ask_replay(path: Path, clock: VirtualClock, advance: list[float]) -> tuple[list[bool], float]:
    """Replay's answer to the recorded request, the clock moved by each of `advance` in turn while it is due;
    returns whether the answer had come after each move, and the clock seconds it took."""
    sim = Simulator(clock=clock, providers=["gemini"], default_provider="gemini")
    proxy.replay(sim, path)
    start = clock.now()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://replay") as http:
        asked = asyncio.ensure_future(http.post(f"/gemini/v1beta/models/{GEMINI}:generateContent", json=GENERATE,
                                                headers={"x-goog-api-key": "k"}))
        answered = []
        for seconds in advance:
            for _ in range(20):  # let the request reach the replay and wait on the clock (no time passes)
                await asyncio.sleep(0)
            await clock.advance(seconds)
            for _ in range(20):
                await asyncio.sleep(0)
            answered.append(asked.done())
        response = await asked
    assert response.status_code == 200 and response.json()["candidates"]
    return answered, clock.now() - start


def test_a_sync_answer_arrives_after_its_recorded_duration_on_the_clock(tmp_path: Path) -> None:
    path = _gemini_cassette(tmp_path / "sync.jsonl", took=12.0)
    # A manual clock: nothing comes before 12 clock seconds have passed, then the answer does.
    answered, _ = asyncio.run(_ask_replay(path, VirtualClock(), [6.0, 5.9, 0.1]))
    assert answered == [False, False, True]
    # An autojump clock: the answer comes at once in wall time, 12 seconds later on the clock.
    assert asyncio.run(_ask_replay(path, VirtualClock(autojump=True), []))[1] == pytest.approx(12.0)
    # A quick answer (a network round trip, under replay.SYNC_FLOOR) is not held up on a manual clock.
    quick = _gemini_cassette(tmp_path / "quick.jsonl", took=0.4)
    assert asyncio.run(_ask_replay(quick, VirtualClock(), []))[1] == 0.0


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

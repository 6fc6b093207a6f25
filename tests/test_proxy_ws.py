"""Runware's WebSocket API through the proxy, over real sockets: each frame checked and relayed, the provider's
frames (results as each image is ready) checked as its own, all of it recorded redacted (the `authentication`
task's key too), and a replay that answers a fresh connection from the cassette on the simulator's clock."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from support_proxy import KEY, LOOPBACK, Session, upstream
from support_runware import task
from websockets.asyncio.client import ClientConnection, connect

from simulator import proxy
from simulator.clock import VirtualClock
from simulator.live import LiveServer
from simulator.proxy.cassette import lint, load
from simulator.proxy.drift import report
from simulator.sim import Simulator

QUEUE = 30.0  # clock seconds the generation takes upstream (advanced by hand: both clocks in lockstep)


async def _frame(socket: ClientConnection) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return reply


async def _session(url: str, key: str, job: dict[str, Any], refused: dict[str, Any], advance: Any
                   ) -> list[dict[str, Any]]:
    """Authenticate, generate two images (their frames once the clock has moved QUEUE seconds), send a frame the
    provider refuses; every frame the client received, in order."""
    async with connect(url.replace("http://", "ws://") + "/v1") as socket:
        await socket.send(json.dumps([{"taskType": "authentication", "apiKey": key}]))
        seen = [await _frame(socket)]
        await socket.send(json.dumps([job]))
        advance(QUEUE)
        seen += [await _frame(socket), await _frame(socket)]
        await socket.send(json.dumps([refused]))
        seen.append(await _frame(socket))
    return seen


def test_a_websocket_session_is_relayed_recorded_redacted_and_replayed_on_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "ws.jsonl"
    job, refused = task(numberResults=2, outputType="URL"), task(numberResults=99)
    with upstream() as origin, Session(origin, path, keep_images=True) as session:
        proxied = session.url
        recorded = asyncio.run(_session(session.url, KEY, job, refused, session.advance))
        assert recorded[0]["data"][0]["taskType"] == "authentication"
        images = [frame["data"][0] for frame in recorded[1:3]]
        assert {image["taskUUID"] for image in images} == {job["taskUUID"]}
        assert all(image["imageURL"].startswith(session.url) for image in images)  # links come back through us
        picture = httpx.get(images[0]["imageURL"]).content
        assert recorded[3]["errors"][0]["parameter"] == "numberResults"  # the provider's own refusal, relayed
        journal = [e for e in session.journal() if e["kind"] == "ws"]
        assert [e["method"] for e in journal] == ["WS", "PUSH", "WS", "PUSH", "PUSH", "WS", "PUSH"]
        assert all(e["proxied"]["upstream"] == origin.url + "/runware" for e in journal)
        assert all(e["proxied"]["response"] == [] and e["self_check"] == [] for e in journal)
        assert [v["path"] for v in journal[-2]["violations"]] == ["[0].numberResults"]  # checked before it left
        assert KEY not in json.dumps(session.journal())

    cassette = load(path)
    frames = cassette.frames
    assert [(f["direction"], f["connection"]) for f in frames] == [
        ("sent", 1), ("received", 1), ("sent", 1), ("received", 1), ("received", 1), ("sent", 1), ("received", 1)]
    assert frames[0]["body"]["json"] == [{"taskType": "authentication", "apiKey": "<redacted>"}]
    assert frames[3]["at"] - frames[2]["at"] == QUEUE * 1000  # on the proxy's clock
    assert KEY not in path.read_text() and lint(path) == []
    # The provider's frames against the documented contract: none broken; one a provider renamed, reported there.
    assert report([path])["findings"] == []
    drifted = tmp_path / "drifted.jsonl"
    drifted.write_text(path.read_text().replace('"imageURL"', '"imageUrl"'))
    found = report([drifted])["findings"]
    assert found and {f["exchanges"][0] for f in found} == {frames[3]["seq"]}
    assert all("imageUrl" in json.dumps(f) or "imageURL" in json.dumps(f) for f in found)

    sim = Simulator(clock=VirtualClock(), providers=["runware"], default_provider="runware")
    player = proxy.replay(sim, path)
    with LiveServer(sim) as server:
        again, refused_again = task(numberResults=2, outputType="URL"), task(numberResults=99)

        def advance(seconds: float) -> None:
            LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": seconds - 0.5})
            pushed = [e for e in LOOPBACK.get(server.url + "/_sim/journal").json()["entries"] if e["method"] == "PUSH"]
            assert len(pushed) == 1  # only the authentication's answer: the images are not due yet
            LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": 0.5})

        replayed = asyncio.run(_session(server.url, "another-key", again, refused_again, advance))
        # The same frames, but for the live task id, our base URL and the links' signatures (no cassette keeps one).
        expected = json.loads(re.sub(r"signature=[^\"&]+", "signature=<redacted>", json.dumps(recorded).replace(
            job["taskUUID"], again["taskUUID"]).replace(refused["taskUUID"], refused_again["taskUUID"])
            .replace(proxied, server.url)))
        assert replayed == expected
        assert httpx.get(replayed[1]["data"][0]["imageURL"]).content == picture
    assert player.unplayed() == []


def test_a_frame_the_proxy_refuses_itself_is_not_recorded_as_the_providers(tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"

    async def binary(url: str) -> dict[str, Any]:
        async with connect(url.replace("http://", "ws://") + "/v1") as socket:
            await socket.send(b"\x00\x01")
            return await _frame(socket)

    with upstream() as origin, Session(origin, path) as session:
        refused = asyncio.run(binary(session.url))
        assert "binary frame" in refused["errors"][0]["message"]
        assert origin.url not in json.dumps(session.journal())  # nothing went upstream
    assert load(path).frames == []

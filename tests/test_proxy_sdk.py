"""The official Runware SDK (runware-sdk, REST), unchanged but for its base URL, records through the proxy and
replays from the cassette with the same results."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support_proxy import Session, upstream
from support_runware import SDK_VERSION, sdk_run

from simulator import proxy
from simulator.clock import VirtualClock
from simulator.live import LiveServer
from simulator.proxy.cassette import lint, load
from simulator.sim import Simulator

pytestmark = pytest.mark.skipif(SDK_VERSION is None, reason="the runware-sdk distribution is not installed")

NB2 = {"taskType": "imageInference", "model": "google:4@3", "positivePrompt": "a ripe banana on a desk",
       "width": 1376, "height": 768, "deliveryMethod": "sync", "outputFormat": "PNG"}
SDK_KEY = "rw-sdk-proxy-key-42"


def test_the_sdk_records_through_the_proxy_and_replays_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sdk.jsonl"
    with upstream(autojump=True) as origin, Session(origin, path, keep_images=True) as session:
        recorded = sdk_run(session.server, NB2, SDK_KEY)
        picture = httpx.get(recorded[0]["imageURL"])
        assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
    cassette = load(path)
    assert [e["operation"] for e in cassette.exchanges] == ["Tasks", "DownloadImage"]
    assert cassette.exchanges[0]["request"]["headers"]["user-agent"].startswith("runware-python/")
    assert SDK_KEY not in path.read_text() and lint(path) == []

    sim = Simulator(clock=VirtualClock(), providers=["runware"])
    player = proxy.replay(sim, path)
    with LiveServer(sim) as server:
        replayed = sdk_run(server, NB2, "another-key")
        assert httpx.get(replayed[0]["imageURL"]).content == picture.content
    assert [r["imageUUID"] for r in replayed] == [r["imageUUID"] for r in recorded]
    assert replayed[0]["taskUUID"] != recorded[0]["taskUUID"]  # the SDK's fresh id, answered as its own
    assert player.unplayed() == []

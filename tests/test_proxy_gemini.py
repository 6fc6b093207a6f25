"""The official google-genai SDK, unchanged but for its base URL, records through `nanobanana-sim proxy` (in front
of a second simulator process) and replays from the cassette alone: the same images (by hash), the same text, a
streamed answer event by event. Google keys travel in `x-goog-api-key` or `?key=`: neither reaches the cassette."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support_cli import Served, served
from support_envs import EnvironmentUnavailable

from simulator.cli import main
from simulator.proxy.cassette import lint, load

sys.path.insert(0, str(Path(__file__).parent / "sdk"))
from drivers import python_sdk, run_python

GOOGLE_KEY = "AIzaSyB" + "q7Zx9" * 6 + "k2"  # shaped like a real Google key, so the scanner would know it too
QUERY_KEY = "AIzaSyC" + "w3Rt8" * 6 + "p4"
MODEL = "gemini-3.1-flash-image-preview"


@pytest.fixture(scope="module")
def sdk() -> None:
    try:
        python_sdk()
    except EnvironmentUnavailable as exc:
        pytest.skip(f"google-genai could not be installed here: {exc}")


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"], json.dumps(result)[:2000]
    return result


def _images(result: dict[str, Any]) -> list[str]:
    return [part["sha256"] for part in result["parts"] if part.get("kind") == "image"]


def _session(base: str, key: str) -> dict[str, dict[str, Any]]:
    """A generated image, then a streamed one, as google-genai reports them."""
    return {scenario: _ok(run_python(base, scenario, api_key=key, seed=11)) for scenario in ("generate", "stream")}


@pytest.fixture(scope="module")
def recording(sdk: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], Served]]:
    path = tmp_path_factory.mktemp("gemini") / "gemini.jsonl"
    with served("--port", "0", "--virtual-clock", "--autojump", "--log-level", "warning") as origin, served(
            "--provider", "gemini", "--upstream", origin.base + "/gemini", "--record", str(path), "--port", "0",
            subcommand="proxy") as proxy:
        seen = _session(proxy.base, GOOGLE_KEY)
        # A key in the query string (`?key=`, as curl examples and some clients send it).
        listed = httpx.get(f"{proxy.base}/v1beta/models/{MODEL}", params={"key": QUERY_KEY})
        assert listed.status_code == 200 and listed.json()["name"] == f"models/{MODEL}"
        proxy.wait_for(lambda line: "GetModel GET" in line, "for the model read")
        yield path, seen, proxy


def test_google_genai_records_through_the_proxy_with_no_key_in_the_cassette(
        recording: tuple[Path, dict[str, Any], Served]) -> None:
    path, seen, proxy = recording
    assert _images(seen["generate"]) and _images(seen["stream"])
    assert seen["stream"]["events"] == 2  # the text, then the image: passed on as two events
    cassette = load(path)
    assert [e["operation"] for e in cassette.exchanges] == ["GenerateContent", "StreamGenerateContent", "GetModel"]
    generate, stream, model = cassette.exchanges
    assert generate["request"]["headers"]["user-agent"].startswith("google-genai-sdk/")
    assert [sorted(event) for event in stream["response"]["body"]["events"]][-1] == [
        "candidates", "modelVersion", "responseId", "usageMetadata"]  # kept as events, each a JSON value
    assert stream["checks"]["response"] == [] and generate["checks"]["response"] == []
    assert model["request"]["query"] == {"key": ["<redacted>"]}
    text = path.read_text()
    assert GOOGLE_KEY not in text and QUERY_KEY not in text and lint(path) == []
    assert not any(GOOGLE_KEY in line or QUERY_KEY in line for line in proxy.drain())  # nor the access log


def test_cassette_lint_catches_a_google_key_planted_by_hand(recording: tuple[Path, dict[str, Any], Served],
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = recording
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"query":{}', f'"query":{{"key":["{GOOGLE_KEY}"]}}', 1)
    planted = tmp_path / "planted.jsonl"
    planted.write_text("\n".join(lines) + "\n")
    assert main(["cassette", "lint", str(planted)]) == 1
    assert "line 2: google-api-key at $.request.query.key[0]" in capsys.readouterr().out


def test_google_genai_replays_the_same_images_and_text_with_no_upstream(
        recording: tuple[Path, dict[str, Any], Served]) -> None:
    path, seen, _ = recording
    with served("--replay", str(path), "--virtual-clock", "--autojump", "--port", "0") as replay:
        replayed = _session(replay.base, "another-key")
        journal = httpx.get(replay.base + "/_sim/journal").json()["entries"]
    assert replayed == seen  # every part, image hash, text, usage and response id
    assert [entry["note"].split(" (")[0] for entry in journal] == [
        "replayed cassette exchange #1", "replayed cassette exchange #2"]

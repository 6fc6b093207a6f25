"""`nanobanana-sim proxy` and `serve --replay` as users run them (subprocesses), `cassette lint` and `drift` through
the same `main`, against an upstream the test controls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from support_cli import served
from support_proxy import KEY, submit, upstream

from simulator.cli import main


def test_proxy_records_lint_passes_replay_answers_and_drift_is_clean(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cassette = tmp_path / "runware.jsonl"
    task = submit(deliveryMethod="sync")
    with upstream(autojump=True) as origin, served(
            "--provider", "runware", "--upstream", origin.url + "/runware", "--record", str(cassette),
            "--hash-prompts", "--port", "0", subcommand="proxy") as proxy:
        recorded = httpx.post(proxy.base + "/v1", json=[task], headers={"Authorization": f"Bearer {KEY}"})
        assert recorded.status_code == 200 and recorded.json()["data"][0]["imageURL"].startswith(proxy.base)
        line = proxy.wait_for(lambda text: "Tasks POST /v1" in text, "for the proxied request")
        assert f"proxied: {origin.url}/runware" in line and KEY not in line
    assert KEY not in cassette.read_text()
    assert main(["cassette", "lint", str(cassette)]) == 0

    with served("--replay", str(cassette), "--virtual-clock", "--port", "0") as replay:
        replayed = httpx.post(replay.base + "/v1", json=[task], headers={"Authorization": "Bearer other"})
        # The same answer, from our base URL, but for the link's signature, which no cassette keeps.
        expected = re.sub(r"signature=[^\"&]+", "signature=<redacted>", recorded.text.replace(proxy.base, replay.base))
        assert replayed.json() == json.loads(expected)

    assert main(["drift", "--format", "json", str(cassette)]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_proxy_without_a_provider_and_a_missing_cassette_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--upstream", "http://127.0.0.1:9"], environ={}) == 2
    assert "proxy needs --provider SLUG" in capsys.readouterr().err
    for args in (["drift", str(tmp_path / "none.jsonl")], ["cassette", "lint", str(tmp_path / "none.jsonl")]):
        assert main(args) == 2
        assert "none.jsonl: cannot read" in capsys.readouterr().err

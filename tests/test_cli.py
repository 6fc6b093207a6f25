"""`nanobanana-sim serve` as a user meets it: the banner's curl command works as printed."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from simulator.cli import build_parser, main


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0", "--speed", "1000", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip().startswith("-d "):
            break
    try:
        yield process, lines
    finally:
        process.terminate()
        process.wait(10)


def curl_command(lines: list[str]) -> str:
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
    return "\n".join(lines[start:])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_banner_curl_command_works_as_printed(served: tuple[subprocess.Popen[str], list[str]]) -> None:
    _, lines = served
    assert re.match(r"nanobanana-sim \S+ serving on http://127\.0\.0\.1:\d+$", lines[0])
    result = subprocess.run(["bash", "-c", curl_command(lines)], capture_output=True, text=True, timeout=60)
    workflow = json.loads(result.stdout)
    assert workflow["status"] == "succeeded"
    image = workflow["steps"][0]["output"]["images"][0]
    download = httpx.get(image["url"], follow_redirects=True, timeout=30)
    assert download.status_code == 200
    assert Image.open(io.BytesIO(download.content)).size == (1376, 768)


def test_unknown_option_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--option", "civitai.nope=1"]) == 2
    assert "no option 'nope'" in capsys.readouterr().err


def test_option_syntax_is_checked() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--option", "nodots"])


def test_an_unknown_scenario_is_reported_with_the_shipped_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--scenario", "no-such-thing"]) == 2
    error = capsys.readouterr().err
    assert "no-such-thing" in error and "chaos" in error


def test_serve_with_a_scenario_puts_it_in_force() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", "0", "--virtual-clock", "--seed", "7",
         "--scenario", "empty-wallet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        base = re.search(r"serving on (\S+)", process.stdout.readline())
        assert base is not None
        for line in process.stdout:  # the banner ends with the scenarios line
            if line.startswith("Scenarios in force"):
                assert "empty-wallet" in line
                break
        response = httpx.post(f"{base.group(1)}/crun/api/v1/client/job/CreateTask", headers={"x-api-key": "k"},
                              json={"model": "google/nano-banana", "input": {"prompt": "p"}})
        assert response.status_code == 402
    finally:
        process.terminate()
        process.wait(10)

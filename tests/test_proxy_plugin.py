"""The pytest plugin's recording and replay markers, as a user writes them (pytester, inline runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support_proxy import Session, run_lifecycle, upstream

from simulator.live import LiveServer
from simulator.proxy.cassette import load

pytest_plugins = ["pytester"]
RUN = ("-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning")

CLIENT = """
import uuid

import httpx
import pytest


def lifecycle(nanobanana, every):
    http = httpx.Client(base_url=nanobanana.base_url("runware"), headers=nanobanana.auth_headers("runware"))
    task = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": "google:4@3",
            "positivePrompt": "a lighthouse on a cliff at dusk", "width": 1024, "height": 1024,
            "deliveryMethod": "async"}
    assert http.post("/v1", json=[task]).status_code == 200
    for _ in range(100):
        nanobanana.advance(every)
        item = http.post("/v1", json=[{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()["data"][0]
        if item.get("status") == "success":
            assert http.get(item["imageURL"]).status_code == 200
            return nanobanana.elapsed()
    raise AssertionError("never done")
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[LiveServer]:
    with upstream(speed=2000) as server:  # its queue passes in milliseconds, on its own clock
        yield server


@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "runware.jsonl"
    with upstream() as origin, Session(origin, path, keep_images=True) as session:
        run_lifecycle(session, session.advance, every=2.0)
    return path


@pytest.mark.parametrize("mode", ["live", "inprocess"])
def test_a_replay_marker_answers_from_the_cassette_on_the_clock(pytester: pytest.Pytester, cassette: Path,
                                                                 mode: str) -> None:
    exchanges = load(cassette).exchanges
    done_at = next(e["at"] for e in exchanges if '"success"' in str(e["response"]["body"]).replace("'", '"')) / 1000
    pytester.makepyfile(CLIENT + f"""
@pytest.mark.nanobanana(provider="runware", replay={str(cassette)!r}, clock="virtual")
@pytest.mark.parametrize("every", [1.0, 6.0])
def test_replayed(nanobanana, every):
    done = lifecycle(nanobanana, every)
    assert all(e["note"].startswith("replayed cassette exchange #") for e in nanobanana.requests())
    assert done == -(-{done_at} // every) * every  # the first poll at or after the recorded moment


def test_the_simulator_is_back_after_a_replayed_test(nanobanana):
    lifecycle(nanobanana, 5.0)
    assert all(e["proxied"] is None for e in nanobanana.requests())
""")
    pytester.runpytest_inprocess(*RUN, f"--nanobanana-mode={mode}").assert_outcomes(passed=3)


def test_a_proxy_marker_records_in_process_without_a_port(pytester: pytest.Pytester, origin: LiveServer,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "recorded.jsonl"
    pytester.makepyfile(CLIENT + f"""
@pytest.mark.nanobanana(provider="runware", proxy={origin.url + '/runware'!r}, record={str(path)!r})
def test_recorded(nanobanana):
    assert nanobanana.base_url("runware").startswith("https://")
    lifecycle(nanobanana, 30.0)
    assert all(e["proxied"]["upstream"].endswith("/runware") for e in nanobanana.requests())
""")
    pytester.runpytest_inprocess(*RUN, "--nanobanana-mode=inprocess").assert_outcomes(passed=1)
    assert [e["operation"] for e in load(path).exchanges][-1] == "DownloadImage"


def test_marker_mistakes_are_reported_without_a_traceback(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(f"""
import pytest

@pytest.mark.nanobanana(provider="runware", replay={str(tmp_path / 'missing.jsonl')!r})
def test_missing(nanobanana):
    pass

@pytest.mark.nanobanana(proxy="http://127.0.0.1:9")
def test_no_provider(nanobanana):
    pass
""")
    result = pytester.runpytest_inprocess(*RUN)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*missing.jsonl: cannot read*", "*proxy needs provider=SLUG*"])

"""The drift report: sessions recorded through the proxy from upstreams that drift on purpose report exactly the
drift introduced, and an upstream that does not drift reports nothing (ids, timestamps and signatures differ in
every run and are never drift)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from conftest import nb2_body
from support_proxy import Session, run_lifecycle, submit, upstream

from simulator.cli import main
from simulator.options import provider_data
from simulator.providers import REGISTRY
from simulator.proxy.cassette import load
from simulator.proxy.drift import report
from simulator.testing.receiver import WebhookReceiver

DUPLICATE = {"match": {"provider": "runware"}, "do": {"webhook": "duplicate"}}
SLOW = {"match": {"provider": "runware"}, "do": {"task": "slow", "queue": {"distribution": "fixed", "seconds": 90}}}


def _recorded(tmp_path: Path, name: str, **drift: Any) -> Path:
    path = tmp_path / f"{name}.jsonl"
    with upstream(**drift) as origin, Session(origin, path, keep_images=True) as session:
        run_lifecycle(session, session.advance, every=3.0)
    return path


def _findings(tmp_path: Path, name: str, **drift: Any) -> list[dict[str, Any]]:
    return list(report([_recorded(tmp_path, name, **drift)])["findings"])


def _kinds(findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(f["kind"], f["location"]) for f in findings}


def test_an_upstream_that_keeps_the_contract_shows_no_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _findings(tmp_path, "same") == []
    assert main(["drift", str(tmp_path / "same.jsonl")]) == 0
    assert "no drift in 1 cassette(s)" in capsys.readouterr().out


def test_ids_seeds_timestamps_and_signatures_of_another_run_are_never_drift(tmp_path: Path) -> None:
    # Another seed: every id, seed, signature and queue time differs from the simulator's own run.
    assert _findings(tmp_path, "seeded", seed=7) == []


def test_a_renamed_field_is_reported_where_the_schema_documents_it(tmp_path: Path) -> None:
    findings = _findings(tmp_path, "renamed", rewrite=[(b'"imageURL"', b'"imageUrl"')])
    assert findings and all("imageURL" in json.dumps(f) or "imageUrl" in json.dumps(f) for f in findings)
    contract = [f for f in findings if f["side"] == "provider"]
    assert {f["kind"] for f in contract} == {"undocumented-field", "schema"}
    assert all(f["location"].startswith("response/envelope#") and "runware.ai/docs" in f["fact"] for f in contract)


def test_a_new_status_word_is_an_enum_and_a_lifecycle_drift(tmp_path: Path) -> None:
    findings = _findings(tmp_path, "status", rewrite=[(b'"processing"', b'"queued"')])
    assert {f["kind"] for f in findings} == {"enum", "lifecycle"}
    enum = next(f for f in findings if f["kind"] == "enum")
    assert enum["real"] == "queued" and enum["side"] == "provider" and "processing" in enum["fact"]
    lifecycle = next(f for f in findings if f["kind"] == "lifecycle")
    assert (lifecycle["real"], lifecycle["simulator"]) == (["queued", "success"], ["processing", "success"])


def test_a_different_error_body_is_an_error_shape_drift(tmp_path: Path) -> None:
    findings = _findings(tmp_path, "errors", options={"errors_with_empty_data": True})
    assert _kinds(findings) == {("error-shape", "body $.data")}
    assert findings[0]["real"] == "array" and findings[0]["simulator"] is None


def test_a_slower_queue_is_a_lifecycle_timing_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    findings = _findings(tmp_path, "slow", faults=[SLOW])
    assert _kinds(findings) == {("lifecycle", "timing: success")}
    assert findings[0]["severity"] == "warning" and findings[0]["real"] > 2 * findings[0]["simulator"]
    path = str(tmp_path / "slow.jsonl")
    assert main(["drift", path]) == 0 and main(["drift", "--strict", path]) == 1
    capsys.readouterr()
    assert main(["drift", "--format", "json", path]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["by_kind"] == {"lifecycle": 1}


def _callback_findings(tmp_path: Path, name: str, **drift: Any) -> list[dict[str, Any]]:
    path = tmp_path / f"{name}.jsonl"
    with upstream(**drift) as origin, Session(origin, path) as session, WebhookReceiver() as client:
        session.tasks(submit(webhookURL=client.url))
        for _ in range(30):
            session.advance(2)
        assert client.bodies()
    assert load(path).webhooks
    return list(report([path])["findings"])


def test_callbacks_in_the_documented_order_show_no_drift_and_a_duplicate_is_reported(tmp_path: Path) -> None:
    assert _callback_findings(tmp_path, "callbacks") == []
    duplicated = _callback_findings(tmp_path, "duplicated", faults=[DUPLICATE])
    assert _kinds(duplicated) == {("lifecycle", "callbacks")}
    assert len(duplicated[0]["real"]) == 2 * len(duplicated[0]["simulator"])


def test_a_refused_key_is_a_note_to_re_record_not_drift(tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"
    with upstream() as origin, Session(origin, path) as session:
        httpx.put(origin.url + "/_sim/auth/runware", json={"tokens": ["another-key"]}).raise_for_status()
        assert session.tasks(submit()).status_code == 401
    found = report([path])
    assert [(f["kind"], f["severity"], f["real"]) for f in found["findings"]] == [("preflight", "info", 401)]
    assert main(["drift", str(path)]) == 0


GEMINI = "gemini-3.1-flash-image-preview"
FOX = {"contents": [{"parts": [{"text": "A red fox"}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}
BATCH = {"batch": {"displayName": "drift", "inputConfig": {"requests": {"requests": [
    {"request": FOX, "metadata": {"key": "fox"}}]}}}}


def _civitai_workflow(session: Session) -> None:
    workflow = session.http.post("/v2/consumer/workflows", json=nb2_body()).json()
    for _ in range(60):
        session.advance(3)
        workflow = session.http.get(f"/v2/consumer/workflows/{workflow['id']}").json()
        if workflow["status"] == "succeeded":
            return
    raise AssertionError(workflow)


def _gemini_batch(session: Session) -> None:
    job = session.http.post(f"/v1beta/models/{GEMINI}:batchGenerateContent", json=BATCH).json()
    for _ in range(200):
        session.advance(5)
        job = session.http.get(f"/v1beta/{job['name']}").json()
        if job.get("done"):
            assert job["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
            return
    raise AssertionError(job)


LIFECYCLES = {  # provider: (a whole task, the word a drifting provider says instead, the word it no longer says)
    "civitai": (_civitai_workflow, "working", "processing"),  # workflow, step and job `status`
    "gemini": (_gemini_batch, "BATCH_STATE_ACTIVE", "BATCH_STATE_RUNNING"),  # a batch's `metadata.state` and `done`
}


@pytest.mark.parametrize("provider", sorted(LIFECYCLES))
def test_a_new_state_word_is_reported_wherever_the_provider_keeps_its_states(tmp_path: Path, provider: str) -> None:
    drive, new, old = LIFECYCLES[provider]
    found = {}
    for name, rewrite in (("same", None), ("drifted", [(f'"{old}"'.encode(), f'"{new}"'.encode())])):
        path = tmp_path / f"{name}.jsonl"
        with upstream(provider=provider, rewrite=rewrite) as origin, \
                Session(origin, path, provider=provider) as session:
            drive(session)
        found[name] = report([path])["findings"]
    assert found["same"] == []
    drifted = found["drifted"]
    assert {f["kind"] for f in drifted} == {"enum", "lifecycle"}
    assert all(f["real"] == new for f in drifted if f["kind"] == "enum")
    [lifecycle] = [f for f in drifted if f["kind"] == "lifecycle"]
    paths = provider_data(provider)["lifecycleStates"]["GetWorkflow" if provider == "civitai" else "GetBatch"]
    assert lifecycle["location"] == "states: " + ", ".join(paths)
    assert any(new in state for state in lifecycle["real"]) and any(old in state for state in lifecycle["simulator"])
    assert lifecycle["note"] == f"new state words: ['{new}']; vanished: ['{old}']"


def test_every_provider_says_where_its_lifecycle_words_are() -> None:
    for slug in REGISTRY:
        table = provider_data(slug)["lifecycleStates"]
        operations = set(provider_data(slug)["operations"]) | {"callbacks", "$comment"}
        assert set(table) <= operations, slug


def test_ci_gets_junit_and_only_the_drift_a_previous_report_did_not_have(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = (b'"processing"', b'"queued"')
    before = _recorded(tmp_path, "before", rewrite=[status])
    after = _recorded(tmp_path, "after", rewrite=[status, (b'"imageURL"', b'"imageUrl"')])  # re-recorded, moved on
    previous = tmp_path / "previous.json"
    assert main(["drift", "--format", "json", str(before)]) == 1
    previous.write_text(capsys.readouterr().out)
    assert main(["drift", "--baseline", str(previous), str(before)]) == 0
    assert f"no new drift in 1 cassette(s) (2 known from {previous}, not shown)" in capsys.readouterr().out

    xml = tmp_path / "drift.xml"
    assert main(["drift", "--format", "json", "--baseline", str(previous), "--junit", str(xml), str(after)]) == 1
    new = json.loads(capsys.readouterr().out)
    assert new["baseline"]["known"] == 2 and new["findings"]
    assert all("imageURL" in json.dumps(f) or "imageUrl" in json.dumps(f) for f in new["findings"])
    suite = ElementTree.parse(xml).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "after.jsonl"
    cases = suite.findall("testcase")
    assert [case.get("name", "").split(" ")[0] for case in cases] == [f"#{e['seq']}" for e in load(after).exchanges]
    failures = [failure for case in cases for failure in case.findall("failure")]
    errors = [f for f in new["findings"] if f["severity"] == "error"]
    assert sorted(failure.get("type", "") for failure in failures) == sorted(f["kind"] for f in errors)
    assert int(suite.get("failures", "0")) == len({f["exchanges"][0] for f in errors})
    outs = "".join(case.findtext("system-out") or "" for case in cases)
    assert "warning: undocumented-field" in outs  # a warning fails nothing unless --strict
    assert main(["drift", "--baseline", str(previous), "--junit", str(xml), "--strict", str(after)]) == 1
    capsys.readouterr()
    assert len(ElementTree.parse(xml).getroot().findall(".//failure")) == len(new["findings"])


def test_an_unreadable_baseline_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    assert main(["drift", "--baseline", str(junk), str(tmp_path / "none.jsonl")]) == 2
    assert "junk.json: not a JSON drift report" in capsys.readouterr().err

"""Google's API over HTTP, in what the SDK tests do not reach: hosts and prefixes, auth forms, proto JSON
spellings, the stream's two forms, the front end's HTML page, forced errors of every kind, task faults, the
Batch lifecycle and expiry on the clock, Files expiry and the upload protocol, and the retired `:predict`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import server_fixture

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.options import provider_data

server = server_fixture("gemini")
KEY = "gemini-test-key"
NB2 = "/v1beta/models/gemini-3.1-flash-image-preview"
BODY = {"contents": [{"parts": [{"text": "a banana"}]}]}


@pytest.fixture()
def api(server: LiveServer, control: ControlClient) -> Iterator[httpx.Client]:
    control.set_autojump(True)
    with httpx.Client(base_url=server.provider_url("gemini"), headers={"x-goog-api-key": KEY}, timeout=30) as client:
        yield client


def error_of(answer: httpx.Response, status: int, name: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert (error["code"], error["status"]) == (status, name)
    return error


def test_real_hosts_prefixes_and_the_query_key(server: LiveServer, control: ControlClient) -> None:
    control.set_autojump(True)
    for host, path in [("generativelanguage.googleapis.com", f"{NB2}:generateContent"),
                       ("europe-west9-aiplatform.googleapis.com",
                        "/v1/projects/p/locations/europe-west9/publishers/google/models/gemini-3-pro-image:generateContent"),
                       (None, f"/gemini/my/proxy{NB2}:generateContent?key=k")]:
        headers = {"host": host, "x-goog-api-key": KEY, "authorization": "Bearer t"} if host else {}
        answer = httpx.post(server.url + path, json=BODY, headers=headers, timeout=30)
        assert answer.status_code == 200, (host, answer.text)
    entry = control.journal()[-1]
    assert (entry["owner"], entry["path"]) == ("k", f"/gemini/my/proxy{NB2}:generateContent")


def test_an_unknown_url_is_the_front_ends_html_404(api: httpx.Client, control: ControlClient) -> None:
    answer = api.post("/v1beta/nothing", json=BODY)
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), answer.text
    assert "<title>Error 404 (Not Found)" in answer.text
    error_of(api.post("/v9/models/gemini-3-pro-image:generateContent", json=BODY), 404, "NOT_FOUND")
    control.set_options("gemini", front_end_html_errors=False)
    error_of(api.get("/v1beta/nothing"), 404, "NOT_FOUND")


def test_both_spellings_of_one_field_and_vertex_only_fields(api: httpx.Client, control: ControlClient) -> None:
    twice = {**BODY, "generationConfig": {"responseModalities": ["IMAGE"]},
             "generation_config": {"responseModalities": ["TEXT"]}}
    assert "Duplicate field" in error_of(api.post(f"{NB2}:generateContent", json=twice), 400,
                                         "INVALID_ARGUMENT")["message"]
    vertex_only = {**BODY, "generationConfig": {"imageConfig": {"personGeneration": "ALLOW_ADULT"}}}
    message = error_of(api.post(f"{NB2}:generateContent", json=vertex_only), 400, "INVALID_ARGUMENT")["message"]
    assert message.startswith('Invalid JSON payload received. Unknown name "personGeneration"')
    vertex = "/v1/publishers/google/models/gemini-3-pro-image:generateContent"
    assert api.post(vertex, json=vertex_only).status_code == 200
    control.set_options("gemini", duplicate_spellings="last_wins", vertex_fields_on_gemini_api="ignore")
    assert api.post(f"{NB2}:generateContent", json=twice).status_code == 200
    assert api.post(f"{NB2}:generateContent", json=vertex_only).status_code == 200


def test_the_stream_without_sse_is_one_array_and_single_is_one_event(api: httpx.Client,
                                                                     control: ControlClient) -> None:
    events = api.post(f"{NB2}:streamGenerateContent", json=BODY).json()
    assert [list(event["candidates"][0]) for event in events] == [["content", "index"],
                                                                  ["content", "finishReason", "index"]]
    control.set_options("gemini", stream_chunks="single")
    answer = api.post(f"{NB2}:streamGenerateContent", params={"alt": "sse"}, json=BODY)
    assert answer.text.count("data: ") == 1 and answer.text.endswith("\r\n\r\n")


@pytest.mark.parametrize("kind", sorted(k for k in provider_data("gemini")["faults"] if k != "$comment"))
def test_every_fault_kind_answers_as_the_table_says(api: httpx.Client, control: ControlClient, kind: str) -> None:
    spec = provider_data("gemini")["faults"][kind]
    control.add_faults({"match": {"provider": "gemini"}, "do": {"error": kind}})
    answer = api.post(f"{NB2}:generateContent", json=BODY)
    assert answer.status_code == spec["status"], answer.text
    if kind == "content_blocked":
        assert answer.json()["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    elif "html" in spec:
        assert answer.headers["content-type"].startswith("text/html")
    else:
        names = provider_data("gemini")["statusNames"]
        assert answer.json()["error"]["status"] == spec.get("status_name", names.get(str(spec["status"])))
    assert "retry-after" not in answer.headers
    assert control.tasks("gemini") == []


@pytest.mark.parametrize(("do", "status", "name"), [
    ({"task": "fail"}, 500, "INTERNAL"),
    ({"task": "expire", "after": 5}, 504, "DEADLINE_EXCEEDED"),
    ({"task": "never_finish"}, 504, "DEADLINE_EXCEEDED"),
])
def test_task_faults_on_a_call(api: httpx.Client, control: ControlClient, do: dict[str, Any], status: int,
                               name: str) -> None:
    control.add_faults({"match": {"provider": "gemini"}, "do": do})
    error_of(api.post(f"{NB2}:generateContent", json=BODY), status, name)
    assert control.balance("gemini", KEY) == 300.0  # a failed call is not billed


def test_a_partial_block_keeps_the_text_and_withholds_the_image(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults({"match": {"provider": "gemini"}, "do": {"task": "partial_block", "images": [0]}})
    candidate = api.post(f"{NB2}:generateContent", json=BODY).json()["candidates"][0]
    assert candidate["finishReason"] == "IMAGE_SAFETY"
    assert [part["text"] for part in candidate["content"]["parts"]]
    assert not any("inlineData" in part for part in candidate["content"]["parts"])


def test_a_batch_moves_through_its_states_on_the_clock(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(False)
    control.set_options("gemini", batch_seconds=[100, 100])
    batch = {"batch": {"inputConfig": {"requests": {"requests": [{"request": BODY, "metadata": {"key": "a"}}]}}}}
    created = api.post(f"{NB2}:batchGenerateContent", json=batch).json()
    name = created["name"]
    states = [created["metadata"]["state"]]
    for _ in range(12):
        control.advance(10)
        states.append(api.get(f"/v1beta/{name}").json()["metadata"]["state"])
    assert states[:2] == ["BATCH_STATE_PENDING"] * 2 and "BATCH_STATE_RUNNING" in states
    done = api.get(f"/v1beta/{name}").json()
    assert done["done"] is True and done["metadata"]["batchStats"] == {"requestCount": "1",
                                                                       "successfulRequestCount": "1"}
    assert done["response"]["inlinedResponses"]["inlinedResponses"][0]["metadata"] == {"key": "a"}
    error_of(api.post(f"/v1beta/{name}:cancel", json={}), 400, "FAILED_PRECONDITION")


def test_a_batch_that_never_finishes_expires(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(False)
    control.add_faults({"match": {"provider": "gemini"}, "do": {"task": "never_finish"}})
    batch = {"batch": {"inputConfig": {"requests": {"requests": [{"request": BODY}]}}}}
    name = api.post(f"{NB2}:batchGenerateContent", json=batch).json()["name"]
    control.advance(48 * 3600)
    assert api.get(f"/v1beta/{name}").json()["metadata"]["state"] == "BATCH_STATE_EXPIRED"


def test_files_expire_and_the_upload_protocol_is_checked(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(False)
    start = api.post("/upload/v1beta/files", headers={
        "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": "4", "x-goog-upload-header-content-type": "text/plain"})
    url = start.headers["x-goog-upload-url"]
    assert url.startswith(str(api.base_url).rstrip("/") + "/upload/v1beta/files?upload_id=")
    chunk = {"x-goog-upload-command": "upload, finalize"}
    error_of(httpx.post(url, content=b"abcd", headers={**chunk, "x-goog-upload-offset": "2"}), 400,
             "INVALID_ARGUMENT")
    assert httpx.post(url, content=b"ab", headers={"x-goog-upload-command": "upload",
                                                   "x-goog-upload-offset": "0"}).status_code == 200
    final = httpx.post(url, content=b"cd", headers={**chunk, "x-goog-upload-offset": "2"})
    assert final.headers["x-goog-upload-status"] == "final"
    name = final.json()["file"]["name"]
    assert api.get(f"/v1beta/{name}").status_code == 200
    control.advance(48 * 3600)
    error_of(api.get(f"/v1beta/{name}"), 403, "PERMISSION_DENIED")
    error_of(httpx.post(url, content=b"x", headers=chunk), 404, "NOT_FOUND")


def test_predict_is_retired_unless_the_legacy_option(api: httpx.Client, control: ControlClient) -> None:
    body = {"instances": [{"prompt": "a robot"}], "parameters": {"sampleCount": 2, "aspectRatio": "16:9"}}
    error_of(api.post("/v1beta/models/imagen-4.0-generate-001:predict", json=body), 404, "NOT_FOUND")
    control.set_options("gemini", imagen_predict="legacy")
    predictions = api.post("/v1beta/models/imagen-4.0-generate-001:predict", json=body).json()["predictions"]
    assert [sorted(p) for p in predictions] == [["bytesBase64Encoded", "mimeType"]] * 2
    assert json.loads(json.dumps(control.balance("gemini", KEY))) == pytest.approx(300 - 0.08)

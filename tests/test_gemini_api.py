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


@pytest.mark.parametrize(("do", "status", "name"), [
    ({"task": "fail"}, 500, "INTERNAL"),
    ({"task": "never_finish"}, 504, "DEADLINE_EXCEEDED"),
])
def test_an_error_after_the_stream_began_is_its_last_event(api: httpx.Client, control: ControlClient,
                                                           do: dict[str, Any], status: int, name: str) -> None:
    control.add_faults({"match": {"provider": "gemini"}, "do": do})
    answer = api.post(f"{NB2}:streamGenerateContent", params={"alt": "sse"}, json=BODY)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.count("data: ") == 1 and answer.text.endswith("\r\n\r\n"), answer.text
    error = json.loads(answer.text.removeprefix("data: "))["error"]
    assert (error["code"], error["status"]) == (status, name) and error["message"]
    assert control.balance("gemini", KEY) == 300.0  # nothing billed
    # Before the stream begins (a refusal at the door) the error is the HTTP status, as for every call.
    control.clear_faults()
    control.add_faults({"match": {"provider": "gemini"}, "when": {"times": 1}, "do": {"error": "rate_limited"}})
    error_of(api.post(f"{NB2}:streamGenerateContent", params={"alt": "sse"}, json=BODY), 429, "RESOURCE_EXHAUSTED")
    # The option for the HTTP status throughout, and the JSON-array form, which is sent whole.
    control.add_faults({"match": {"provider": "gemini"}, "do": do})
    error_of(api.post(f"{NB2}:streamGenerateContent", json=BODY), status, name)
    control.set_options("gemini", stream_errors="status")
    error_of(api.post(f"{NB2}:streamGenerateContent", params={"alt": "sse"}, json=BODY), status, name)


VERTEX_FORMS = ["/v1/publishers/google/models/gemini-3-pro-image:generateContent",
                "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-3-pro-image:generateContent"]


@pytest.mark.parametrize("path", VERTEX_FORMS, ids=["express", "project"])
def test_vertex_words_its_429_its_own_way_with_or_without_the_legacy_errors(api: httpx.Client,
                                                                             control: ControlClient, path: str) -> None:
    headers = {"authorization": "Bearer token"}
    control.add_faults({"match": {"provider": "gemini"}, "do": {"error": "rate_limited", "retry_after": 12.5}})
    answer = api.post(path, json=BODY, headers=headers)
    error = error_of(answer, 429, "RESOURCE_EXHAUSTED")
    assert "retry-after" not in answer.headers
    assert error["message"] == provider_data("gemini")["rateLimit"]["vertexMessage"]
    assert error["message"].startswith("Resource exhausted. Please try again later.")
    retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]
    assert "errors" not in error
    control.set_options("gemini", vertex_legacy_errors=True)
    legacy = error_of(api.post(path, json=BODY, headers=headers), 429, "RESOURCE_EXHAUSTED")
    assert legacy["errors"] == [{"message": legacy["message"], "domain": "global", "reason": "rateLimitExceeded"}]
    # The Gemini API's 429 is its own wording whatever the option says.
    gemini = error_of(api.post(f"{NB2}:generateContent", json=BODY), 429, "RESOURCE_EXHAUSTED")
    assert gemini["message"].startswith("You exceeded your current quota") and "errors" not in gemini
    assert gemini["message"].endswith("Please retry in 12.5s.")


def test_models_list_pages_with_google_s_next_page_token(api: httpx.Client) -> None:
    everything = api.get("/v1beta/models").json()
    assert "nextPageToken" not in everything
    names, token, pages = [], None, 0
    while True:
        page = api.get("/v1beta/models", params={"pageSize": 2, **({"pageToken": token} if token else {})}).json()
        assert len(page["models"]) <= 2
        names += [model["name"] for model in page["models"]]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    assert names == [model["name"] for model in everything["models"]] and pages == -(-len(names) // 2)
    error_of(api.get("/v1beta/models", params={"pageToken": "not-a-token"}), 400, "INVALID_ARGUMENT")

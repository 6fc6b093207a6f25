"""Google's three SDKs, unchanged but for their base URL, against a real `nanobanana-sim serve` on loopback.

google-genai 3.3.0 (sync and async), @google/genai 3.3.0 and @ai-sdk/google 4.0.x run in cached environments
(tests/sdk/drivers.py; versions in tests/sdk/gemini-sdks.json). The server runs on a virtual clock that jumps
to what a request waits for (`--autojump`) and moves 20 s per request (`--tick`), so generation and Batch
queues take no wall-clock time. Every answer is self-checked strictly against Google's schemas.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support_cli import Served, served
from support_envs import EnvironmentUnavailable

from simulator.control_client import ControlClient
from simulator.images import pixel_size

sys.path.insert(0, str(Path(__file__).parent / "sdk"))
from drivers import node_sdks, python_sdk, run_node, run_python

KEY = "sim-gemini-key"
NB2 = "gemini-3.1-flash-image-preview"


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served("--port", "0", "--virtual-clock", "--autojump", "--tick", "20", "--self-check", "strict",
                "--log-level", "warning") as running:
        yield running


@pytest.fixture()
def control(server: Served) -> Iterator[ControlClient]:
    client = ControlClient(server.base)
    client.reset()
    yield client
    client.close()


@pytest.fixture(scope="module")
def python() -> None:
    try:
        python_sdk()
    except EnvironmentUnavailable as exc:
        pytest.skip(f"google-genai could not be installed here: {exc}")


@pytest.fixture(scope="module")
def node() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    try:
        node_sdks()
    except EnvironmentUnavailable as exc:
        pytest.skip(f"the Node SDKs could not be installed here: {exc}")


def gemini(server: Served) -> str:
    return f"{server.base}/gemini"


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"], json.dumps(result)[:2000]
    return result


def images(result: dict[str, Any]) -> list[list[int]]:
    return [part["size"] for part in result["parts"] if part.get("kind") == "image" and not part["thought"]]


def last_entry(control: ControlClient, operation: str) -> dict[str, Any]:
    return [entry for entry in control.journal() if entry.get("operation") == operation][-1]


# -- google-genai (Python) ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("python")
@pytest.mark.parametrize("scenario", ["generate", "generate_async", "stream", "stream_async"])
def test_python_generates_an_image_of_the_exact_size(server: Served, control: ControlClient, scenario: str) -> None:
    result = ok(run_python(gemini(server), scenario, aspect_ratio="16:9", image_size="2K"))
    assert images(result) == [list(pixel_size("gemini-3.1-flash-image", "16:9", "2K"))]
    assert result["finish_reason"] == "STOP"
    assert result["usage"]["candidates_tokens_details"][0] == {"modality": "IMAGE", "token_count": 1680}
    assert all(part["signed"] for part in result["parts"])  # 3.1 Flash thinks: every answer part is signed
    if scenario.startswith("stream"):
        assert result["events"] == 2  # the text, then the image with finishReason and usage
        entry = last_entry(control, "StreamGenerateContent")
        assert [sorted(event) for event in entry["response_body"]["events"]][-1] == [
            "candidates", "modelVersion", "responseId", "usageMetadata"]
        assert entry["self_check"] == []


@pytest.mark.usefixtures("python")
def test_python_edit_follows_the_reference_images_ratio(server: Served, control: ControlClient) -> None:
    result = ok(run_python(gemini(server), "edit_inline"))  # a 64x48 reference: 4:3
    assert images(result) == [list(pixel_size("gemini-3.1-flash-image", "4:3", "1K"))]
    sent = last_entry(control, "GenerateContent")["request_body"]["contents"][0]["parts"][0]
    assert sent["inlineData"]["mime_type"] == "image/png"  # the SDK's own mixed spelling, taken as sent


@pytest.mark.usefixtures("python")
def test_python_uploads_a_file_and_uses_it_as_the_reference(server: Served, control: ControlClient) -> None:
    result = ok(run_python(gemini(server), "edit_with_file"))
    assert result["file"]["uri"].startswith(gemini(server) + "/v1beta/files/")
    assert result["file"]["state"] == "ACTIVE" and result["file"]["size_bytes"] > 0
    assert images(result) == [list(pixel_size("gemini-3.1-flash-image", "4:3", "1K"))]
    files = ok(run_python(gemini(server), "files"))
    assert files["listed"] == [files["uploaded"]["name"], result["file"]["name"]]
    assert files["after_delete"] == {"code": 403, "status": "PERMISSION_DENIED"}


@pytest.mark.usefixtures("python")
@pytest.mark.parametrize(("options", "message"), [
    ({"candidate_count": 2}, f"Multiple candidates is not enabled for models/{NB2}"),
    ({"model": "gemini-2.5-flash-image", "image_size": "4K"}, "Request contains an invalid argument."),
    ({"model": "gemini-9-image"}, "models/gemini-9-image is not found for API version v1beta"),
])
def test_python_bad_input_raises_client_error(server: Served, control: ControlClient, options: dict[str, Any],
                                              message: str) -> None:
    error = run_python(gemini(server), "generate", **options)["error"]
    assert error["type"] == "ClientError"
    assert error["code"] in (400, 404) and error["message"].startswith(message)
    assert control.tasks("gemini") == []


@pytest.mark.usefixtures("python")
def test_python_429_carries_retry_info_and_no_retry_after_header(server: Served, control: ControlClient) -> None:
    control.set_limits({"provider": "gemini", "requests": 1, "per": 60})
    ok(run_python(gemini(server), "generate"))
    error = run_python(gemini(server), "generate")["error"]
    assert (error["type"], error["code"], error["status"]) == ("ClientError", 429, "RESOURCE_EXHAUSTED")
    found = {d["@type"].rsplit(".", 1)[1]: d for d in error["details"]["error"]["details"]}
    assert set(found) == {"QuotaFailure", "Help", "RetryInfo"}
    assert found["RetryInfo"]["retryDelay"].endswith("s")
    assert found["QuotaFailure"]["violations"][0]["quotaValue"] == "1"
    refused = last_entry(control, "GenerateContent")
    assert refused["status"] == 429 and "retry-after" not in refused["response_headers"]


@pytest.mark.usefixtures("python")
@pytest.mark.parametrize("scenario", ["stream", "stream_async"])
def test_python_raises_its_server_error_on_an_error_event_mid_stream(server: Served, control: ControlClient,
                                                                      scenario: str) -> None:
    control.add_faults({"match": {"provider": "gemini"}, "do": {"task": "fail"}})
    error = run_python(gemini(server), scenario)["error"]
    assert (error["type"], error["code"], error["status"]) == ("ServerError", 500, "INTERNAL")
    assert error["message"].startswith("An internal error has occurred.")
    entry = last_entry(control, "StreamGenerateContent")
    assert entry["status"] == 200 and entry["response_body"]["events"][-1]["error"]["code"] == 500


@pytest.mark.usefixtures("python")
def test_python_pager_walks_models_list_page_by_page(server: Served, control: ControlClient) -> None:
    every = ok(run_python(gemini(server), "models_list", page_size=50))["names"]
    assert len(every) > 3 and len(set(every)) == len(every)
    assert ok(run_python(gemini(server), "models_list", page_size=2))["names"] == every
    lists = [entry for entry in control.journal() if entry.get("operation") == "ListModels"]
    assert len(lists) == 1 + -(-len(every) // 2)
    assert lists[-1]["query"]["pageToken"] and "nextPageToken" not in lists[-1]["response_body"]


@pytest.mark.usefixtures("python")
def test_python_empty_prepaid_credit_is_402(server: Served, control: ControlClient) -> None:
    control.set_balance("gemini", KEY, 0)
    error = run_python(gemini(server), "generate")["error"]
    assert (error["code"], error["status"]) == (402, "RESOURCE_EXHAUSTED")
    assert error["message"].startswith("Your prepayment credits are depleted.")


@pytest.mark.usefixtures("python")
def test_python_prompt_block_is_a_200_without_candidates(server: Served, control: ControlClient) -> None:
    control.set_moderation(["astronaut"])
    result = ok(run_python(gemini(server), "generate"))
    assert (result["candidates"], result["block_reason"], result["parts"]) == (None, "PROHIBITED_CONTENT", [])
    assert control.balance("gemini", KEY) == 300.0  # a blocked prompt is not billed


@pytest.mark.usefixtures("python")
@pytest.mark.parametrize("scenario", ["batch_inline", "batch_file"])
def test_python_batch_from_creation_to_results(server: Served, control: ControlClient, scenario: str) -> None:
    result = ok(run_python(gemini(server), scenario))
    assert (result["state"], result["done"]) == ("JOB_STATE_SUCCEEDED", True)
    keys = ["take-1", "take-2"] if scenario == "batch_inline" else ["line-1", "line-2"]
    assert [item["key"] for item in result["results"]] == keys
    assert all(images(item) == [[1024, 1024]] for item in result["results"])
    if scenario == "batch_inline":
        assert result["created_state"] == "JOB_STATE_PENDING"
    else:
        assert result["results_file"] == "files/batch-" + result["name"].removeprefix("batches/")


@pytest.mark.usefixtures("python")
def test_python_batch_cancel(server: Served, control: ControlClient) -> None:
    result = ok(run_python(gemini(server), "batch_cancel"))
    assert (result["state"], result["done"]) == ("JOB_STATE_CANCELLED", True)


@pytest.mark.usefixtures("python")
@pytest.mark.parametrize(("scenario", "path"), [
    ("vertex_express", "/gemini/v1/publishers/google/models/"),
    ("vertex_project", "/gemini/v1/projects/sim-project/locations/us-central1/publishers/google/models/"),
])
def test_python_vertex_modes(server: Served, control: ControlClient, scenario: str, path: str) -> None:
    result = ok(run_python(gemini(server), scenario))
    assert images(result) == [[1024, 1024]] and result["usage"]["traffic_type"] == "ON_DEMAND"
    entry = last_entry(control, "GenerateContent")
    assert entry["path"].startswith(path)
    assert entry["owner"] == ("sim-access-token" if scenario == "vertex_project" else KEY)


# -- @google/genai (JavaScript) ---------------------------------------------------------------------------


@pytest.mark.usefixtures("node")
@pytest.mark.parametrize("scenario", ["generate", "stream", "edit_with_file", "vertex_project"])
def test_js_generates(server: Served, control: ControlClient, scenario: str) -> None:
    result = ok(run_node("gemini_js.mjs", gemini(server), scenario, aspectRatio="3:2"))
    assert images(result) == [list(pixel_size("gemini-3.1-flash-image", "3:2", "1K"))]


@pytest.mark.usefixtures("node")
def test_js_raises_api_error_on_an_error_event_mid_stream(server: Served, control: ControlClient) -> None:
    control.add_faults({"match": {"provider": "gemini"}, "do": {"task": "fail"}})
    error = run_node("gemini_js.mjs", gemini(server), "stream")["error"]
    assert (error["name"], error["status"]) == ("ApiError", 500)
    assert error["message"].startswith('got status: INTERNAL. {"error":{"code":500,')


@pytest.mark.usefixtures("node")
def test_js_batch_and_its_error_on_a_429(server: Served, control: ControlClient) -> None:
    result = ok(run_node("gemini_js.mjs", gemini(server), "batch_inline"))
    assert result["state"] == "JOB_STATE_SUCCEEDED"
    assert [item["key"] for item in result["results"]] == ["take-1", "take-2"]
    control.add_faults({"match": {"provider": "gemini"}, "do": {"error": "rate_limited", "retry_after": 38.6}})
    error = run_node("gemini_js.mjs", gemini(server), "generate")["error"]
    assert (error["name"], error["status"]) == ("ApiError", 429)
    body = json.loads(error["message"])
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38.6s"} in body["error"]["details"]


# -- @ai-sdk/google (Vercel AI SDK) ---------------------------------------------------------------------------


@pytest.mark.usefixtures("node")
def test_ai_sdk_generate_image_and_text(server: Served, control: ControlClient) -> None:
    base = gemini(server) + "/v1beta"
    image = ok(run_node("ai_sdk_google.mjs", base, "generate_image", aspectRatio="9:16"))
    assert [item["size"] for item in image["images"]] == [list(pixel_size("gemini-3.1-flash-image", "9:16", "1K"))]
    text = ok(run_node("ai_sdk_google.mjs", base, "generate_text"))
    assert text["text"] and [item["size"] for item in text["files"]] == [[1024, 1024]]


@pytest.mark.usefixtures("node")
def test_ai_sdk_errors(server: Served, control: ControlClient) -> None:
    base = gemini(server) + "/v1beta"
    control.add_faults({"match": {"provider": "gemini"}, "do": {"error": "rate_limited", "retry_after": 5},
                        "when": {"times": 1}})
    limited = run_node("ai_sdk_google.mjs", base, "generate_image")["error"]
    assert (limited["statusCode"], limited["isRetryable"]) == (429, True)
    control.set_moderation(["astronaut"])
    blocked = run_node("ai_sdk_google.mjs", base, "generate_image")["error"]
    assert blocked["noImage"] is True

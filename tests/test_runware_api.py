"""Runware REST (`POST /v1`, an array of tasks) on the virtual clock: lifecycles, errors, images, callbacks.

Sources: seed 002 (Runware's Nano Banana 2 page) and the Runware dossier; the choices are in
schemas/runware/README.md.
"""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import httpx
import pytest
from conftest import provider_fixtures, receiver_fixture
from PIL import Image
from support_runware import SCHEMAS, envelope, sync_in_background, task

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.testing.receiver import WebhookReceiver

KEY = "rw-test-key"

server, provider_http, api = provider_fixtures("runware", client="api", headers={"Authorization": f"Bearer {KEY}"})
receiver = receiver_fixture()


def image_of(client: httpx.Client, url: str) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def png_data_uri(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def runtimes(control: ControlClient) -> list[float]:
    return sorted(t["timeline"]["finished_at"] for t in control.tasks("runware"))


# -- sync delivery -----------------------------------------------------------------------------------


def test_sync_request_waits_on_the_clock_and_returns_every_image(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    start = control.now()
    body = task(numberResults=3, includeCost=True, seed=42)
    response = api.post("/v1", json=[body])
    assert response.status_code == 200
    data = envelope(response)["data"]
    assert "errors" not in response.json()
    assert [item["taskUUID"] for item in data] == [body["taskUUID"]] * 3
    assert len({item["imageUUID"] for item in data}) == 3
    assert [item["seed"] for item in data] == [42, 43, 44]
    assert all(item["cost"] == 0.06895 and "status" not in item for item in data)
    # The answer comes when the slowest image is done: NB2 1K takes 8-20 s per image.
    finished = runtimes(control)
    assert control.now() == finished[-1]
    assert 8 <= finished[-1] - start <= 20
    for item in data:
        assert image_of(api, item["imageURL"]).size == (1024, 1024)


def test_sync_request_blocks_until_the_clock_moves(server: LiveServer, control: ControlClient) -> None:
    worker, results = sync_in_background(server, [task()], KEY)
    worker.join(0.3)
    assert worker.is_alive() and not results
    control.advance(25)
    worker.join(10)
    assert results[0].status_code == 200
    assert len(results[0].json()["data"]) == 1


def test_cost_only_with_include_cost_and_priced_by_tier_and_references(
    api: httpx.Client, control: ControlClient
) -> None:
    control.set_autojump(True)
    plain = api.post("/v1", json=[task()]).json()["data"][0]
    assert "cost" not in plain
    refs = [png_data_uri(300, 200)] * 3
    priced = api.post("/v1", json=[
        task(includeCost=True, width=None, height=None, resolution="4K"),
        task(includeCost=True, inputs={"referenceImages": refs}),
        task(includeCost=True, model="google:4@2", resolution="2K", width=None, height=None,
             inputs={"referenceImages": refs[:1]}),
        task(includeCost=True, model="google:4@1", width=1248, height=832),
    ]).json()["data"]
    assert [item["cost"] for item in priced] == [0.15295, 0.06979, 0.138, 0.039]


def test_grounded_search_is_free_per_seed_unless_the_surcharge_option_is_set(
    api: httpx.Client, control: ControlClient
) -> None:
    control.set_autojump(True)
    grounded = task(includeCost=True, providerSettings={"google": {"webSearch": True}})
    assert api.post("/v1", json=[grounded]).json()["data"][0]["cost"] == 0.06895
    control.set_options("runware", search_surcharge_usd=0.14)
    grounded["taskUUID"] = str(uuid.uuid4())
    assert api.post("/v1", json=[grounded]).json()["data"][0]["cost"] == 0.20895


# -- async delivery and getResponse ------------------------------------------------------------------


def test_async_acknowledges_then_get_response_shows_each_generation_as_it_finishes(
    api: httpx.Client, control: ControlClient
) -> None:
    body = task(deliveryMethod="async", numberResults=2)
    ack = api.post("/v1", json=[body])
    assert ack.status_code == 200
    assert envelope(ack) == {"data": [{"taskType": "imageInference", "taskUUID": body["taskUUID"]}]}
    poll = [{"taskType": "getResponse", "taskUUID": body["taskUUID"]}]
    first = envelope(api.post("/v1", json=poll))["data"]
    assert first == [{"taskType": "imageInference", "taskUUID": body["taskUUID"], "status": "processing"}] * 2
    early, late = runtimes(control)
    assert early < late
    control.advance_to(early)
    partial = envelope(api.post("/v1", json=poll))["data"]
    assert [item["status"] for item in partial] == ["success", "processing"] or \
        [item["status"] for item in partial] == ["processing", "success"]
    done = next(item for item in partial if item["status"] == "success")
    assert done["imageURL"] and done["imageUUID"]
    control.advance_to(late)
    final = envelope(api.post("/v1", json=poll))["data"]
    assert [item["status"] for item in final] == ["success", "success"]
    assert done in final  # the same image and URL on every poll


def test_pending_status_word_is_an_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("runware", processing_status_word="pending")
    body = task(deliveryMethod="async")
    api.post("/v1", json=[body])
    item = api.post("/v1", json=[{"taskType": "getResponse", "taskUUID": body["taskUUID"]}]).json()["data"][0]
    assert item["status"] == "pending"


def test_get_response_for_an_unknown_or_foreign_task_is_not_found(
    server: LiveServer, api: httpx.Client, control: ControlClient
) -> None:
    body = task(deliveryMethod="async")
    api.post("/v1", json=[body])
    unknown = api.post("/v1", json=[{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}])
    assert unknown.status_code == 404
    assert envelope(unknown)["errors"][0]["code"] == "taskFailedOrNotFound"
    other = httpx.post(server.url + "/runware/v1", headers={"Authorization": "Bearer someone-else"},
                       json=[{"taskType": "getResponse", "taskUUID": body["taskUUID"]}])
    assert other.status_code == 404


def test_a_reused_task_uuid_is_a_conflict(api: httpx.Client, control: ControlClient) -> None:
    body = task(deliveryMethod="async")
    assert api.post("/v1", json=[body]).status_code == 200
    again = api.post("/v1", json=[body])
    assert again.status_code == 400
    error = envelope(again)["errors"][0]
    assert (error["code"], error["parameter"], error["taskUUID"]) == ("conflictTaskUUID", "taskUUID", body["taskUUID"])


# -- auth --------------------------------------------------------------------------------------------


def test_missing_and_invalid_api_keys_are_401_authentication_errors(server: LiveServer, control: ControlClient) -> None:
    url = server.url + "/runware/v1"
    missing = httpx.post(url, json=[task()])
    assert missing.status_code == 401
    assert envelope(missing)["errors"][0]["code"] == "missingApiKey"
    control.set_tokens("runware", [KEY])
    invalid = httpx.post(url, json=[task()], headers={"Authorization": "Bearer nope"})
    assert invalid.status_code == 401
    error = envelope(invalid)["errors"][0]
    assert {k: error[k] for k in ("code", "parameter", "taskType")} == {
        "code": "invalidApiKey", "parameter": "apiKey", "taskType": "authentication"}
    assert error["message"].startswith("Invalid API key.")
    in_task = httpx.post(url, json=[{"taskType": "authentication", "apiKey": "nope"}, task()])
    assert in_task.status_code == 401


def test_a_leading_authentication_task_replaces_the_header(server: LiveServer, control: ControlClient) -> None:
    control.set_autojump(True)
    url = server.url + "/runware/v1"
    response = httpx.post(url, json=[{"taskType": "authentication", "apiKey": KEY}, task()], timeout=30)
    assert response.status_code == 200
    assert [item["taskType"] for item in envelope(response)["data"]] == ["imageInference"]
    assert control.journal(provider="runware")[-1]["owner"] == KEY
    control.set_options("runware", echo_authentication_task=True)
    echoed = httpx.post(url, json=[{"taskType": "authentication", "apiKey": KEY}, {"taskType": "ping"}])
    assert [item["taskType"] for item in envelope(echoed)["data"]] == ["authentication", "ping"]
    misplaced = httpx.post(url, json=[{"taskType": "ping"}, {"taskType": "authentication", "apiKey": KEY}],
                           headers={"Authorization": f"Bearer {KEY}"})
    assert envelope(misplaced)["errors"][0]["code"] == "invalidTaskOrder"


# -- batches, errors, credits, blocks ---------------------------------------------------------------


def test_a_batch_answers_each_task_on_its_own(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    good, bad = task(), task(outputQuality=10)
    response = api.post("/v1", json=[good, bad, {"taskType": "ping", "ping": True}])
    assert response.status_code == 200
    body = envelope(response)
    assert [item.get("taskUUID", item["taskType"]) for item in body["data"]] == [good["taskUUID"], "ping"]
    error = body["errors"][0]
    assert (error["code"], error["parameter"], error["taskUUID"]) == (
        "invalidOutputQuality", "outputQuality", bad["taskUUID"])
    assert (error["type"], error["min"], error["max"]) == ("integer", 20, 99)
    control.set_options("runware", partial_failure_status="first_error")
    assert api.post("/v1", json=[task(), task(outputQuality=10)]).status_code == 400
    only_bad = api.post("/v1", json=[task(outputQuality=100)])
    assert only_bad.status_code == 400 and "data" not in only_bad.json()
    control.set_options("runware", errors_with_empty_data=True)
    assert api.post("/v1", json=[task(outputQuality=100)]).json()["data"] == []


def test_an_empty_wallet_gives_402_insufficient_credits(api: httpx.Client, control: ControlClient) -> None:
    control.set_balance("runware", KEY, 0)
    body = task()
    response = api.post("/v1", json=[body])
    assert response.status_code == 402
    error = envelope(response)["errors"][0]
    assert (error["code"], error["taskUUID"]) == ("insufficientCredits", body["taskUUID"])
    assert control.tasks("runware") == []
    control.set_balance("runware", KEY, 1)
    control.set_autojump(True)
    assert api.post("/v1", json=[task(numberResults=2)]).status_code == 200
    assert control.balance("runware", KEY) == pytest.approx(1 - 2 * 0.06895)


def test_a_blocked_prompt_fails_its_task_only_and_is_not_charged(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    blocked = task(positivePrompt="a poster [sim:block]", numberResults=2)
    alone = api.post("/v1", json=[blocked])
    assert alone.status_code == 400
    errors = envelope(alone)["errors"]
    assert len(errors) == 1  # one error for the task, not one per image
    assert (errors[0]["code"], errors[0]["taskUUID"], errors[0]["taskType"]) == (
        "providerContentPolicyViolation", blocked["taskUUID"], "imageInference")
    assert control.balance("runware", KEY) == pytest.approx(1_000_000)
    mixed = api.post("/v1", json=[task(), task(positivePrompt="[sim:block] again")])
    assert mixed.status_code == 200
    body = envelope(mixed)
    assert (len(body["data"]), len(body["errors"])) == (1, 1)
    control.set_options("runware", block_error_code="promptBlocked")
    assert api.post("/v1", json=[task(positivePrompt="[sim:block]")]).json()["errors"][0]["code"] == "promptBlocked"


def test_a_blocked_async_task_shows_the_error_on_get_response_and_webhook(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    body = task(positivePrompt="[sim:block]", deliveryMethod="async", webhookURL=receiver.url_for("/hook"))
    api.post("/v1", json=[body])
    poll = [{"taskType": "getResponse", "taskUUID": body["taskUUID"]}]
    assert api.post("/v1", json=poll).json()["data"][0]["status"] == "processing"
    control.advance(30)
    failed = api.post("/v1", json=poll)
    error = envelope(failed)["errors"][0]
    assert (error["status"], error["code"]) == ("error", "providerContentPolicyViolation")
    posted = receiver.bodies()
    assert len(posted) == 1 and posted[0]["code"] == "providerContentPolicyViolation"
    assert SCHEMAS.validate("response/webhook", posted[0]).ok


def test_bad_bodies_and_routes_get_runware_errors(api: httpx.Client) -> None:
    for content in (b"not json", b'{"taskType": "ping"}', b"[]"):
        response = api.post("/v1", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert envelope(response)["errors"][0]["code"] == "invalidRequestBody"
    not_object = api.post("/v1", json=["ping"])
    assert envelope(not_object)["errors"][0]["code"] == "invalidTask"
    for response in (api.get("/v1"), api.post("/v2/tasks", json=[])):
        assert response.status_code == 404
        assert envelope(response)["errors"][0]["code"] == "notFound"


def test_ping_answers_pong(api: httpx.Client) -> None:
    response = api.post("/v1", json=[{"taskType": "ping", "ping": True}])
    assert envelope(response) == {"data": [{"taskType": "ping", "pong": True}]}


def test_unknown_parameters_can_be_ignored(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    body = task(negativePrompt="blurry", settings={"temperature": 0.5, "steps": 30})
    assert api.post("/v1", json=[body]).json()["errors"][0]["code"] == "unsupportedParameter"
    control.set_options("runware", unknown_parameters="ignore")
    body["taskUUID"] = str(uuid.uuid4())
    assert api.post("/v1", json=[body]).status_code == 200


def test_doc_version_limits_are_options(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    hot = task(settings={"temperature": 1.5}, seed=3_000_000_000)
    assert api.post("/v1", json=[hot]).json()["errors"][0]["code"] == "invalidTemperature"
    control.set_options("runware", temperature_maximum=2)
    assert api.post("/v1", json=[hot]).status_code == 200
    control.set_options("runware", seed_maximum=2147483647)
    hot["taskUUID"] = str(uuid.uuid4())
    assert api.post("/v1", json=[hot]).json()["errors"][0]["code"] == "invalidSeed"
    lone = task(width=None, height=None, resolution="2K")
    assert api.post("/v1", json=[lone]).status_code == 200
    control.set_options("runware", resolution_without_references="reject")
    lone["taskUUID"] = str(uuid.uuid4())
    assert api.post("/v1", json=[lone]).json()["errors"][0]["code"] == "missingReferenceImages"


# -- images: sizes, formats, output types, URLs -------------------------------------------------------


@pytest.mark.parametrize(("fields", "size"), [
    ({"width": 1264, "height": 848}, (1264, 848)),
    ({"width": None, "height": None, "resolution": "0.5K"}, (512, 512)),
    ({"width": 792, "height": 168}, (792, 168)),
    ({"width": 1536, "height": 192}, (1536, 192)),
    ({"width": None, "height": None, "resolution": "2K", "inputs": {"referenceImages": [png_data_uri(320, 180)]}},
     (2752, 1536)),
    ({"width": None, "height": None, "inputs": {"referenceImages": [png_data_uri(300, 400)]}}, (896, 1200)),
    ({"width": None, "height": None, "inputs": {"referenceImages": ["https://example.com/a.png"]}}, (1024, 1024)),
    ({"model": "google:4@2", "width": 1548, "height": 672}, (1584, 672)),
    ({"model": "google:4@1", "width": 1248, "height": 832}, (1248, 832)),
])
def test_output_sizes_follow_the_published_tables(
    api: httpx.Client, control: ControlClient, fields: dict[str, Any], size: tuple[int, int]
) -> None:
    control.set_autojump(True)
    item = api.post("/v1", json=[task(**fields)]).json()["data"][0]
    assert image_of(api, item["imageURL"]).size == size


def test_output_types_and_formats(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    png = api.post("/v1", json=[task(outputType="base64Data", outputFormat="PNG")]).json()["data"][0]
    assert set(png) >= {"imageBase64Data"} and "imageURL" not in png
    decoded = Image.open(io.BytesIO(base64.b64decode(png["imageBase64Data"])))
    assert (decoded.format, decoded.size) == ("PNG", (1024, 1024))
    webp = api.post("/v1", json=[task(outputType="dataURI", outputFormat="webp")]).json()["data"][0]
    header, _, payload = webp["imageDataURI"].partition(",")
    assert header == "data:image/webp;base64"
    assert Image.open(io.BytesIO(base64.b64decode(payload))).format == "WEBP"
    both = api.post("/v1", json=[task(outputType=["URL", "base64Data"])]).json()["data"][0]
    download = api.get(both["imageURL"])
    assert download.headers["content-type"] == "image/jpeg"
    assert download.content == base64.b64decode(both["imageBase64Data"])
    assert both["imageURL"].split("?")[0].endswith(f"/image/ws/2/ii/{both['imageUUID']}.jpg")


def test_image_urls_expire_after_ttl_and_refuse_tampering(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    short, default = api.post("/v1", json=[task(ttl=60), task()]).json()["data"]
    finished = max(runtimes(control))
    assert api.get(short["imageURL"]).status_code == 200
    assert api.get(short["imageURL"].replace("signature=", "signature=x")).status_code == 403
    control.set_autojump(False)
    control.advance_to(finished + 61)
    expired = api.get(short["imageURL"])
    assert expired.status_code == 403 and b"AccessDenied" in expired.content
    assert api.get(default["imageURL"]).status_code == 200
    control.advance(7 * 24 * 3600)
    assert api.get(default["imageURL"]).status_code == 403


def test_safety_check_adds_nsfw_content_flag(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    checked, legacy, plain = api.post("/v1", json=[
        task(safety={"checkContent": True}), task(checkNSFW=True), task()]).json()["data"]
    assert checked["NSFWContent"] is False and legacy["NSFWContent"] is False
    assert "NSFWContent" not in plain


def test_same_seed_same_answers(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    body = task(numberResults=2)
    first = api.post("/v1", json=[body]).json()
    control.reset(seed=0)
    control.set_autojump(True)
    assert api.post("/v1", json=[body]).json() == first
    assert all(0 <= item["seed"] < 2**32 for item in first["data"])


# -- callbacks ----------------------------------------------------------------------------------------


def test_webhook_posts_each_image_flat_and_retries_failures(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    receiver.script(500)
    body = task(numberResults=2, webhookURL=receiver.url_for("/hook?token=abc"), includeCost=True,
                deliveryMethod="async")
    api.post("/v1", json=[body])
    early, late = runtimes(control)
    control.advance_to(early)
    assert len(receiver.requests) == 1  # the first image, refused with 500
    control.advance(0.25)
    assert len(receiver.requests) == 2  # retried 250 ms later and accepted
    control.advance_to(late + 1)
    posted = receiver.bodies()
    assert [p["imageUUID"] for p in posted[1:]] == [posted[0]["imageUUID"], posted[2]["imageUUID"]]
    assert posted[1]["imageUUID"] != posted[2]["imageUUID"]
    for payload in posted:
        assert SCHEMAS.validate("response/webhook", payload).ok
        assert payload["taskUUID"] == body["taskUUID"] and payload["cost"] == 0.06895
    assert receiver.requests[0].path == "/hook?token=abc"
    attempts = control.journal(kind="webhook", provider="runware")
    assert [(a["status"], a["detail"]["outcome"]) for a in attempts] == [
        (500, "retrying"), (200, "delivered"), (200, "delivered")]


def test_upload_endpoint_gets_a_put_of_the_raw_image(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    body = task(outputFormat="PNG", uploadEndpoint=receiver.url_for("/bucket/a.png"), deliveryMethod="async")
    api.post("/v1", json=[body])
    control.advance(30)
    upload = receiver.requests[0]
    assert (upload.method, upload.path, upload.headers["content-type"]) == ("PUT", "/bucket/a.png",
                                                                                     "image/png")
    item = api.post("/v1", json=[{"taskType": "getResponse", "taskUUID": body["taskUUID"]}]).json()["data"][0]
    assert upload.body == api.get(item["imageURL"]).content
    assert control.journal(kind="webhook")[0]["request_body"] == {"bytes": len(upload.body)}


def test_webhooks_of_a_sync_request_are_delivered_under_autojump(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.set_autojump(True)
    api.post("/v1", json=[task(numberResults=2, webhookURL=receiver.url_for("/hook"))])
    control.flush_webhooks()
    assert len(receiver.requests) == 2


# -- hosts and journal -------------------------------------------------------------------------------


def test_served_at_the_root_for_the_real_host(server: LiveServer, control: ControlClient) -> None:
    response = httpx.post(server.url + "/v1", json=[{"taskType": "ping"}],
                          headers={"Host": "api.runware.ai", "Authorization": f"Bearer {KEY}"})
    assert response.json() == {"data": [{"taskType": "ping", "pong": True}]}
    entry = control.journal(provider="runware")[-1]
    assert (entry["operation"], entry["status"]) == ("Tasks", 200)
    control.set_autojump(True)
    item = httpx.post(server.url + "/v1", json=[task()], timeout=30,
                      headers={"Host": "api.runware.ai", "Authorization": f"Bearer {KEY}"}).json()["data"][0]
    path = item["imageURL"].split("api.runware.ai", 1)[1]
    assert path.startswith("/image/ws/2/ii/")
    image = httpx.get(server.url + path, headers={"Host": "im.runware.ai"})
    assert (image.status_code, image.headers["content-type"]) == (200, "image/jpeg")

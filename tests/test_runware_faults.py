"""Failure rehearsal on Runware: forced errors, rate limits, content blocks, partial blocks and upstream trouble,
each in Runware's own wire format (errors[] items scoped to tasks), on the virtual clock.

The choices are in schemas/runware/README.md, "Failure rehearsal".
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from conftest import provider_fixtures, receiver_fixture
from support_runware import SCHEMAS, SDK_VERSION, envelope, sdk_run, sync_in_background, task

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.testing.receiver import WebhookReceiver

KEY = "rw-fault-key"
FAULTS = provider_data("runware")["faults"]
NB2_PRICE = 0.06895
START_BALANCE = 1_000_000

server, provider_http, api = provider_fixtures("runware", client="api", headers={"Authorization": f"Bearer {KEY}"})
receiver = receiver_fixture()


def poll(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"taskType": "getResponse", "taskUUID": body["taskUUID"]}]


def only_error(response: httpx.Response) -> dict[str, Any]:
    body = envelope(response)
    assert "data" not in body and len(body["errors"]) == 1, body
    return body["errors"][0]


# Every request is operation Tasks (one route); a rule picks submits by the first task's type.
SUBMITS = {"provider": "runware", "operation": "Tasks", "body": {"0.taskType": "imageInference"}}


def on_submits(do: dict[str, Any], **when: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"match": SUBMITS, "do": do}
    return rule | ({"when": when} if when else {})


def wait_for_tasks(control: ControlClient, count: int) -> None:
    for _ in range(500):
        if len(control.tasks("runware")) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the sync request never reached the engine")


# -- forced errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_every_documented_error_kind_is_a_runware_error_item(
    api: httpx.Client, control: ControlClient, kind: str
) -> None:
    control.add_faults(on_submits({"error": kind}))
    body = task()
    response = api.post("/v1", json=[body])
    spec = FAULTS[kind]
    assert response.status_code == spec["status"]
    error = only_error(response)
    option = spec.get("codeOption")
    assert error["code"] == (control.options("runware")[option]["value"] if option else spec["code"])
    assert error["message"] == spec["message"]
    assert error.get("parameter") == spec.get("parameter")
    assert error.get("responseContent") == spec.get("responseContent")
    if spec.get("scope") == "authentication":
        # The errors page's key error: taskType authentication and no taskUUID.
        assert (error["taskType"], "taskUUID" in error) == ("authentication", False)
    else:
        assert (error["taskType"], error["taskUUID"]) == ("imageInference", body["taskUUID"])
    assert control.tasks("runware") == []
    assert control.balance("runware", KEY) == START_BALANCE
    [entry] = control.journal(provider="runware")
    assert (entry["operation"], entry["task_id"]) == ("Tasks", body["taskUUID"])
    assert entry["faults"][0]["do"] == {"error": kind}


def test_rule_values_and_raw_statuses_win_over_the_table(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(on_submits({"error": "server_error", "code": "modelUnavailable", "message": "down"}, times=1),
                       on_submits({"error": "http", "status": 418}, after=1, times=1))
    error = only_error(api.post("/v1", json=[task()]))
    assert (error["code"], error["message"]) == ("modelUnavailable", "down")
    teapot = api.post("/v1", json=[task()])
    assert teapot.status_code == 418 and only_error(teapot)["code"] == "unknownError"
    control.set_options("runware", block_error_code="promptBlocked", insufficient_credits_code="paymentRequired")
    control.add_faults(on_submits({"error": "content_blocked"}, times=1), on_submits({"error": "insufficient_credits"}))
    assert only_error(api.post("/v1", json=[task()]))["code"] == "promptBlocked"
    assert only_error(api.post("/v1", json=[task()]))["code"] == "paymentRequired"


def test_a_forced_error_answers_every_task_of_the_request(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(on_submits({"error": "service_unavailable"}))
    first, second = task(), task(model="google:4@2")
    response = api.post("/v1", json=[first, second, {"taskType": "ping", "ping": True}])
    assert response.status_code == 503
    errors = envelope(response)["errors"]
    assert [(e["code"], e["taskType"], e.get("taskUUID")) for e in errors] == [
        ("serviceUnavailable", "imageInference", first["taskUUID"]),
        ("serviceUnavailable", "imageInference", second["taskUUID"]),
        ("serviceUnavailable", "ping", None),
    ]
    # A ping on its own is not a submit: the rule does not match it.
    assert api.post("/v1", json=[{"taskType": "ping", "ping": True}]).status_code == 200


def test_rules_see_the_key_and_model_of_a_leading_authentication_task(
    server: LiveServer, control: ControlClient
) -> None:
    control.set_autojump(True)
    control.add_faults({"match": {"provider": "runware", "api_key": "key-b", "model": "google:4@2"},
                        "do": {"error": "forbidden"}})
    url = server.url + "/runware/v1"

    def send(key: str, model: str) -> int:
        auth = {"taskType": "authentication", "apiKey": key}
        return httpx.post(url, json=[auth, task(model=model)]).status_code

    assert (send("key-a", "google:4@2"), send("key-b", "google:4@3"), send("key-b", "google:4@2")) == (200, 200, 403)
    bearer = httpx.post(url, json=[task(model="google:4@2")], headers={"Authorization": "Bearer key-b"})
    assert bearer.status_code == 403 and only_error(bearer)["code"] == "forbidden"


def test_the_third_submit_gets_the_error(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    control.add_faults({"match": {"operation": "Tasks"}, "when": {"after": 2, "times": 1},
                        "do": {"error": "rate_limited", "retry_after": 2}})
    responses = [api.post("/v1", json=[task()]) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200]
    assert responses[2].headers["retry-after"] == "2"
    assert only_error(responses[2])["code"] == "rateLimitExceeded"


def test_a_rule_on_the_submit_task_type_skips_polls(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(on_submits({"error": "rate_limited", "retry_after": 2}, after=2, times=1))
    statuses = []
    for _ in range(4):
        body = task(deliveryMethod="async")
        statuses.append(api.post("/v1", json=[body]).status_code)
        statuses.append(api.post("/v1", json=poll(body)).status_code if statuses[-1] == 200 else None)
    assert statuses == [200, 200, 200, 200, 429, None, 200, 200]
    [rule] = control.faults()["rules"]
    assert (rule["matched"], rule["fired"]) == (4, 1)


# -- rate limits ---------------------------------------------------------------------------------------


def test_a_request_rate_limit_is_a_429_with_retry_after_and_recovers(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "runware", "requests": 2, "per": 10})
    body = task(deliveryMethod="async")
    assert api.post("/v1", json=[body]).status_code == 200
    control.advance(4)
    assert api.post("/v1", json=poll(body)).status_code == 200
    refused = api.post("/v1", json=poll(body))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "6"
    error = only_error(refused)
    assert (error["code"], error["taskType"], error["taskUUID"]) == ("rateLimitExceeded", "getResponse",
                                                                       body["taskUUID"])
    assert control.journal(provider="runware")[-1]["faults"][0]["retry_after"] == 6
    control.advance(6)
    assert api.post("/v1", json=poll(body)).status_code == 200


def test_a_concurrency_limit_refuses_submits_but_never_polls(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "runware", "concurrent": 2})
    first = task(deliveryMethod="async", numberResults=2)  # two generations in flight
    assert api.post("/v1", json=[first]).status_code == 200
    refused = api.post("/v1", json=[task(deliveryMethod="async")])
    assert refused.status_code == 429 and only_error(refused)["code"] == "rateLimitExceeded"
    wait = int(refused.headers["retry-after"])
    assert api.post("/v1", json=poll(first)).status_code == 200
    control.advance(wait)
    assert api.post("/v1", json=[task(deliveryMethod="async")]).status_code == 200


# -- content blocks ------------------------------------------------------------------------------------


def test_a_block_after_processing_fails_the_task_and_refunds_it(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(on_submits({"task": "block", "reason": "unsafe output"}))
    body = task(deliveryMethod="async", numberResults=2)
    api.post("/v1", json=[body])
    assert control.balance("runware", KEY) == pytest.approx(START_BALANCE - 2 * NB2_PRICE)
    assert [item["status"] for item in envelope(api.post("/v1", json=poll(body)))["data"]] == ["processing"] * 2
    control.advance(30)
    failed = api.post("/v1", json=poll(body))
    error = only_error(failed)
    assert failed.status_code == 400
    assert (error["code"], error["parameter"], error["status"], error["taskUUID"]) == (
        "providerContentPolicyViolation", "positivePrompt", "error", body["taskUUID"])
    assert error["message"].endswith("unsafe output")
    assert control.balance("runware", KEY) == pytest.approx(START_BALANCE)


def test_a_partial_block_reports_the_blocked_image_as_its_own_error(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.set_autojump(True)
    control.add_faults(on_submits({"task": "partial_block", "images": [1]}))
    body = task(numberResults=3, includeCost=True, webhookURL=receiver.url_for("/hook"))
    response = api.post("/v1", json=[body])
    assert response.status_code == 200
    answer = envelope(response)
    [error] = answer["errors"]
    assert len(answer["data"]) == 2
    assert (error["code"], error["taskUUID"], error["taskType"], "parameter" in error) == (
        "providerContentPolicyViolation", body["taskUUID"], "imageInference", False)
    images = {t["id"]: t for t in control.tasks("runware")}
    assert [t["outputs"][0]["blocked"] for t in images.values()] == [False, True, False]
    assert images[error["imageUUID"]]["outputs"][0]["blocked"]
    assert error["imageUUID"] not in {item["imageUUID"] for item in answer["data"]}
    # The blocked generation is not charged; the other two are.
    assert control.balance("runware", KEY) == pytest.approx(START_BALANCE - 2 * NB2_PRICE)
    polled = envelope(api.post("/v1", json=poll(body)))
    assert [item["status"] for item in polled["data"]] == ["success", "success"]
    assert [(e["status"], e["imageUUID"]) for e in polled["errors"]] == [("error", error["imageUUID"])]
    control.flush_webhooks()
    posted = receiver.bodies()
    assert sorted("code" in p for p in posted) == [False, False, True]
    assert all(SCHEMAS.validate("response/webhook", p).ok for p in posted)


def test_a_partial_block_can_be_an_nsfw_flag_when_the_task_asked_for_a_check(
    api: httpx.Client, control: ControlClient
) -> None:
    control.set_autojump(True)
    control.set_options("runware", partial_block_style="nsfw_flag")
    control.add_faults(on_submits({"task": "partial_block", "images": [0]}))
    checked = envelope(api.post("/v1", json=[task(numberResults=2, safety={"checkContent": True})]))
    assert "errors" not in checked
    assert [item["NSFWContent"] for item in checked["data"]] == [True, False]
    assert api.get(checked["data"][0]["imageURL"]).status_code == 200
    unchecked = envelope(api.post("/v1", json=[task(numberResults=2)]))
    assert (len(unchecked["data"]), len(unchecked["errors"])) == (1, 1)


# -- upstream trouble ----------------------------------------------------------------------------------


def test_a_failed_task_is_an_inference_error_everywhere(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.add_faults(on_submits({"task": "fail", "at": 0.5}))
    body = task(deliveryMethod="async", numberResults=2, webhookURL=receiver.url_for("/hook"))
    api.post("/v1", json=[body])
    control.advance(30)
    failed = api.post("/v1", json=poll(body))
    error = only_error(failed)
    assert failed.status_code == 500
    assert (error["code"], error["status"], error["message"]) == ("inferenceError", "error",
                                                                  "The generation failed upstream.")
    posted = receiver.bodies()
    assert len(posted) == 1 and posted[0]["code"] == "inferenceError" and "status" not in posted[0]
    assert SCHEMAS.validate("response/webhook", posted[0]).ok
    assert control.balance("runware", KEY) == pytest.approx(START_BALANCE)
    control.set_autojump(True)
    control.clear_faults()
    control.add_faults(on_submits({"task": "fail", "code": "modelUnavailable", "message": "Gemini is down."}))
    sync = api.post("/v1", json=[task()])
    assert sync.status_code == 500
    assert (only_error(sync)["code"], only_error(sync)["message"]) == ("modelUnavailable", "Gemini is down.")


def test_an_expired_task_is_a_provider_timeout(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.add_faults(on_submits({"task": "expire", "after": 120}))
    body = task(deliveryMethod="async", webhookURL=receiver.url_for("/hook"))
    api.post("/v1", json=[body])
    control.advance(60)
    assert envelope(api.post("/v1", json=poll(body)))["data"][0]["status"] == "processing"
    control.advance(60)
    expired = api.post("/v1", json=poll(body))
    assert expired.status_code == 504
    error = only_error(expired)
    assert (error["code"], error["message"], error["status"]) == (
        "timeoutProvider", "The external provider did not respond within the timeout window.", "error")
    assert [p["code"] for p in receiver.bodies()] == ["timeoutProvider"]
    control.set_autojump(True)
    assert only_error(api.post("/v1", json=[task()]))["code"] == "timeoutProvider"


def test_a_sync_task_that_never_finishes_times_out_at_the_sync_timeout(
    server: LiveServer, api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.add_faults(on_submits({"task": "never_finish"}))
    body = task(numberResults=2, webhookURL=receiver.url_for("/hook"))
    worker, answers = sync_in_background(server, [body], KEY)
    wait_for_tasks(control, 2)
    control.advance(299)
    worker.join(0.2)
    assert worker.is_alive() and not answers
    control.advance(1)
    worker.join(10)
    [answer] = answers
    assert answer.status_code == 504
    error = only_error(answer)
    assert (error["code"], error["taskUUID"]) == ("timeoutProvider", body["taskUUID"])
    assert {t["phase"] for t in control.tasks("runware")} == {"canceled"}
    assert only_error(api.post("/v1", json=poll(body)))["status"] == "error"
    assert [p["code"] for p in receiver.bodies()] == ["timeoutProvider"]
    assert control.balance("runware", KEY) == pytest.approx(START_BALANCE)


def test_the_sync_timeout_is_an_option_and_works_under_autojump(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    control.set_options("runware", sync_timeout_seconds=60)
    control.add_faults(on_submits({"task": "slow", "queue": {"distribution": "fixed", "seconds": 100}}, times=1))
    start = control.now()
    assert only_error(api.post("/v1", json=[task()]))["code"] == "timeoutProvider"
    assert control.now() - start == pytest.approx(60)
    assert api.post("/v1", json=[task()]).status_code == 200


def test_an_async_task_that_never_finishes_stays_processing(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.add_faults(on_submits({"task": "never_finish"}))
    body = task(deliveryMethod="async", webhookURL=receiver.url_for("/hook"))
    api.post("/v1", json=[body])
    control.advance(24 * 3600)
    polled = api.post("/v1", json=poll(body))
    assert polled.status_code == 200
    assert envelope(polled) == {"data": [{"taskType": "imageInference", "taskUUID": body["taskUUID"],
                                          "status": "processing"}]}
    assert receiver.bodies() == []
    [image] = control.tasks("runware")
    assert image["timeline"]["finished_at"] is None and 0 < image["progress"] < 1


def test_a_slow_task_finishes_later(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    control.add_faults(on_submits({"task": "slow", "queue": {"distribution": "fixed", "seconds": 100}}))
    start = control.now()
    assert api.post("/v1", json=[task()]).status_code == 200
    assert 108 <= control.now() - start <= 120  # 100 s in the queue, then NB2 1K's 8-20 s


def test_webhook_faults_match_runware_events(
    api: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    control.add_faults({"match": {"provider": "runware", "operation": "webhook",
                                  "body": {"event": "imageInference:error"}}, "do": {"webhook": "duplicate"}},
                       on_submits({"task": "fail"}))
    api.post("/v1", json=[task(deliveryMethod="async", webhookURL=receiver.url_for("/hook"))])
    control.advance(30)
    assert [p["code"] for p in receiver.bodies()] == ["inferenceError", "inferenceError"]


# -- the official SDK ----------------------------------------------------------------------------------


@pytest.mark.skipif(SDK_VERSION is None, reason="the runware-sdk distribution is not installed")
@pytest.mark.parametrize(("do", "code", "status"), [
    ({"error": "rate_limited", "retry_after": 2}, "rateLimit", 429),
    ({"error": "content_blocked"}, "safety", 400),
    ({"task": "fail"}, "provider", 500),
    # The SDK looks for "Timeout" with a capital T, so the documented timeoutProvider lands in "unknown".
    ({"task": "expire", "after": 60}, "unknown", 504),
])
def test_the_sdk_surfaces_forced_errors_in_its_categories(
    server: LiveServer, control: ControlClient, do: dict[str, Any], code: str, status: int
) -> None:
    from runware.errors import RunwareError

    control.set_autojump(True)
    control.add_faults(on_submits(do))
    with pytest.raises(RunwareError) as caught:
        sdk_run(server, {"taskType": "imageInference", "model": "google:4@3", "deliveryMethod": "sync",
                         "positivePrompt": "a ripe banana on a desk", "width": 1024, "height": 1024}, KEY)
    assert (caught.value.code, caught.value.status_code) == (code, status)
    assert caught.value.task_uuid == control.journal(provider="runware")[0]["request_body"][0]["taskUUID"]

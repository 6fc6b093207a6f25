"""Failure rehearsal on the simulated CRun: forced errors of its documented code table, rate limits, task faults
(fail, expire, never_finish, slow, block, partial_block) with their credits and callbacks, and webhook faults.

Everything runs on the virtual clock against a server on 127.0.0.1; callbacks go to a local receiver.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import provider_fixtures, receiver_fixture
from support_crun import (
    BALANCE,
    JOB,
    KEY,
    OTHER_KEY,
    SCHEMAS,
    assert_valid,
    balance,
    body,
    create,
    finish,
    info,
    timeline,
)

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.testing.receiver import WebhookReceiver

START = 1_000_000
CARD = provider_data("crun")
# seed 003, "Response status code": every code but 200 must be reproducible on demand.
DOCUMENTED_CODES = {401, 402, 404, 422, 429, 455, 500, 501, 505}
SUBMIT = {"operation": "CreateTask"}

server, provider_http, crun = provider_fixtures("crun", client="crun", headers={"x-api-key": KEY})
receiver = receiver_fixture(path="/api/callback")


def force(control: ControlClient, do: dict[str, Any], match: dict[str, Any] | None = None, **when: Any) -> None:
    control.add_faults({"match": {"provider": "crun", **(match or SUBMIT)}, "when": when, "do": do})


# -- forced errors -------------------------------------------------------------------------------------

FORCED = [
    # kind, HTTP status (mirror), body
    ("bad_request", 422, {"code": 422, "message": "Missing Params or Type Error",
                          "errors": ["body: Value error, Invalid request"]}),
    ("unauthorized", 401, {"code": 401, "message": "Invalid API key", "data": None}),
    ("insufficient_credits", 402, {"code": 402, "message": "Insufficient credits", "data": None}),
    ("forbidden", 403, {"code": 403, "message": "API key disabled", "data": None}),
    ("not_found", 404, {"code": 404, "message": "Task not found", "data": None}),
    ("content_blocked", 501, {"code": 501, "data": None,
                              "message": "Generation failed: the request was rejected by content moderation"}),
    ("rate_limited", 429, {"code": 429, "message": "Rate limited: request limit exceeded", "data": None}),
    ("server_error", 500, {"code": 500, "message": "Server error", "data": None}),
    ("payload_too_large", 413, {"code": 413, "message": "Request body too large", "data": None}),
    ("service_unavailable", 455, {"code": 455, "message": "Service unavailable: system maintenance", "data": None}),
    ("maintenance", 455, {"code": 455, "message": "Service unavailable: system maintenance", "data": None}),
    ("generation_failed", 501, {"code": 501, "message": "Generation failed", "data": None}),
    ("feature_disabled", 505, {"code": 505, "message": "Feature disabled", "data": None}),
]


def test_every_documented_code_has_a_kind() -> None:
    kinds = {kind for kind, _, _ in FORCED}
    assert kinds == {kind for kind, spec in CARD["faults"].items() if not kind.startswith("$") and not spec.get("edge")}
    assert {status for _, status, _ in FORCED} >= DOCUMENTED_CODES


@pytest.mark.parametrize("mode", ["mirror", "200"])
@pytest.mark.parametrize(("kind", "status", "expected"), FORCED, ids=[kind for kind, _, _ in FORCED])
def test_forced_errors_in_the_crun_envelope(
    crun: httpx.Client, control: ControlClient, kind: str, status: int, expected: dict[str, Any], mode: str
) -> None:
    control.set_options("crun", error_http_status=mode)
    force(control, {"error": kind})
    response = crun.post(f"{JOB}/CreateTask", json=body())
    assert response.status_code == (status if mode == "mirror" else 200)
    assert response.headers["content-type"] == "application/json"
    assert "retry-after" not in response.headers  # CRun documents none; only a rule's retry_after adds one
    assert response.json() == expected
    assert_valid("response/validation-error" if status == 422 else "response/error", response.json())
    assert SCHEMAS.is_valid("response/envelope", response.json())
    assert control.tasks("crun") == [] and balance(crun) == START  # refused before anything was reserved
    [entry] = control.journal(operation="CreateTask")
    assert entry["faults"][0]["do"] == {"error": kind}


@pytest.mark.parametrize(("setup", "request_args"), [
    (lambda control: control.set_tokens("crun", [OTHER_KEY]), ("GET", BALANCE)),
    (lambda control: control.set_balance("crun", KEY, 0), ("POST", f"{JOB}/CreateTask")),
    (lambda control: control.set_options("crun", disabled_api_keys=[KEY]), ("GET", BALANCE)),
    (lambda control: None, ("GET", f"{JOB}/TaskInfo?task_id=nope")),
], ids=["401", "402", "403", "404"])
def test_a_forced_error_reads_like_the_real_condition(
    crun: httpx.Client, control: ControlClient, setup: Any, request_args: tuple[str, str]
) -> None:
    method, path = request_args
    setup(control)
    real = crun.request(method, path, json=body())
    control.reset(seed=0)
    kind = {401: "unauthorized", 402: "insufficient_credits", 403: "forbidden", 404: "not_found"}[real.status_code]
    force(control, {"error": kind}, match={"path": path.split("?")[0]})
    forced = crun.request(method, path, json=body())
    assert (forced.status_code, forced.json()) == (real.status_code, real.json())


def test_rate_limited_rule_carries_retry_after(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"error": "rate_limited", "retry_after": 7}, match={"operation": "TaskInfo"})
    response = crun.get(f"{JOB}/TaskInfo", params={"task_id": "x"})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert_valid("response/error", response.json())


@pytest.mark.parametrize(("kind", "status", "title"), [
    ("bad_gateway", 502, "502 Bad Gateway"), ("gateway_timeout", 504, "504 Gateway Time-out"),
])
@pytest.mark.parametrize("mode", ["mirror", "200"])
def test_gateway_errors_are_a_proxy_page_not_a_crun_envelope(
    crun: httpx.Client, control: ControlClient, kind: str, status: int, title: str, mode: str
) -> None:
    control.set_options("crun", error_http_status=mode)  # the proxy does not know CRun's option
    force(control, {"error": kind, "retry_after": 3})
    response = crun.post(f"{JOB}/CreateTask", json=body())
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "3"
    assert f"<title>{title}</title>" in response.text


def test_any_http_status_in_the_envelope(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"error": "http", "status": 418, "message": "teapot"}, match={"operation": "GetBalance"})
    response = crun.get(BALANCE)
    assert (response.status_code, response.json()) == (418, {"code": 418, "message": "teapot", "data": None})


def test_only_the_third_submit_gets_the_forced_error(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"error": "maintenance"}, after=2, times=1)
    statuses = [crun.post(f"{JOB}/CreateTask", json=body()).status_code for _ in range(5)]
    assert statuses == [200, 200, 455, 200, 200]
    assert len(control.tasks("crun")) == 4
    assert balance(crun) == START - 4 * 3  # the refused submit reserved nothing
    [refused] = control.journal(operation="CreateTask", status=455)
    assert refused["faults"][0]["rule"] and refused.get("task_id") is None
    [described] = control.faults()["rules"]
    assert (described["matched"], described["fired"]) == (5, 1)


def test_rules_match_the_x_api_key_and_the_model(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"error": "feature_disabled"}, match={"api_key": KEY, "model": "google/nano-banana-pro"})
    assert crun.post(f"{JOB}/CreateTask", json=body("google/nano-banana-pro")).status_code == 505
    assert crun.post(f"{JOB}/CreateTask", json=body()).status_code == 200
    other = crun.post(f"{JOB}/CreateTask", json=body("google/nano-banana-pro"), headers={"x-api-key": OTHER_KEY})
    assert other.status_code == 200


def test_a_bearer_key_is_the_key_rules_see_when_bearer_is_accepted(
    server: LiveServer, crun: httpx.Client, control: ControlClient
) -> None:
    control.set_options("crun", accept_bearer=True)
    force(control, {"error": "server_error"}, match={"api_key": OTHER_KEY, "operation": "GetBalance"})
    bearer = crun.get(BALANCE, headers={"x-api-key": "", "Authorization": f"Bearer {OTHER_KEY}"})
    assert bearer.status_code == 500
    assert crun.get(BALANCE).status_code == 200


# -- rate limits --------------------------------------------------------------------------------------


def test_request_rate_limit_recovers_after_retry_after(crun: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "crun", "requests": 2, "per": 10})
    assert [crun.get(BALANCE).status_code for _ in range(2)] == [200, 200]
    control.advance(4)
    refused = crun.get(BALANCE)
    assert refused.status_code == 429
    assert refused.json() == {"code": 429, "message": "Rate limited: request limit exceeded", "data": None}
    assert refused.headers["retry-after"] == "6"
    assert crun.get(BALANCE, headers={"x-api-key": OTHER_KEY}).status_code == 200  # per key
    control.advance(5)
    assert crun.get(BALANCE).status_code == 429
    control.advance(1)
    assert crun.get(BALANCE).status_code == 200
    [entry] = control.journal(status=429, limit=1)
    assert entry["faults"][0]["reason"] == "2 requests per 10 s"


def test_tasks_in_flight_limit_guards_create_task(crun: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "crun", "concurrent": 1})
    task_id = create(crun)
    refused = crun.post(f"{JOB}/CreateTask", json=body())
    assert refused.status_code == 429 and refused.json()["code"] == 429
    wait = int(refused.headers["retry-after"])
    assert crun.get(f"{JOB}/TaskInfo", params={"task_id": task_id}).status_code == 200  # polls are not guarded
    assert balance(crun) == START - 3
    control.advance(wait)
    assert info(crun, task_id)["status"] == "success"
    create(crun)


# -- task faults: fail, expire, never_finish, slow ------------------------------------------------------


def test_fail_mid_way_is_a_failed_task_with_501_and_is_refunded(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"task": "fail", "at": 0.5})
    task_id = create(crun, body("google/nano-banana-pro"))
    assert balance(crun) == START - 8
    t = timeline(control, task_id)
    assert t["started_at"] is not None and t["finished_at"] is not None
    control.advance_to(t["finished_at"] - 0.5)
    running = info(crun, task_id)
    assert (running["status"], running["result"], running["credits"]) == ("running", None, 8)
    control.advance(0.5)
    data = info(crun, task_id)
    assert data["status"] == "failed"
    assert data["result"] == {"code": 501, "message": "Generation failed: the generation failed upstream",
                              "media_urls": []}
    assert data["complete_at"] == int(t["finished_at"])
    assert data["duration_s"] == data["complete_at"] - data["create_at"]
    assert data["credits"] == 0 and balance(crun) == START
    assert control.task(task_id)["faults"] == ["fail at 50% of processing"]


def test_fail_with_a_server_error_code_and_a_reason(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"task": "fail", "at": 0.2, "code": "500", "message": "GPU worker lost."})
    task_id = create(crun)
    finish(control, task_id)
    assert info(crun, task_id)["result"] == {"code": 500, "message": "Server error: GPU worker lost",
                                             "media_urls": []}


def test_a_code_crun_does_not_document_for_tasks_falls_back_to_501(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"task": "fail", "code": "OOM", "message": "CUDA out of memory"})
    task_id = create(crun)
    finish(control, task_id)
    assert info(crun, task_id)["result"]["message"] == "Generation failed: CUDA out of memory"  # acronym kept


def test_failed_task_is_charged_when_refunds_are_off(crun: httpx.Client, control: ControlClient) -> None:
    control.set_options("crun", refund_failed_tasks=False)
    force(control, {"task": "fail"})
    task_id = create(crun)
    finish(control, task_id)
    assert (info(crun, task_id)["credits"], balance(crun)) == (3, START - 3)


def test_fail_fires_the_failure_callback(
    crun: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    force(control, {"task": "fail", "at": 0.3})
    task_id = create(crun, {"callback_url": receiver.url, **body()})
    finish(control, task_id)
    [payload] = receiver.bodies()
    assert_valid("response/callback", payload)
    assert payload == info(crun, task_id)
    assert payload["status"] == "failed" and payload["result"]["code"] == 501 and payload["credits"] == 0
    [attempt] = control.journal(kind="webhook")
    assert attempt["detail"] == {"attempt": 1, "event": "task:failed", "outcome": "delivered"}


def test_expire_is_a_failed_task_at_the_deadline_refunded_with_a_callback(
    crun: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    t0 = control.now()
    force(control, {"task": "expire", "after": 30})
    task_id = create(crun, {"callback_url": receiver.url, **body("google/nano-banana-pro", resolution="4K")})
    control.advance(29)
    assert info(crun, task_id)["status"] in ("pending", "running") and receiver.bodies() == []
    control.advance(1)
    data = info(crun, task_id)
    assert data["status"] == "failed"
    assert data["result"] == {"code": 501, "message": "Generation failed: the task expired before it finished",
                              "media_urls": []}
    assert data["complete_at"] == int(t0 + 30) and data["credits"] == 0 and balance(crun) == START
    assert receiver.bodies() == [data]


def test_never_finish_stays_running_and_keeps_its_reservation(
    crun: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    force(control, {"task": "never_finish"})
    task_id = create(crun, {"callback_url": receiver.url, **body()})
    assert timeline(control, task_id)["finished_at"] is None
    control.advance(86_400)
    data = info(crun, task_id)
    assert data["status"] == "running"
    assert (data["result"], data["complete_at"], data["duration_s"], data["credits"]) == (None, None, None, 3)
    assert balance(crun) == START - 3
    assert receiver.bodies() == [] and control.journal(kind="webhook") == []


def test_a_task_that_never_finishes_holds_its_concurrency_slot(crun: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "crun", "concurrent": 1, "per": 30})
    force(control, {"task": "never_finish"}, times=1)
    create(crun)
    control.advance(3600)
    refused = crun.post(f"{JOB}/CreateTask", json=body())
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"


def test_slow_queue_keeps_the_task_pending(crun: httpx.Client, control: ControlClient) -> None:
    t0 = control.now()
    force(control, {"task": "slow", "queue": {"distribution": "fixed", "seconds": 120}})
    task_id = create(crun)
    assert timeline(control, task_id)["started_at"] >= t0 + 120  # type: ignore[operator]
    control.advance(119)
    assert info(crun, task_id)["status"] == "pending"
    finish(control, task_id)
    data = info(crun, task_id)
    assert data["status"] == "success" and len(data["result"]["media_urls"]) == 1
    assert data["duration_s"] >= 120 + 8  # queue + nano-banana's 8-20 s


# -- content blocks ------------------------------------------------------------------------------------


def test_forced_block_reads_like_a_moderation_block(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"task": "block", "reason": "nsfw"})
    t0 = control.now()
    task_id = create(crun)
    finish(control, task_id)
    data = info(crun, task_id)
    assert data["status"] == "failed" and data["complete_at"] - int(t0) <= 6  # blockedSeconds 2-6
    assert data["result"] == {"code": 501, "media_urls": [],
                              "message": "Generation failed: the request was rejected by content moderation"}
    assert balance(crun) == START


def test_partial_block_of_the_only_image_fails_after_generation(
    crun: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    """One image per CRun task: blocking image 0 leaves nothing to deliver, so the task fails (501, refunded)
    after its full runtime, where a prompt block fails within seconds."""
    force(control, {"task": "partial_block", "images": [0]})
    task_id = create(crun, {"callback_url": receiver.url, **body("google/nano-banana-pro")})
    t = timeline(control, task_id)
    assert t["finished_at"] - t["accepted_at"] >= 20  # type: ignore[operator]  # pro 1K: 20-60 s
    finish(control, task_id)
    data = info(crun, task_id)
    assert data["status"] == "failed"
    assert data["result"] == {"code": 501, "media_urls": [],
                              "message": "Generation failed: the request was rejected by content moderation"}
    assert data["credits"] == 0 and balance(crun) == START
    assert receiver.bodies() == [data]
    assert control.journal(kind="webhook")[0]["detail"]["event"] == "task:failed"


def test_partial_block_of_a_second_image_leaves_a_crun_task_alone(crun: httpx.Client, control: ControlClient) -> None:
    force(control, {"task": "partial_block", "images": [1]})  # the shipped partial-batch-block scenario
    task_id = create(crun)
    finish(control, task_id)
    data = info(crun, task_id)
    assert data["status"] == "success" and len(data["result"]["media_urls"]) == 1
    assert data["credits"] == 3


# -- webhook faults -----------------------------------------------------------------------------------


def test_a_dropped_failure_callback_is_journaled_and_polling_still_tells(
    crun: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    force(control, {"task": "fail"})
    force(control, {"webhook": "drop"}, match={"operation": "webhook", "body": {"event": "task:failed"}})
    task_id = create(crun, {"callback_url": receiver.url, **body()})
    finish(control, task_id)
    assert receiver.bodies() == []
    [dropped] = control.journal(kind="webhook")
    assert dropped["detail"]["outcome"] == "dropped"
    assert info(crun, task_id)["status"] == "failed"

"""Failure rehearsal on the simulated qingbo.dev task API: forced errors, rate limits, task faults.

Every fault is set through the control plane (`/_sim/faults`, `/_sim/limits`) and judged over a real
socket on the virtual clock: status, headers, bodies valid against schemas/qingbo, wallets, callbacks.
The expected statuses and codes below are written out from the docs (RR, STATUS, CANCEL, TS, KX; see
schemas/qingbo/README.md "Failure rehearsal"), independently of provider.json.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from conftest import provider_fixtures, receiver_fixture
from support_qingbo import PRO, TASKS, assert_error, assert_valid, fetch, ms, submit, submitted, task_body, timeline

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.providers.qingbo.faults import window_text
from simulator.testing.receiver import WebhookReceiver

KEY = "qingbo-fault-key"
START_BALANCE = 500_000_000
FLASH_IMAGE_QUOTA = 15_938  # 0.031875 USD x 500,000 quota per USD, rounded half up
SUBMIT_RULE = {"provider": "qingbo", "operation": "SubmitTask"}

# kind → (status, error.code) as qingbo documents them (or, where it does not, as README.md explains).
DOCUMENTED = {
    "bad_request": (400, "invalid_request"),
    "unauthorized": (401, "authentication_error"),
    "insufficient_credits": (402, "payment_required"),
    "forbidden": (403, "quota_not_enough"),
    "not_found": (404, "task_not_found"),
    "content_blocked": (400, "invalid_request"),
    "rate_limited": (429, "quota_window_exceeded"),
    "too_many_requests": (429, "rate_limit_error"),
    "task_not_cancellable": (400, "task_not_cancellable"),
    "price_not_configured": (500, "price_not_configured"),
    "server_error": (500, "server_error"),
    "bad_gateway": (502, "server_error"),
    "service_unavailable": (503, "server_error"),
    "gateway_timeout": (504, "server_error"),
}


# -- fixtures and helpers ------------------------------------------------------------------------------

server, provider_http, api = provider_fixtures("qingbo", client="api", headers={"Authorization": f"Bearer {KEY}"})
hook = receiver_fixture("hook")


def rule(do: dict[str, Any], match: dict[str, Any] | None = None, **when: Any) -> dict[str, Any]:
    return {"match": SUBMIT_RULE if match is None else match, "when": when, "do": do}


# -- forced errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_every_documented_error_is_reproducible_at_submit(api: httpx.Client, control: ControlClient, kind: str) -> None:
    status, code = DOCUMENTED[kind]
    control.add_faults(rule({"error": kind}))
    assert_error(submit(api), status, code)
    assert control.tasks("qingbo") == []  # refused before the handler: no task, no charge
    assert control.balance("qingbo", KEY) == START_BALANCE
    (entry,) = control.journal(operation="SubmitTask")
    assert entry["status"] == status and entry["faults"][0]["do"] == {"error": kind}


def test_only_the_third_submit_gets_the_forced_error(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"error": "service_unavailable", "retry_after": 3}, after=2, times=1))
    statuses = [submit(api).status_code for _ in range(5)]
    assert statuses == [200, 200, 503, 200, 200]
    assert len(control.tasks("qingbo")) == 4
    refused = control.journal(operation="SubmitTask")[2]
    assert refused["status"] == 503 and refused["faults"][0]["rule"] == "control-1"


def test_rules_on_submit_leave_other_routes_alone(api: httpx.Client, control: ControlClient) -> None:
    created = submitted(api)
    control.add_faults(rule({"error": "server_error"}))
    assert fetch(api, created["task_id"])["status"] == "queued"
    assert_error(submit(api), 500, "server_error")


def test_forced_error_headers_and_rule_overrides(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"error": "service_unavailable", "retry_after": 7, "message": "maintenance window",
                             "code": "upstream_unavailable", "headers": {"X-Request-Id": "req-{retry_after}"}}))
    response = submit(api)
    body = assert_error(response, 503, "upstream_unavailable")
    assert body["error"]["message"] == "maintenance window"
    assert (response.headers["retry-after"], response.headers["x-request-id"]) == ("7", "req-7")


def test_insufficient_credits_follows_the_balance_status_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", insufficient_balance_status=403)
    control.add_faults(rule({"error": "insufficient_credits"}))
    assert_error(submit(api), 403, "quota_not_enough")


def test_forced_errors_on_task_routes_name_the_task(api: httpx.Client, control: ControlClient) -> None:
    created = submitted(api)
    task_id = created["task_id"]
    control.add_faults(
        rule({"error": "not_found"}, {"operation": "GetTask"}, times=1),
        rule({"error": "task_not_cancellable"}, {"operation": "CancelTask"}, times=1),
    )
    missing = assert_error(api.get(f"{TASKS}/{task_id}"), 404, "task_not_found")
    assert missing["error"]["message"] == f"task {task_id} does not exist or does not belong to this API key"
    refused = assert_error(api.post(f"{TASKS}/{task_id}/cancel"), 400, "task_not_cancellable")
    assert task_id in refused["error"]["message"]
    assert fetch(api, task_id)["status"] == "queued"  # the forced refusal cancelled nothing: retrying works
    assert api.post(f"{TASKS}/{task_id}/cancel").json()["status"] == "cancelled"


def test_any_status_in_the_qingbo_envelope(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"error": "http", "status": 418}, times=1), rule({"error": "http", "status": 429}, after=1))
    assert_error(submit(api), 418, "invalid_request")
    body = assert_error(submit(api), 429, "quota_window_exceeded")  # a 429 always carries the window members
    assert (body["window"], body["cap"]) == ("1h", 1000)


# -- rate limits ---------------------------------------------------------------------------------------


def test_forced_429_carries_the_quota_window_members(api: httpx.Client, control: ControlClient) -> None:
    now = control.now()
    control.add_faults(rule({"error": "rate_limited", "retry_after": 2}, times=1),
                       rule({"error": "rate_limited", "window": 300, "cap": 50, "used": 51}, after=1))
    response = submit(api)
    body = assert_error(response, 429, "quota_window_exceeded")
    assert body == {"error": {"message": "sliding-window quota exceeded", "code": "quota_window_exceeded"},
                    "window": "1h", "used": 1000, "cap": 1000, "reset_at": math.ceil(now + 2)}
    assert response.headers["retry-after"] == "2"
    second = submit(api)
    body = assert_error(second, 429, "quota_window_exceeded")
    assert (body["window"], body["used"], body["cap"], body["reset_at"]) == ("5m", 51, 50, math.ceil(now + 300))
    assert "retry-after" not in second.headers  # qingbo documents no Retry-After; only a rule's retry_after adds it


def test_request_window_limit_refuses_with_its_numbers_and_recovers(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "qingbo", "requests": 2, "per": 60, "operations": ["SubmitTask"]})
    first_at = control.now()
    submitted(api)
    control.advance(10)
    submitted(api)
    control.advance(10)
    response = submit(api)
    body = assert_error(response, 429, "quota_window_exceeded")
    assert body["window"] == "1m" and body["used"] == body["cap"] == 2
    assert body["reset_at"] == math.ceil(first_at + 60)
    assert response.headers["retry-after"] == "40"
    assert api.get(f"{TASKS}/task-wave0").status_code == 404  # other operations are not counted
    control.advance(39)
    assert_error(submit(api), 429, "quota_window_exceeded")
    control.advance(1)
    submitted(api)
    limited = [e for e in control.journal(operation="SubmitTask") if e["status"] == 429]
    assert [e["faults"][0]["limit"] for e in limited] == ["limit-1", "limit-1"]
    assert len(control.tasks("qingbo")) == 3


def test_concurrency_limit_is_the_plain_429_and_recovers(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "qingbo", "concurrent": 1})
    first = submitted(api)
    finished = timeline(control, first["task_id"])["finished_at"]
    response = submit(api)
    body = assert_error(response, 429, "rate_limit_error")
    assert set(body) == {"error"}
    assert response.headers["retry-after"] == str(math.ceil(finished - control.now()))
    assert fetch(api, first["task_id"])["status"] == "queued"  # reading is not limited
    control.advance_to(finished)
    submitted(api)


def test_a_limit_counts_each_api_key_apart(server: LiveServer, api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "qingbo", "requests": 1, "per": 3600})
    submitted(api)
    assert_error(submit(api), 429, "quota_window_exceeded")
    other = httpx.Client(base_url=server.provider_url("qingbo"), headers={"Authorization": "Bearer other"})
    with other:
        assert submit(other).status_code == 200


# -- idempotency ---------------------------------------------------------------------------------------


def test_idempotent_retry_after_a_forced_error_succeeds_once(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"error": "server_error"}, times=1))
    control.set_autojump(True)
    key = {"Idempotency-Key": "order-7", "Prefer": "wait=60"}
    start = control.now()
    assert_error(submit(api, **key), 500, "server_error")
    assert control.now() == start  # a refused submit answers at once, whatever Prefer says
    retried = submitted(api, **key)
    assert retried["status"] == "completed"  # the retry claimed the key, made the task and waited for it
    again = submitted(api, **key)
    assert (again["task_id"], again["status"]) == (retried["task_id"], "completed")
    assert len(control.tasks("qingbo")) == 1
    assert control.balance("qingbo", KEY) == START_BALANCE - retried["pre_consumed_cost"]


def test_idempotent_retry_after_a_rate_limit_succeeds(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"provider": "qingbo", "requests": 1, "per": 30})
    submitted(api)
    key = {"Idempotency-Key": "after-429"}
    retry_after = int(submit(api, **key).headers["retry-after"])
    control.advance(retry_after)
    created = submitted(api, **key)
    control.advance(30)
    assert submitted(api, **key)["task_id"] == created["task_id"]


def test_a_replay_of_a_failed_task_returns_that_failed_task(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"task": "fail", "at": 0}, times=1))
    key = {"Idempotency-Key": "doomed"}
    first = submitted(api, **key)
    control.advance(120)
    replay = submitted(api, **key)
    assert (replay["task_id"], replay["status"], replay["cost"]) == (first["task_id"], "failed", 0)


# -- task faults ---------------------------------------------------------------------------------------


def test_fail_midway_renders_qingbos_failed_task_and_refunds(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    control.add_faults(rule({"task": "fail", "at": 0.5, "code": "upstream_unavailable",
                             "message": "upstream overloaded"}))
    created = submitted(api, task_body(callback_url=hook.url, callback_events=["failed"]))
    task_id = created["task_id"]
    t = timeline(control, task_id)
    control.advance_to(t["finished_at"] - 0.01)
    assert fetch(api, task_id)["status"] == "processing"
    assert control.balance("qingbo", KEY) == START_BALANCE - FLASH_IMAGE_QUOTA
    control.advance_to(t["finished_at"])
    failed = fetch(api, task_id)
    assert {k: failed[k] for k in ("status", "progress", "cost", "completed_at", "error")} == {
        "status": "failed", "progress": 0, "cost": 0, "completed_at": ms(t["finished_at"]),
        "error": {"message": "[upstream_unavailable] Upstream returned: upstream overloaded",
                  "code": "upstream_unavailable"},
    }
    assert control.balance("qingbo", KEY) == START_BALANCE
    (call,) = hook.requests
    assert_valid("response/callback", call.json())
    assert call.json() == failed
    (attempt,) = control.journal(kind="webhook", task_id=task_id)
    assert attempt["detail"]["event"] == "failed" and attempt["at"] == t["finished_at"]
    assert control.task(task_id)["faults"] == ["fail at 50% of processing"]


def test_fail_without_a_code_is_task_failed(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"task": "fail"}))
    control.set_autojump(True)
    done = submitted(api, Prefer="wait=60")  # Prefer: wait returns the failed task when it fails
    assert (done["status"], done["cost"], done["error"]["code"]) == ("failed", 0, "task_failed")
    assert done["pre_consumed_cost"] == FLASH_IMAGE_QUOTA and "result" not in done


def test_fail_through_the_legacy_sync_endpoint(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    control.add_faults(rule({"task": "fail", "code": "upstream_rate_limited"}, {"operation": "SubmitTaskSync"}))
    control.set_autojump(True)
    response = api.post(f"{TASKS}/sync", json=task_body())
    assert response.status_code == 200
    assert_valid("response/sync", response.json())
    assert response.json()["error"]["code"] == "upstream_rate_limited"


def test_expire_reads_as_failed_with_a_refund_and_a_failed_callback(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    control.add_faults(rule({"task": "expire", "after": 30}))
    created = submitted(api, task_body(PRO, resolution="4K", n=4, callback_url=hook.url))  # 80-200 s of work
    accepted = control.now()
    control.advance(29)
    assert fetch(api, created["task_id"])["status"] in ("queued", "processing")
    control.advance(1)
    expired = fetch(api, created["task_id"])
    assert (expired["status"], expired["cost"], expired["completed_at"]) == ("failed", 0, ms(accepted + 30))
    assert expired["error"]["code"] == "task_failed"
    assert "expired" in expired["error"]["message"]
    assert control.balance("qingbo", KEY) == START_BALANCE
    (call,) = hook.bodies()
    assert call == expired


def test_never_finish_stays_processing_everywhere(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    control.add_faults(rule({"task": "never_finish"}, {"provider": "qingbo"}))
    control.set_autojump(True)
    start = control.now()
    waited = submitted(api, task_body(callback_url=hook.url), Prefer="wait=60")
    assert control.now() == start + 60
    assert waited["status"] == "processing" and 0 < waited["progress"] < 100 and "completed_at" not in waited
    control.set_autojump(False)
    control.advance(86_400)
    later = fetch(api, waited["task_id"])
    assert later["status"] == "processing" and waited["progress"] <= later["progress"] < 100
    assert_error(api.post(f"{TASKS}/{waited['task_id']}/cancel"), 400, "task_not_cancellable")
    control.set_autojump(True)
    sync = api.post(f"{TASKS}/sync", json=task_body())
    assert_valid("response/sync", sync.json())
    assert sync.json()["poll_url"].endswith(sync.json()["task_id"])
    control.flush_webhooks()
    assert hook.requests == []
    assert control.balance("qingbo", KEY) == START_BALANCE - 2 * FLASH_IMAGE_QUOTA  # still pre-consumed


def test_slow_tasks_stay_queued_and_can_still_be_cancelled(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"task": "slow", "queue": {"distribution": "fixed", "seconds": 300}}))
    created = submitted(api)
    control.advance(200)
    assert fetch(api, created["task_id"])["status"] == "queued"
    cancelled = api.post(f"{TASKS}/{created['task_id']}/cancel").json()
    assert cancelled == {"task_id": created["task_id"], "status": "cancelled", "refunded": True,
                         "refunded_quota": FLASH_IMAGE_QUOTA}


def test_slow_tasks_complete_late(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"task": "slow", "queue": {"distribution": "fixed", "seconds": 300}}))
    created = submitted(api)
    t = timeline(control, created["task_id"])
    assert t["started_at"] - t["accepted_at"] >= 300
    control.advance_to(t["finished_at"])
    assert fetch(api, created["task_id"])["status"] == "completed"


def test_block_rule_fails_the_task_like_the_content_filter(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults(rule({"task": "block", "reason": "unsafe content"}))
    created = submitted(api)
    control.advance(60)
    blocked = fetch(api, created["task_id"])
    assert blocked["status"] == "failed" and blocked["error"] == {
        "message": "[upstream_bad_request] Upstream returned: unsafe content", "code": "upstream_bad_request",
    }


@pytest.mark.parametrize("layout", ["item_per_image", "one_item"])
def test_partial_block_delivers_the_rest_and_bills_only_those(
    api: httpx.Client, control: ControlClient, layout: str
) -> None:
    control.set_options("qingbo", result_layout=layout)
    control.add_faults(rule({"task": "partial_block", "images": [1]}))
    created = submitted(api, task_body(n=3))
    assert created["pre_consumed_cost"] == 3 * FLASH_IMAGE_QUOTA
    control.advance_to(timeline(control, created["task_id"])["finished_at"])
    done = fetch(api, created["task_id"])
    urls = [url for item in done["result"]["images"] for url in item["url"]]
    assert done["status"] == "completed" and len(urls) == 2
    assert len(done["result"]["images"]) == (2 if layout == "item_per_image" else 1)
    assert done["cost"] == 2 * FLASH_IMAGE_QUOTA
    assert control.balance("qingbo", KEY) == START_BALANCE - 2 * FLASH_IMAGE_QUOTA
    outputs = control.task(created["task_id"])["outputs"]
    assert [o["blocked"] for o in outputs] == [False, True, False]
    kept = {o["blob_id"] for o in outputs if not o["blocked"]}
    assert {url.split("/output/")[1].split("?")[0] for url in urls} == kept
    for url in urls:
        assert httpx.get(url).status_code == 200


def test_a_batch_blocked_image_by_image_reads_as_a_blocked_task(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    control.add_faults(rule({"task": "partial_block", "images": [0, 1], "reason": "nsfw output"}))
    created = submitted(api, task_body(n=2, callback_url=hook.url))
    control.advance_to(timeline(control, created["task_id"])["finished_at"])
    failed = fetch(api, created["task_id"])
    assert (failed["status"], failed["progress"], failed["cost"]) == ("failed", 0, 0)
    assert failed["error"] == {"message": "[upstream_bad_request] Upstream returned: nsfw output",
                               "code": "upstream_bad_request"}
    assert control.balance("qingbo", KEY) == START_BALANCE
    (attempt,) = control.journal(kind="webhook", task_id=created["task_id"])
    assert attempt["detail"]["event"] == "failed"
    assert hook.bodies() == [failed]


def test_failure_callbacks_meet_webhook_faults(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    control.add_faults(
        rule({"task": "fail", "at": 0}),
        rule({"webhook": "duplicate"}, {"provider": "qingbo", "operation": "webhook", "body": {"event": "failed"}}),
    )
    created = submitted(api, task_body(callback_url=hook.url))
    control.advance(60)
    control.flush_webhooks()
    bodies = hook.bodies()
    assert len(bodies) == 2 and bodies[0] == bodies[1] == fetch(api, created["task_id"])


def test_window_text() -> None:
    assert [window_text(s) for s in (3600, 60, 300, 90, 0.5, 86_400, 7200)] == [
        "1h", "1m", "5m", "90s", "0.5s", "1d", "2h",
    ]


# -- result links: a CDN, not the API (simulator/providers/signed_files.py, shared by every link provider) -----


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("forbidden", 403, "AccessDenied"), ("not_found", 404, "NoSuchKey"), ("rate_limited", 429, "SlowDown"),
     ("service_unavailable", 503, "SlowDown"), ("server_error", 500, "InternalError")],
)
def test_forced_errors_on_a_result_link_answer_like_an_object_store(
    api: httpx.Client, control: ControlClient, kind: str, status: int, code: str
) -> None:
    task = submitted(api, task_body())
    control.advance(600)
    [url] = [u for item in fetch(api, task["task_id"])["result"]["images"] for u in item["url"]]
    control.add_faults(rule({"error": kind, "retry_after": 3}, {"operation": "DownloadImage"}, times=1))
    refused = httpx.get(url)
    assert refused.status_code == status
    assert refused.headers["content-type"] == "application/xml"
    assert f"<Code>{code}</Code>" in refused.text and refused.headers["retry-after"] == "3"
    assert "quota" not in refused.text  # a CDN's words, not the API's
    assert control.journal(operation="DownloadImage")[-1]["self_check"] == []
    assert httpx.get(url).status_code == 200  # the rule is spent


def test_a_link_to_nothing_is_no_such_key(api: httpx.Client, control: ControlClient) -> None:
    task = submitted(api, task_body())
    control.advance(600)
    [url] = [u for item in fetch(api, task["task_id"])["result"]["images"] for u in item["url"]]
    path, query = url.split("?", 1)
    control.reset()  # the blob is gone; its link still carries a valid signature for its path
    missing = httpx.get(url)
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/xml")
    assert "<Code>NoSuchKey</Code>" in missing.text and path and query

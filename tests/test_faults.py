"""Failure rehearsal, provider-neutral: rules, limits, task / network / webhook faults, scenarios.

Civitai is the vehicle; what each provider renders is tested in tests/test_<slug>_faults.py.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from conftest import nb2_body, provider_fixtures
from support_civitai import WORKFLOWS

from simulator.control_client import ControlClient, ControlError
from simulator.live import LiveServer
from simulator.testing import WebhookReceiver

KEY = "fault-key"

server, provider_http, api = provider_fixtures("civitai", client="api", headers={"Authorization": f"Bearer {KEY}"})


def submit(api: httpx.Client, **fields: Any) -> httpx.Response:
    return api.post(WORKFLOWS, json=nb2_body(**fields))


def task_of(control: ControlClient, response: httpx.Response) -> dict[str, Any]:
    return control.task(response.json()["id"])


# -- forced errors and limits ---------------------------------------------------------------------------


def test_the_third_submit_gets_a_429_with_retry_after_and_the_fourth_succeeds(
    api: httpx.Client, control: ControlClient
) -> None:
    control.add_faults({"match": {"operation": "SubmitWorkflow"}, "when": {"after": 2, "times": 1},
                        "do": {"error": "rate_limited", "retry_after": 2}})
    statuses = [submit(api) for _ in range(4)]
    assert [r.status_code for r in statuses] == [202, 202, 429, 202]
    assert statuses[2].headers["retry-after"] == "2"
    assert statuses[2].headers["content-type"].startswith("application/problem+json")
    faulted = control.journal(provider="civitai", faulted="true")
    assert [(e["operation"], e["status"]) for e in faulted] == [("SubmitWorkflow", 429)]
    assert faulted[0]["faults"][0]["rule"] == "control-1"
    [rule] = control.faults()["rules"]
    assert (rule["matched"], rule["fired"]) == (4, 1)


def test_any_status_can_be_forced_in_the_providers_envelope(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults({"match": {"method": "GET"}, "when": {"times": 1}, "do": {"error": "http", "status": 418}})
    response = api.get(f"{WORKFLOWS}/nope")
    assert response.status_code == 418
    assert response.json()["status"] == 418


def test_request_window_limit_recovers_on_the_clock(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"requests": 2, "per": 10})
    assert [submit(api).status_code for _ in range(3)] == [202, 202, 429]
    refused = submit(api)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
    control.advance(10)
    assert submit(api).status_code == 202


def test_in_flight_limit_waits_for_a_task_to_finish(api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"concurrent": 1, "operations": ["SubmitWorkflow"]})
    first = submit(api)
    assert first.status_code == 202
    refused = submit(api)
    assert refused.status_code == 429
    finishes = control.task(first.json()["id"])["timeline"]["finished_at"]
    wait = int(refused.headers["retry-after"])
    assert finishes - control.now() <= wait < finishes - control.now() + 1
    assert api.get(f"{WORKFLOWS}/{first.json()['id']}").status_code == 202  # reads are not limited
    control.advance(wait)
    assert submit(api).status_code == 202


def test_limits_are_per_api_key(server: LiveServer, api: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"requests": 1, "per": 60})
    assert submit(api).status_code == 202
    other = httpx.post(server.provider_url("civitai") + WORKFLOWS, json=nb2_body(),
                       headers={"Authorization": "Bearer someone-else"})
    assert other.status_code == 202
    assert submit(api).status_code == 429


def test_bad_rules_are_refused_with_a_reason_and_change_nothing(control: ControlClient) -> None:
    with pytest.raises(ControlError, match="network action must be one of"):
        control.add_faults({"do": {"error": "server_error"}}, {"do": {"network": "explode"}})
    assert control.faults()["rules"] == []
    with pytest.raises(ControlError, match="unknown key 'sometimes'"):
        control.add_faults({"when": {"sometimes": True}, "do": {"error": "server_error"}})


# -- task faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("do, phase", [
    ({"task": "fail", "at": 0.5, "code": "upstream"}, "failed"),
    ({"task": "expire", "after": 5}, "expired"),
    ({"task": "block"}, "failed"),
])
def test_task_faults_decide_how_the_task_ends(
    api: httpx.Client, control: ControlClient, do: dict[str, Any], phase: str
) -> None:
    control.add_faults({"match": {"operation": "SubmitWorkflow"}, "do": do})
    response = submit(api)
    control.advance(3600)
    task = task_of(control, response)
    assert task["phase"] == phase
    assert task["faults"] or do["task"] == "block"


def test_a_task_that_never_finishes_stays_in_processing(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults({"match": {"operation": "SubmitWorkflow"}, "do": {"task": "never_finish"}})
    response = submit(api)
    control.advance(86_400)
    assert task_of(control, response)["phase"] == "processing"
    control.set_autojump(True)
    polled = api.get(f"{WORKFLOWS}/{response.json()['id']}", params={"wait": 30})
    assert polled.status_code == 202 and polled.json()["completedAt"] is None


def test_slow_queue_draws_are_seeded(api: httpx.Client, control: ControlClient) -> None:
    rule = {"match": {"operation": "SubmitWorkflow"},
            "do": {"task": "slow", "queue": {"distribution": "lognormal", "median": 45, "sigma": 0.6}}}

    def starts() -> list[float]:
        control.reset(seed=3)
        control.add_faults(rule)
        return [task_of(control, submit(api))["timeline"]["started_at"] - control.now() for _ in range(3)]

    first = starts()
    assert first == starts()
    assert min(first) > 10


def test_partial_block_marks_only_the_chosen_images(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults({"match": {"operation": "SubmitWorkflow"}, "do": {"task": "partial_block", "images": [1]}})
    task = task_of(control, submit(api, numImages=3))
    assert [image["blocked"] for image in task["outputs"]] == [False, True, False]
    assert task["outcome"] == "succeeded"


# -- network faults -----------------------------------------------------------------------------------------


def only_once(action: dict[str, Any]) -> dict[str, Any]:
    return {"match": {"operation": "GetWorkflow"}, "when": {"times": 1}, "do": action}


@pytest.mark.parametrize("action, error", [
    ({"network": "reset"}, httpx.ReadError),
    ({"network": "empty"}, httpx.RemoteProtocolError),
    ({"network": "truncate", "fraction": 0.3}, httpx.RemoteProtocolError),
])
def test_dropped_connections(api: httpx.Client, control: ControlClient, action: dict[str, Any],
                             error: type[Exception]) -> None:
    workflow = submit(api).json()["id"]
    control.add_faults(only_once(action))
    with pytest.raises(error):
        api.get(f"{WORKFLOWS}/{workflow}")
    assert api.get(f"{WORKFLOWS}/{workflow}").status_code == 202  # the connection recovers
    entry = control.journal(operation="GetWorkflow", faulted="true")[0]
    assert entry["faults"][0]["do"] == action


def test_malformed_body_is_no_longer_json(api: httpx.Client, control: ControlClient) -> None:
    workflow = submit(api).json()["id"]
    control.add_faults(only_once({"network": "malformed"}))
    response = api.get(f"{WORKFLOWS}/{workflow}")
    assert response.status_code == 202
    with pytest.raises(ValueError):
        response.json()


def test_latency_and_trickle_take_real_time(api: httpx.Client, control: ControlClient) -> None:
    workflow = submit(api).json()["id"]
    control.add_faults(only_once({"network": "latency", "seconds": 0.2}))
    started = time.perf_counter()
    assert api.get(f"{WORKFLOWS}/{workflow}").status_code == 202
    assert time.perf_counter() - started >= 0.2
    control.add_faults(only_once({"network": "trickle", "chunk": 512, "interval": 0.02}))
    with api.stream("GET", f"{WORKFLOWS}/{workflow}") as response:
        chunks = list(response.iter_raw())
    assert len(chunks) > 1
    assert b"".join(chunks).startswith(b"{")


# -- webhook faults ------------------------------------------------------------------------------------------


def events(receiver: WebhookReceiver) -> list[str]:
    return [body["status"] for body in receiver.bodies()]


def run_with_callbacks(api: httpx.Client, control: ControlClient, receiver: WebhookReceiver) -> None:
    body = nb2_body()
    body["callbacks"] = [{"url": receiver.url, "type": ["workflow:*"]}]
    assert api.post(WORKFLOWS, json=body).status_code == 202
    control.flush_webhooks()
    control.advance(120)
    control.flush_webhooks()


@pytest.mark.parametrize("action, expected", [
    ({"webhook": "drop"}, []),
    ({"webhook": "duplicate"}, ["unassigned", "unassigned", "processing", "processing", "succeeded", "succeeded"]),
    ({"webhook": "reorder", "seconds": 5}, ["processing", "unassigned", "succeeded"]),
])
def test_webhook_faults(api: httpx.Client, control: ControlClient, action: dict[str, Any], expected: list[str]) -> None:
    rule: dict[str, Any] = {"match": {"operation": "webhook"}, "do": action}
    if action["webhook"] == "reorder":
        rule["when"] = {"times": 2}
    control.add_faults(rule)
    with WebhookReceiver() as receiver:
        run_with_callbacks(api, control, receiver)
        if action["webhook"] == "reorder":
            control.advance(30)
            control.flush_webhooks()
        received = events(receiver)
    assert received == expected
    dropped = [e for e in control.journal(kind="webhook") if e["detail"]["outcome"] == "dropped"]
    assert len(dropped) == (3 if action["webhook"] == "drop" else 0)


def test_late_webhooks_arrive_after_the_delay(api: httpx.Client, control: ControlClient) -> None:
    control.add_faults({"match": {"operation": "webhook", "body": {"event": "workflow:succeeded"}},
                        "do": {"webhook": "delay", "seconds": 600}})
    with WebhookReceiver() as receiver:
        run_with_callbacks(api, control, receiver)
        assert events(receiver) == ["unassigned", "processing"]
        control.advance(600)
        control.flush_webhooks()
        assert events(receiver) == ["unassigned", "processing", "succeeded"]


# -- scenarios ------------------------------------------------------------------------------------------------


def test_shipped_scenarios_are_listed_with_their_header(control: ControlClient) -> None:
    shipped = {s["name"]: s["description"] for s in control.scenarios()["shipped"]}
    assert set(shipped) == {
        "rate-limit-storm", "empty-wallet", "content-blocked", "partial-batch-block", "slow-queue",
        "flaky-upstream", "dropped-connections", "webhook-outage", "expired-urls", "chaos",
    }
    assert all(text.startswith(name) for name, text in shipped.items())
    assert all("careful client" in text for text in shipped.values())


def test_a_loaded_scenario_survives_reset_until_cleared(api: httpx.Client, control: ControlClient) -> None:
    control.load_scenario("empty-wallet")
    assert submit(api).status_code == 403
    control.reset(seed=0)
    assert submit(api).status_code == 403
    control.clear_scenarios()
    assert control.scenarios()["loaded"] == []
    control.reset(seed=0)
    assert submit(api).status_code == 202


def test_a_bad_scenario_is_refused_whole(control: ControlClient) -> None:
    with pytest.raises(ControlError, match=r"unknown key\(s\) \[.surprise.\]"):
        control.load_scenario(yaml="name: x\nfaults: []\nsurprise: 1\n")
    with pytest.raises(ControlError, match="task action"):
        control.load_scenario(yaml="options: {civitai: {url_ttl_seconds: 5}}\nfaults: [{do: {task: explode}}]\n")
    assert control.options("civitai")["url_ttl_seconds"]["value"] == 600
    with pytest.raises(ControlError, match="no shipped scenario"):
        control.load_scenario("no-such-scenario")


def chaos_run(api: httpx.Client, control: ControlClient, seed: int) -> list[str]:
    control.reset(seed=seed)
    control.load_scenario("chaos")
    outcomes = []
    try:
        for i in range(40):
            try:
                response = submit(api, prompt=f"chaos {i}") if i % 2 == 0 else api.get(f"{WORKFLOWS}/x{i}")
                outcomes.append(str(response.status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
            control.advance(1)
    finally:
        control.clear_scenarios()
    return outcomes


def test_chaos_with_the_same_seed_fails_the_same_way_twice(api: httpx.Client, control: ControlClient) -> None:
    first = chaos_run(api, control, seed=7)
    assert first == chaos_run(api, control, seed=7)
    assert len(set(first)) > 2  # a real mix, not all successes
    assert first != chaos_run(api, control, seed=8)

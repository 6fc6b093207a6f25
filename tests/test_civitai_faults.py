"""Failure rehearsal on the simulated Civitai Orchestration v2: every documented HTTP error forced by a rule in
its own body shape, rate limits on the clock, and task faults rendered where Civitai reports failures — in the
workflow body (workflow / step / job `failed` or `expired`, `jobs[].reason`, `output.errors`, per-image
`blockedReason`) and in its callbacks.

Everything runs on the virtual clock against a server on 127.0.0.1; callbacks go to a local receiver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from conftest import nb2_body, provider_fixtures, receiver_fixture
from support_civitai import BLOBS, WORKFLOWS, assert_valid, submit
from support_civitai import assert_problem as assert_problem_details
from support_civitai import submitted as accepted

from simulator.control_client import ControlClient
from simulator.options import provider_data
from simulator.testing.receiver import WebhookReceiver

KEY = "civitai-fault-key"
CARD = provider_data("civitai")
KINDS = sorted(kind for kind in CARD["faults"] if not kind.startswith("$"))
SUBMIT = {"operation": "SubmitWorkflow"}
NB2_COST = 104  # seed 000: nano-banana-2, 1K, one image

server, provider_http, civitai = provider_fixtures(
    "civitai", client="civitai", headers={"Authorization": f"Bearer {KEY}"}
)
receiver = receiver_fixture()


# -- helpers --------------------------------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A ProblemDetails answer (see support_civitai.assert_problem) that names its type."""
    problem = assert_problem_details(response, status)
    assert problem["type"]
    return problem


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def forced(control: ControlClient, do: dict[str, Any], match: dict[str, Any] | None = None, **when: Any) -> None:
    control.add_faults({"match": match or SUBMIT, "when": when, "do": do})


def read(civitai: httpx.Client, workflow_id: str, **params: Any) -> dict[str, Any]:
    response = civitai.get(f"{WORKFLOWS}/{workflow_id}", params=params)
    assert response.status_code in (200, 202), response.text
    workflow = response.json()
    assert_valid("response/workflow", workflow)
    terminal = workflow["status"] in ("succeeded", "failed", "expired", "canceled")
    assert response.status_code == (200 if terminal else 202)
    return dict(workflow)


def ended(civitai: httpx.Client, control: ControlClient, workflow_id: str) -> dict[str, Any]:
    control.advance(3600)
    return read(civitai, workflow_id)


def only_job(workflow: dict[str, Any]) -> dict[str, Any]:
    (step,) = workflow["steps"]
    (job,) = step["jobs"]
    return dict(job)


def with_callbacks(url: str, **fields: Any) -> dict[str, Any]:
    body = nb2_body(**fields)
    body["callbacks"] = [{"url": url, "type": ["workflow:*", "step:*", "job:*"], "detailed": True}]
    return body


def terminal_events(receiver: WebhookReceiver, status: str) -> dict[str, dict[str, Any]]:
    """The workflow, step and job callbacks that reported `status`, by `$type`."""
    found = {body["$type"]: body for body in receiver.bodies() if body["status"] == status}
    assert set(found) == {"workflow", "step", "job"}, receiver.bodies()
    assert_valid("response/workflow-event", found["workflow"])
    assert_valid("response/step-event", found["step"])
    assert_valid("response/job-event", found["job"])
    return found


# -- forced errors --------------------------------------------------------------------------------------------------


def assert_kind_rendered(response: httpx.Response, kind: str, message: str | None = None) -> None:
    """The documented body for a kind: ProblemDetails, ValidationProblemDetails or SubmitWorkflow's bare string."""
    spec = CARD["faults"][kind]
    message = message or spec["message"]
    if "plainStringOn" in spec:
        assert response.status_code == spec["status"], response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == message
        assert_valid("response/string-error", response.json())
    elif "errorsKey" in spec:
        problem = assert_problem(response, spec["status"])
        assert_valid("response/validation-problem-details", problem)
        assert problem["errors"] == {spec["errorsKey"]: [message]}
        assert problem["title"] == "One or more validation errors occurred."
    else:
        problem = assert_problem(response, spec["status"])
        assert problem["detail"] == message
        assert problem["title"] == CARD["problems"][str(spec["status"])]["title"]
        assert problem["type"] == CARD["problems"][str(spec["status"])]["type"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_documented_error_kind_is_forced_in_civitais_shape(
    civitai: httpx.Client, control: ControlClient, kind: str
) -> None:
    forced(control, {"error": kind})
    response = submit(civitai)
    assert_kind_rendered(response, kind)
    if CARD["faults"][kind]["status"] == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert control.tasks("civitai") == []
    assert control.balance("civitai", KEY) == control.balance("civitai", "someone-untouched")
    (entry,) = control.journal(provider="civitai", operation="SubmitWorkflow")
    assert entry["status"] == response.status_code
    assert entry["faults"][0]["do"] == {"error": kind}


def test_the_third_submit_gets_the_forced_error_and_the_rest_go_through(
    civitai: httpx.Client, control: ControlClient
) -> None:
    forced(control, {"error": "service_unavailable"}, after=2, times=1)
    statuses = [submit(civitai).status_code for _ in range(5)]
    assert statuses == [202, 202, 503, 202, 202]
    assert len(control.tasks("civitai")) == 4
    [rule] = control.faults()["rules"]
    assert (rule["matched"], rule["fired"]) == (5, 1)


def test_the_403_body_follows_the_operation(civitai: httpx.Client, control: ControlClient) -> None:
    """OpenAPI types only SubmitWorkflow's 403 as a string; a 403 elsewhere is ProblemDetails — except an empty
    wallet, which Civitai's own app reads from a 403 on reads too."""
    workflow = accepted(civitai)
    reads = {"operation": "GetWorkflow"}
    forced(control, {"error": "forbidden"}, reads, times=1)
    problem = assert_problem(civitai.get(f"{WORKFLOWS}/{workflow['id']}"), 403)
    assert problem["detail"] == CARD["faults"]["forbidden"]["message"]
    forced(control, {"error": "insufficient_credits"}, reads, times=1)
    assert_kind_rendered(civitai.get(f"{WORKFLOWS}/{workflow['id']}"), "insufficient_credits")
    read(civitai, workflow["id"])  # both rules are spent


def test_a_forced_empty_wallet_answers_like_a_real_one(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_options("civitai", insufficient_buzz_status=402)
    forced(control, {"error": "insufficient_credits"}, times=1)
    forced_answer = submit(civitai)
    control.set_balance("civitai", KEY, 0)
    real_answer = submit(civitai)
    assert forced_answer.status_code == real_answer.status_code == 402
    assert isinstance(forced_answer.json(), str) and isinstance(real_answer.json(), str)
    assert forced_answer.headers["content-type"] == real_answer.headers["content-type"]


def test_the_rules_own_values_win(civitai: httpx.Client, control: ControlClient) -> None:
    forced(control, {"error": "rate_limited", "retry_after": 7, "message": "Slow down."}, times=1)
    limited = submit(civitai)
    assert assert_problem(limited, 429)["detail"] == "Slow down."
    assert limited.headers["retry-after"] == "7"
    forced(control, {"error": "content_blocked", "message": "Prompt blocked as it may violate TOS"}, times=1)
    assert_kind_rendered(submit(civitai), "content_blocked", "Prompt blocked as it may violate TOS")
    forced(control, {"error": "http", "status": 418}, times=1)
    teapot = assert_problem(submit(civitai), 418)
    assert (teapot["type"], teapot["title"]) == ("about:blank", "I'm a Teapot")
    forced(control, {"error": "forbidden", "status": 451}, times=1)
    assert submit(civitai).status_code == 451


def test_a_submit_time_content_block_takes_nothing(civitai: httpx.Client, control: ControlClient) -> None:
    before = control.balance("civitai", KEY)
    forced(control, {"error": "content_blocked"}, times=1)
    refused = submit(civitai)
    problem = assert_problem(refused, 400)
    assert problem["errors"]["messages"] == [CARD["faults"]["content_blocked"]["message"]]
    assert control.tasks("civitai") == [] and control.balance("civitai", KEY) == before


# -- rate limits ----------------------------------------------------------------------------------------------------


def test_a_request_limit_answers_429_problem_details_and_recovers_on_the_clock(
    civitai: httpx.Client, control: ControlClient
) -> None:
    control.set_limits({"provider": "civitai", "requests": 2, "per": 30})
    assert [submit(civitai).status_code for _ in range(2)] == [202, 202]
    refused = submit(civitai)
    problem = assert_problem(refused, 429)
    assert problem["type"] == "https://tools.ietf.org/html/rfc6585#section-4"
    assert problem["detail"] == CARD["faults"]["rate_limited"]["message"]
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 30
    assert not [name for name in refused.headers if name.startswith("x-ratelimit")]  # none documented
    control.advance(wait - 1)
    assert submit(civitai).status_code == 429
    control.advance(1)
    assert submit(civitai).status_code == 202


def test_an_in_flight_limit_guards_submits_only(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_limits({"concurrent": 1})
    first = accepted(civitai)
    assert_problem(submit(civitai), 429)
    read(civitai, first["id"])  # polling is not a submit
    ended(civitai, control, first["id"])
    assert submit(civitai).status_code == 202


# -- credits --------------------------------------------------------------------------------------------------------


def test_the_whatif_estimate_is_what_a_submit_debits(civitai: httpx.Client, control: ControlClient) -> None:
    body = nb2_body(resolution="2K", numImages=2, enableWebSearch=True)
    estimate = submit(civitai, body, whatif="true")
    assert estimate.status_code == 200
    cost = int(estimate.headers["x-civitai-cost-total"])
    assert cost == estimate.json()["cost"]["total"] == (156 + 20) * 2
    before = control.balance("civitai", KEY)
    workflow = accepted(civitai, body)
    assert workflow["transactions"]["list"][0]["amount"] == cost
    assert before - control.balance("civitai", KEY) == cost


# -- task faults: blocks --------------------------------------------------------------------------------------------


def test_a_forced_block_fails_the_step_with_reason_blocked(civitai: httpx.Client, control: ControlClient) -> None:
    forced(control, {"task": "block", "reason": "Google's content filter"})
    workflow = ended(civitai, control, accepted(civitai, nb2_body(numImages=2))["id"])
    assert workflow["status"] == "failed"
    (step,) = workflow["steps"]
    job = only_job(workflow)
    assert step["status"] == job["status"] == "failed"
    assert (job["reason"], job["blockedReason"]) == ("blocked", "Google's content filter")
    assert step["output"]["errors"] == ["blocked"]
    for image in step["output"]["images"]:
        assert image["available"] is False and "url" not in image
        assert image["blockedReason"] == "Google's content filter"
    assert_problem(civitai.get(f"{BLOBS}/{step['output']['images'][0]['id']}"), 403)


def test_a_partial_block_hides_only_the_chosen_images(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    forced(control, {"task": "partial_block", "images": [1], "reason": "Image 2 was moderated."})
    submitted = accepted(civitai, with_callbacks(receiver.url, numImages=3))
    control.flush_webhooks()
    control.advance_to(control.task(submitted["id"])["timeline"]["started_at"] + 0.01)
    running = read(civitai, submitted["id"])
    # While it runs nothing is known yet: every entry looks the same.
    assert [(i["available"], bool(i["url"])) for i in running["steps"][0]["output"]["images"]] == [(False, True)] * 3

    workflow = ended(civitai, control, submitted["id"])
    assert workflow["status"] == "succeeded"
    (step,) = workflow["steps"]
    job = only_job(workflow)
    assert step["status"] == job["status"] == "succeeded" and job.get("reason") is None
    assert step["output"]["errors"] is None
    images = step["output"]["images"]
    assert [image["available"] for image in images] == [True, False, True]
    assert [image["blockedReason"] for image in images] == [None, "Image 2 was moderated.", None]
    assert "url" not in images[1] and "nsfwLevel" not in images[1]
    for image in (images[0], images[2]):
        assert httpx.get(image["url"], follow_redirects=True).status_code == 200
    blocked = f"{BLOBS}/{images[1]['id']}"
    assert "blocked" in assert_problem(civitai.get(blocked), 403)["detail"]
    assert_problem(civitai.post(f"{blocked}/refresh"), 403)
    assert civitai.head(blocked).status_code == 403

    control.flush_webhooks()
    done = terminal_events(receiver, "succeeded")
    assert done["job"]["reason"] is None
    assert [i["available"] for i in done["step"]["details"]["output"]["images"]] == [True, False, True]


# -- task faults: upstream failures ---------------------------------------------------------------------------------


def test_a_generic_failure_has_no_reason_and_reports_its_message(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    forced(control, {"task": "fail", "at": 0.5})
    submitted = accepted(civitai, with_callbacks(receiver.url, numImages=2))
    task = control.task(submitted["id"])
    assert task["faults"] == ["fail at 50% of processing"]
    workflow = ended(civitai, control, submitted["id"])
    assert workflow["status"] == "failed"
    (step,) = workflow["steps"]
    job = only_job(workflow)
    assert step["status"] == job["status"] == "failed"
    assert job["reason"] is None and job["blockedReason"] is None  # the guide: absent reason = generic
    assert step["output"]["errors"] == ["The generation failed upstream."]
    assert all(i["available"] is False and "url" not in i and i["blockedReason"] is None
               for i in step["output"]["images"])
    assert_problem(civitai.get(f"{BLOBS}/{step['output']['images'][0]['id']}"), 404)
    assert seconds(workflow["completedAt"]) == pytest.approx(task["timeline"]["finished_at"], abs=1e-3)
    control.flush_webhooks()
    failed = terminal_events(receiver, "failed")
    assert failed["job"]["reason"] is None and failed["job"]["progress"] == 1
    assert failed["step"]["details"]["output"]["errors"] == ["The generation failed upstream."]
    assert failed["workflow"]["details"]["steps"][0]["status"] == "failed"


def test_no_provider_available_is_reported_in_the_job_and_its_callback(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    message = "No provider can run this job with the given inputs."
    forced(control, {"task": "fail", "at": 0, "code": "no_provider_available", "message": message})
    control.set_autojump(True)
    response = submit(civitai, with_callbacks(receiver.url), wait=100)
    assert response.status_code == 200  # the failure lives in the body
    workflow = response.json()
    assert_valid("response/workflow", workflow)
    assert workflow["status"] == "failed"
    assert only_job(workflow)["reason"] == "no_provider_available"
    assert workflow["steps"][0]["output"]["errors"] == [message]
    control.flush_webhooks()
    assert terminal_events(receiver, "failed")["job"]["reason"] == "no_provider_available"
    query = civitai.get(WORKFLOWS, params={"excludeFailed": "true"})
    assert query.status_code == 200 and query.json()["items"] == []


def test_a_failure_mid_batch_fails_every_step(civitai: httpx.Client, control: ControlClient) -> None:
    """Unlike a moderation block (only the blocked step fails), an upstream failure ends the whole workflow."""
    forced(control, {"task": "fail"})
    body = nb2_body()
    body["steps"].append({"$type": "imageGen", "input": {"engine": "google", "model": "imagen4", "prompt": "x"}})
    workflow = ended(civitai, control, accepted(civitai, body)["id"])
    assert [step["status"] for step in workflow["steps"]] == ["failed", "failed"]


# -- task faults: expiry, never finishing, slowness -----------------------------------------------------------------


def test_an_expired_running_job_timed_out(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    forced(control, {"task": "expire", "after": 300})
    submitted = accepted(civitai, with_callbacks(receiver.url))
    control.advance(299)
    assert read(civitai, submitted["id"])["status"] == "processing"
    control.advance(1)
    workflow = read(civitai, submitted["id"])
    assert workflow["status"] == workflow["steps"][0]["status"] == "expired"
    job = only_job(workflow)
    assert (job["status"], job["reason"]) == ("expired", "timeout")
    assert job["startedAt"] and workflow["completedAt"]
    assert workflow["steps"][0]["output"]["errors"] == ["The task expired before it finished."]
    assert all("url" not in image for image in workflow["steps"][0]["output"]["images"])
    control.flush_webhooks()
    assert terminal_events(receiver, "expired")["job"]["reason"] == "timeout"


def test_a_job_that_expires_in_the_queue_never_started(civitai: httpx.Client, control: ControlClient) -> None:
    forced(control, {"task": "slow", "queue": {"distribution": "fixed", "seconds": 600}})
    forced(control, {"task": "expire", "after": 120})
    submitted = accepted(civitai)
    control.advance(60)
    assert read(civitai, submitted["id"])["status"] == "scheduled"
    workflow = ended(civitai, control, submitted["id"])
    job = only_job(workflow)
    assert (workflow["status"], job["reason"]) == ("expired", "expired")
    assert workflow["startedAt"] is None and job["startedAt"] is None
    assert workflow["steps"][0]["output"]["errors"] == ["The task expired before it finished."]
    assert seconds(workflow["completedAt"]) - seconds(workflow["createdAt"]) == pytest.approx(120, abs=1e-3)


def test_the_rule_can_name_the_expiry_reason(civitai: httpx.Client, control: ControlClient) -> None:
    forced(control, {"task": "expire", "after": 5, "code": "expired"})
    workflow = ended(civitai, control, accepted(civitai)["id"])
    assert only_job(workflow)["reason"] == "expired"


def test_a_workflow_that_never_finishes_stays_processing_until_canceled(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    forced(control, {"task": "never_finish"})
    submitted = accepted(civitai, with_callbacks(receiver.url))
    control.advance(60)
    early = read(civitai, submitted["id"])
    control.advance(86_400)
    late = read(civitai, submitted["id"])
    for workflow in (early, late):
        assert workflow["status"] == "processing" and workflow["completedAt"] is None
        assert only_job(workflow)["queuePosition"]["support"] == "unavailable"
    assert 0 < early["steps"][0]["estimatedProgressRate"] < late["steps"][0]["estimatedProgressRate"] < 1
    control.set_autojump(True)
    assert civitai.get(f"{WORKFLOWS}/{submitted['id']}", params={"wait": 30}).status_code == 202
    control.set_autojump(False)
    listed = civitai.get(WORKFLOWS)
    assert_valid("response/workflow-list", listed.json())
    assert civitai.put(f"{WORKFLOWS}/{submitted['id']}", json={"status": "canceled"}).status_code == 204
    canceled = read(civitai, submitted["id"])
    assert (canceled["status"], only_job(canceled)["reason"]) == ("canceled", "canceled")
    control.flush_webhooks()
    assert terminal_events(receiver, "canceled")["job"]["reason"] == "canceled"


def test_a_slow_queue_shows_as_scheduled_with_a_later_start(civitai: httpx.Client, control: ControlClient) -> None:
    forced(control, {"task": "slow", "queue": {"distribution": "fixed", "seconds": 120}})
    submitted = accepted(civitai)
    control.advance(100)
    waiting = read(civitai, submitted["id"])
    assert waiting["status"] == "scheduled"
    position = only_job(waiting)["queuePosition"]
    assert position["support"] == "available" and position["startAt"] > waiting["createdAt"]
    workflow = ended(civitai, control, submitted["id"])
    assert workflow["status"] == "succeeded"
    task = control.task(submitted["id"])
    assert task["timeline"]["started_at"] - task["timeline"]["accepted_at"] > 120
    assert task["faults"] == ["slow: +120.000 s in the queue"]


# -- webhook faults -------------------------------------------------------------------------------------------------


def test_webhook_rules_match_civitais_event_names(
    civitai: httpx.Client, control: ControlClient, receiver: WebhookReceiver
) -> None:
    forced(control, {"task": "fail", "code": "no_provider_available"})
    forced(control, {"webhook": "duplicate"}, {"operation": "webhook", "body": {"event": "job:failed"}})
    accepted(civitai, with_callbacks(receiver.url))
    control.advance(3600)
    control.flush_webhooks()
    jobs = [body for body in receiver.bodies() if body["$type"] == "job" and body["status"] == "failed"]
    assert len(jobs) == 2 and jobs[0] == jobs[1]
    assert jobs[0]["reason"] == "no_provider_available"

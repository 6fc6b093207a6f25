"""Failure rehearsal on both task-unified gateway providers (FoxAPI/AIHubMax, Evolink), on the virtual clock.

Forced errors are rendered from each provider's error table (provider.json `faults` names the condition
per kind and route), task faults in each provider's failed-task shape; expectations come from the same
data, so one test checks two wire formats. README "Failure rehearsal" (schemas/<slug>/README.md) is the
contract these tests hold the simulator to.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import httpx
import pytest
from conftest import receiver_fixture, server_fixture
from test_gateway_support import FLASH, SLUGS, TOKEN, Gateway, gateway_fixture

from simulator.clock import VirtualClock
from simulator.control_client import ControlClient, ControlError
from simulator.faults.errors import DEFAULT_ERRORS
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.pipeline import Exchange
from simulator.providers.gateway.card import GatewayCard
from simulator.providers.gateway.planner import read_request
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver

ROUTES = ("create", "task", "credits")
SUBMIT = "CreateImageGeneration"
LATE = 10_000  # long after any task of these models has finished
ANY_TASK = "task-unified-1767225600-abcdefgh"

server = server_fixture(*SLUGS)
gw = gateway_fixture(*SLUGS)
hook = receiver_fixture("hook")


# --------------------------------------------------------------------------- what the data says


def operation(slug: str, route: str) -> str:
    return str(provider_data(slug)["gateway"]["routes"][route]["operation"])


def fault_kinds(slug: str) -> list[str]:
    return [kind for kind in provider_data(slug)["faults"] if not kind.startswith("$")]


def expected(slug: str, kind: str, route: str) -> dict[str, Any]:
    """Status, code, type (and the table's own wording, if any) of a forced `kind` on `route`, read from the data."""
    data = provider_data(slug)
    op = operation(slug, route)
    entry = data["faults"][kind]
    entry = entry.get("byOperation", {}).get(op) or entry
    condition = dict(data["gateway"]["errors"][entry["condition"]])
    condition.update(condition.get("byOperation", {}).get(op, {}))
    kind_type = str(condition["type"])
    if kind_type.startswith("$option:"):
        kind_type = data["options"][kind_type.removeprefix("$option:")]["default"]
    return {
        "status": condition["status"], "code": entry.get("code", condition.get("code")), "type": kind_type,
        "message": entry.get("message"),
    }


def send(gw: Gateway, route: str) -> httpx.Response:
    if route == "create":
        return gw.create(gw.body())
    if route == "task":
        return gw.detail(ANY_TASK)
    return gw.http.get(gw.path("credits"))


def forced(gw: Gateway, response: httpx.Response, want: dict[str, Any]) -> dict[str, Any]:
    """The response is the provider's envelope with the wanted status, code and type (schema-checked)."""
    assert response.status_code == want["status"], response.text
    gw.check("response/error", response.json())
    error = response.json()["error"]
    assert error["type"] == want["type"]
    assert error.get("code") == want["code"]
    if want.get("message"):
        assert error["message"] == want["message"]
    return dict(error)


def fail_once(control: ControlClient, slug: str, do: dict[str, Any], **match: Any) -> None:
    control.add_faults({"match": {"provider": slug, **match}, "when": {"times": 1}, "do": do})


# --------------------------------------------------------------------------- forced errors


@pytest.mark.parametrize(
    ("slug", "kind", "route"),
    [(slug, kind, route) for slug in SLUGS for kind in fault_kinds(slug) for route in ROUTES],
)
def test_every_kind_renders_from_the_error_table_on_every_route(
    server: LiveServer, control: ControlClient, slug: str, kind: str, route: str
) -> None:
    gw = Gateway(server, slug)
    fail_once(control, slug, {"error": kind}, operation=operation(slug, route))
    forced(gw, send(gw, route), expected(slug, kind, route))
    [entry] = control.journal(provider=slug, kind="http")
    assert [fired["do"] for fired in entry["faults"]] == [{"error": kind}]
    assert control.tasks(slug) == []
    gw.close()


EXPLICIT = {
    # slug, kind, route: status, code, type — the README's Failure rehearsal table, written out once by hand.
    ("evolink", "bad_request", "create"): (400, "invalid_request", "invalid_request_error"),
    ("evolink", "bad_request", "task"): (400, "invalid_task_id", "invalid_request_error"),
    ("evolink", "insufficient_credits", "create"): (402, "insufficient_quota", "insufficient_quota"),
    ("evolink", "insufficient_credits", "task"): (402, "quota_exceeded", "insufficient_quota"),
    ("evolink", "forbidden", "create"): (403, "model_access_denied", "invalid_request_error"),
    ("evolink", "forbidden", "task"): (403, "permission_denied", "invalid_request_error"),
    ("evolink", "not_found", "task"): (404, "task_not_found", "invalid_request_error"),
    ("evolink", "content_blocked", "create"): (400, "content_policy_violation", "invalid_request_error"),
    ("evolink", "rate_limited", "create"): (429, "rate_limit_exceeded", "rate_limit_error"),
    ("evolink", "rate_limited", "task"): (429, "rate_limit_exceeded", "evo_api_error"),
    ("evolink", "server_error", "task"): (500, "internal_error", "api_error"),
    ("evolink", "bad_gateway", "create"): (502, "upstream_error", "api_error"),
    ("evolink", "service_unavailable", "create"): (503, "service_unavailable", "api_error"),
    ("evolink", "gateway_timeout", "create"): (504, "upstream_error", "api_error"),
    ("foxapi", "bad_request", "create"): (422, None, "invalid_request_error"),
    ("foxapi", "unauthorized", "create"): (401, None, "authentication_error"),
    ("foxapi", "insufficient_credits", "create"): (402, None, "insufficient_quota"),
    ("foxapi", "forbidden", "create"): (422, "model_not_found", "invalid_request_error"),
    ("foxapi", "forbidden", "task"): (404, None, "not_found"),
    ("foxapi", "content_blocked", "create"): (422, "content_policy_violation", "invalid_request_error"),
    ("foxapi", "rate_limited", "task"): (429, None, "rate_limit_error"),
    ("foxapi", "server_error", "create"): (500, None, "server_error"),
    ("foxapi", "bad_gateway", "create"): (502, None, "server_error"),
    ("foxapi", "service_unavailable", "create"): (503, None, "service_unavailable_error"),
    ("foxapi", "gateway_timeout", "task"): (504, None, "server_error"),
    ("foxapi", "invalid_json", "create"): (400, None, "invalid_request_error"),
    ("foxapi", "unsupported_advanced_options", "create"): (
        422, "unsupported_advanced_options", "invalid_request_error"),
    ("foxapi", "invalid_image_url", "create"): (422, "invalid_image_url", "invalid_request_error"),
}


@pytest.mark.parametrize(("case", "want"), list(EXPLICIT.items()), ids=["-".join(case) for case in EXPLICIT])
def test_documented_answers_per_kind(
    server: LiveServer, control: ControlClient, case: tuple[str, str, str], want: tuple[int, str | None, str]
) -> None:
    slug, kind, route = case
    gw = Gateway(server, slug)
    fail_once(control, slug, {"error": kind})
    status, code, kind_type = want
    forced(gw, send(gw, route), {"status": status, "code": code, "type": kind_type})
    gw.close()


def _render(provider: Any, kind: str, op: str) -> tuple[int, str | None, str]:
    exchange = Exchange("GET", "/", "/", "", "", 0.0, operation=op)
    answer = provider.render_fault(exchange, {"error": kind})
    error = json.loads(answer.body)["error"]
    return answer.status, error.get("code"), error["type"]


@pytest.mark.parametrize("slug", SLUGS)
def test_every_documented_error_is_reachable_by_some_kind(slug: str) -> None:
    """Each (status, code, type) the error table documents, on any route, is what some kind forces there."""
    provider = Simulator(clock=VirtualClock(), providers=[slug]).provider(slug)
    operations = [operation(slug, route) for route in ROUTES]
    documented = set()
    for name in provider.card.errors:
        for op in operations:
            entry = provider.errors.entry(name, op)
            documented.add((entry["status"], entry.get("code"), entry["type"]))
            documented |= {(entry["status"], code, entry["type"]) for code in entry.get("codes", {}).values()}
    reachable = {_render(provider, kind, op) for kind in fault_kinds(slug) for op in operations}
    assert documented - reachable == set()


@pytest.mark.parametrize("slug", SLUGS)
def test_every_shared_kind_is_in_the_table(slug: str) -> None:
    assert set(DEFAULT_ERRORS) <= set(fault_kinds(slug))


def test_third_submit_only_gets_the_forced_error(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 100)
    control.add_faults({
        "match": {"provider": gw.slug, "operation": SUBMIT}, "when": {"after": 2, "times": 1},
        "do": {"error": "rate_limited", "retry_after": 2},
    })
    answers = [gw.create(gw.body()) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 429, 200]
    forced(gw, answers[2], expected(gw.slug, "rate_limited", "create"))
    assert answers[2].headers["retry-after"] == "2"
    assert "x-ratelimit-limit" not in answers[2].headers  # none documented
    assert len(control.tasks(gw.slug)) == 3
    cost = gw.data["models"][FLASH]["credits"]["2K" if gw.slug == "evolink" else "1K"]
    assert control.balance(gw.slug, TOKEN) == pytest.approx(100 - 3 * cost)
    third = control.journal(provider=gw.slug, kind="http")[2]
    assert third["status"] == 429 and third["faults"][0]["do"]["error"] == "rate_limited"


def test_a_rule_may_set_status_message_and_code(gw: Gateway, control: ControlClient) -> None:
    fail_once(control, gw.slug, {"error": "service_unavailable", "retry_after": 3, "message": "try later"})
    response = gw.create(gw.body())
    error = forced(gw, response, expected(gw.slug, "service_unavailable", "create"))
    assert error["message"] == "try later" and response.headers["retry-after"] == "3"
    fail_once(control, gw.slug, {"error": "http", "status": 418})
    teapot = gw.create(gw.body())
    assert teapot.status_code == 418
    gw.check("response/error", teapot.json())
    fail_once(control, gw.slug, {"error": "http", "status": 599})
    odd = gw.detail(ANY_TASK)
    assert odd.status_code == 599
    assert odd.json()["error"]["type"] == expected(gw.slug, "server_error", "task")["type"]


def test_an_unknown_kind_is_refused_when_the_rule_is_added(gw: Gateway, control: ControlClient) -> None:
    with pytest.raises(ControlError) as refused:
        fail_once(control, gw.slug, {"error": "no_such_kind"})
    assert (refused.value.status, refused.value.field) == (400, "rules[0].do.error")
    assert control.faults()["rules"] == []
    assert gw.create(gw.body()).status_code == 200


def test_foxapi_503_type_follows_the_named_option(server: LiveServer, control: ControlClient) -> None:
    fox = Gateway(server, "foxapi")
    control.set_options("foxapi", service_unavailable_type="service_unavailable")
    fail_once(control, "foxapi", {"error": "service_unavailable"})
    assert forced(fox, fox.create(fox.body()), {"status": 503, "code": None, "type": "service_unavailable"})
    fox.close()


# --------------------------------------------------------------------------- rate limits and credits


def test_a_rate_limit_refuses_then_recovers_after_advance(gw: Gateway, control: ControlClient) -> None:
    control.set_limits({"provider": gw.slug, "requests": 2, "per": 10})
    assert gw.create(gw.body()).status_code == 200
    control.advance(4)
    assert gw.detail(ANY_TASK).status_code == 404  # reads count too
    refused = gw.create(gw.body())
    forced(gw, refused, expected(gw.slug, "rate_limited", "create"))
    assert refused.headers["retry-after"] == "6"
    control.advance(5)
    assert gw.create(gw.body()).status_code == 429
    control.advance(1)
    assert gw.create(gw.body()).status_code == 200
    [first, _, _, _, last] = control.journal(provider=gw.slug, kind="http")
    assert first["status"] == last["status"] == 200


def test_tasks_in_flight_are_limited_until_one_finishes(gw: Gateway, control: ControlClient) -> None:
    control.set_limits({"provider": gw.slug, "concurrent": 1})
    first = gw.created()
    refused = gw.create(gw.body())
    forced(gw, refused, expected(gw.slug, "rate_limited", "create"))
    finished = control.task(first["id"])["timeline"]["finished_at"]
    assert int(refused.headers["retry-after"]) == math.ceil(finished - control.now())
    assert gw.task(first["id"])["status"] in ("pending", "processing")  # reads are not guarded
    control.advance_to(finished)
    gw.created()


def test_a_forced_refusal_charges_nothing_and_credits_agree(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 20)
    fail_once(control, gw.slug, {"error": "content_blocked"}, operation=SUBMIT)
    forced(gw, gw.create(gw.body()), expected(gw.slug, "content_blocked", "create"))
    created = gw.created()
    credits = gw.credits()["data"]["token"]
    assert credits["used_credits"] == pytest.approx(created["usage"]["credits_reserved"])
    assert credits["remaining_credits"] == pytest.approx(20 - created["usage"]["credits_reserved"])


# --------------------------------------------------------------------------- task faults


def _task_rule(control: ControlClient, slug: str, do: dict[str, Any], prompt: str | None = None) -> None:
    match: dict[str, Any] = {"provider": slug, "operation": SUBMIT}
    if prompt is not None:
        match["body"] = {"prompt": prompt}
    control.add_faults({"match": match, "do": do})


def _failure(gw: Gateway, kind: str) -> dict[str, str]:
    spec = gw.card["failures"][kind]
    messages = {s["code"]: s["message"] for s in gw.card["failures"].values() if "message" in s}
    messages.update(gw.card.get("failureCodes", {}))
    return {"code": spec["code"], "message": spec.get("message") or messages[spec["code"]]}


def test_fail_mid_way_reads_failed_with_the_upstream_code_and_refunds(gw: Gateway, control: ControlClient) -> None:
    control.set_balance(gw.slug, TOKEN, 20)
    _task_rule(control, gw.slug, {"task": "fail", "at": 0.5})
    created = gw.created()
    timeline = control.task(created["id"])["timeline"]
    control.advance_to(timeline["finished_at"] - 0.5)
    running = gw.task(created["id"])
    assert running["status"] == "processing" and running.get("error") is None
    control.advance(1)
    detail = gw.task(created["id"])
    failure = _failure(gw, "error")
    assert detail["status"] == "failed" and detail["progress"] == gw.card["progress"]["failed"]
    assert detail["error"] == {
        "code": failure["code"], "type": "task_error",
        "message": failure["message"].replace("{detail}", "The generation failed upstream."),
    }
    assert detail.get("results") is None
    assert control.balance(gw.slug, TOKEN) == 20
    assert gw.credits()["data"]["token"]["used_credits"] == 0
    assert control.task(created["id"])["faults"] == ["fail at 50% of processing"]


def test_fail_with_each_documented_code(gw: Gateway, control: ControlClient) -> None:
    """A rule's `code` selects the business code; documented codes carry their documented wording."""
    control.set_balance(gw.slug, TOKEN, 1000)
    codes = {s["code"] for s in gw.card["failures"].values()} | set(gw.card.get("failureCodes", {}))
    codes.add("resource_exhausted")  # FoxAPI's own list was not retrievable: any code passes through as written
    for code in sorted(codes):
        _task_rule(control, gw.slug, {"task": "fail", "code": code, "message": f"why {code}"}, prompt=code)
    ids = {code: gw.created(prompt=code)["id"] for code in sorted(codes)}
    control.advance(LATE)
    messages = {s["code"]: s["message"] for s in gw.card["failures"].values() if "message" in s}
    messages.update(gw.card.get("failureCodes", {}))
    for code, task_id in ids.items():
        error = gw.task(task_id)["error"]
        assert error["code"] == code
        template = messages.get(code) or _failure(gw, "error")["message"]
        assert error["message"] == template.replace("{detail}", f"why {code}")


def test_expire_reads_as_the_timeout_failure(gw: Gateway, control: ControlClient) -> None:
    _task_rule(control, gw.slug, {"task": "expire", "after": 120})
    created = gw.created()
    control.advance(119)
    assert gw.task(created["id"])["status"] in ("pending", "processing")
    control.advance(2)
    detail = gw.task(created["id"])
    failure = _failure(gw, "timeout")
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == failure["code"]
    assert detail["error"]["message"] == failure["message"].replace("{detail}", "The task expired before it finished.")
    assert gw.credits()["data"]["token"]["used_credits"] == 0


def test_never_finish_stays_processing_with_creeping_progress(gw: Gateway, control: ControlClient) -> None:
    _task_rule(control, gw.slug, {"task": "never_finish"})
    created = gw.created()
    seen = []
    for step in (30, 30, 60, LATE):
        control.advance(step)
        detail = gw.task(created["id"])
        assert detail["status"] == "processing" and detail.get("results") is None and detail.get("error") is None
        seen.append(detail["progress"])
    assert seen == sorted(seen) and seen[0] < seen[-1] <= 99
    assert detail.get("task_info", {"can_cancel": True})["can_cancel"] is True
    assert gw.credits()["data"]["token"]["used_credits"] == pytest.approx(created["usage"]["credits_reserved"])


def test_slow_queue_delays_the_start(gw: Gateway, control: ControlClient) -> None:
    _task_rule(control, gw.slug, {"task": "slow", "queue": {"distribution": "fixed", "seconds": 100}})
    created = gw.created()
    control.advance(100)
    assert gw.task(created["id"])["status"] == "pending"
    control.advance(200)
    assert gw.task(created["id"])["status"] == "completed"


def test_a_forced_block_after_processing(gw: Gateway, control: ControlClient) -> None:
    _task_rule(control, gw.slug, {"task": "block", "reason": "nudity detected"})
    created = gw.created()
    control.advance(LATE)
    detail = gw.task(created["id"])
    blocked = gw.card["failures"]["blocked"]
    assert detail["status"] == "failed"
    assert detail["error"] == {"code": blocked["code"], "message": blocked["message"], "type": "task_error"}


def test_partial_block_of_the_only_image_fails_the_task_and_of_another_index_changes_nothing(
    gw: Gateway, control: ControlClient
) -> None:
    control.set_balance(gw.slug, TOKEN, 20)
    _task_rule(control, gw.slug, {"task": "partial_block", "images": [0]}, prompt="first")
    _task_rule(control, gw.slug, {"task": "partial_block", "images": [1]}, prompt="second")
    only = gw.created(prompt="first")
    other = gw.created(prompt="second")
    control.advance(LATE)
    detail = gw.task(only["id"])
    blocked = gw.card["failures"]["blocked"]
    assert detail["status"] == "failed" and detail.get("results") is None
    assert detail["error"]["code"] == blocked["code"]
    assert detail["progress"] == gw.card["progress"]["failed"]
    assert control.balance(gw.slug, TOKEN) == pytest.approx(20 - other["usage"]["credits_reserved"])
    untouched = gw.task(other["id"])
    assert untouched["status"] == "completed" and len(gw.result_urls(untouched)) == 1


@pytest.mark.parametrize("slug", SLUGS)
def test_a_partly_blocked_batch_lists_only_the_images_that_survived(slug: str) -> None:
    """These gateways make one image per task; a batch of several (if a model ever makes one) shrinks its list."""
    provider = Simulator(clock=VirtualClock(), providers=[slug]).provider(slug)
    data = copy.deepcopy(provider_data(slug))
    data["gateway"]["imagesPerTask"] = 3
    provider.card = GatewayCard.load(slug, data)
    planner, renderer = type(provider.planner)(provider), type(provider.renderer)(provider)
    schema = provider.operations[provider.card.routes["create"].operation].request
    body = provider.schemas.with_defaults(schema, {"model": FLASH, "prompt": "p"})
    task = planner.build(TOKEN, body, read_request(provider.card, body), "http://127.0.0.1")
    assert len(task.outputs) == 3
    task.outputs[1].blocked, task.outputs[1].blocked_reason = True, "nudity detected"
    done = renderer.values(task, task.timeline.finished_at + 1)
    assert done["status"] == "completed" and len(done["results"]) == 2
    names = [str(item["url"] if isinstance(item, dict) else item) for item in done["results"]]
    assert all(f"-{n}." in names[i] for i, n in enumerate((0, 2)))
    assert done["error"] is None


# --------------------------------------------------------------------------- Evolink callbacks of failed tasks


@pytest.mark.parametrize(
    ("do", "kind"),
    [
        ({"task": "fail", "at": 0.3, "code": "resource_exhausted"}, "resource_exhausted"),
        ({"task": "fail", "at": 0.3}, "error"),
        ({"task": "expire", "after": 90}, "timeout"),
        ({"task": "partial_block", "images": [0]}, "blocked"),
    ],
    ids=["fail-with-code", "fail", "expire", "partial-block"],
)
def test_evolink_failed_task_callbacks(
    server: LiveServer, control: ControlClient, hook: WebhookReceiver, do: dict[str, Any], kind: str
) -> None:
    evo = Gateway(server, "evolink")
    _task_rule(control, "evolink", do)
    created = evo.created(callback=hook.url)
    control.advance(LATE)
    [delivery] = hook.requests
    body = delivery.json()
    evo.check("response/task-detail", body)
    assert body == evo.task(created["id"])
    code = kind if kind not in evo.card["failures"] else evo.card["failures"][kind]["code"]
    assert body["status"] == "failed" and body["error"]["code"] == code
    [attempt] = control.journal(kind="webhook", task_id=created["id"])
    assert attempt["detail"] == {"attempt": 1, "event": "failed", "outcome": "delivered"}
    evo.close()


def test_evolink_failed_callbacks_can_be_dropped_by_event(
    server: LiveServer, control: ControlClient, hook: WebhookReceiver
) -> None:
    evo = Gateway(server, "evolink")
    control.add_faults({"match": {"operation": "webhook", "body": {"event": "failed"}}, "do": {"webhook": "drop"}})
    _task_rule(control, "evolink", {"task": "fail"}, prompt="doomed")
    failed = evo.created(prompt="doomed", callback=hook.url)
    fine = evo.created(callback=hook.url)
    control.advance(LATE)
    assert [b["id"] for b in hook.bodies()] == [fine["id"]]
    [dropped] = control.journal(kind="webhook", task_id=failed["id"])
    assert dropped["detail"]["outcome"] == "dropped"
    evo.close()


def test_evolink_never_finishing_task_sends_no_callback(
    server: LiveServer, control: ControlClient, hook: WebhookReceiver
) -> None:
    evo = Gateway(server, "evolink")
    _task_rule(control, "evolink", {"task": "never_finish"})
    evo.created(callback=hook.url)
    control.advance(LATE)
    assert hook.requests == []
    evo.close()


# --------------------------------------------------------------------------- the data card's checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["faults"]["rate_limited"].update(condition="nope"), "must name an error condition"),
        (lambda d: d["faults"]["forbidden"].update(byOperation={"Nope": {"condition": "internal"}}),
         "unknown operation"),
        (lambda d: d["faults"]["server_error"].update(status=500), "unknown keys"),
        (lambda d: d["gateway"]["failureCodes"].update(content_policy_violation="x"), "repeats"),
        (lambda d: d["gateway"]["failures"].update(error={"code": "undocumented"}), "without a message"),
        (lambda d: d["gateway"]["statusErrors"].update({"503": "nope"}), "unknown error conditions"),
    ],
    ids=["condition", "operation", "key", "repeated-message", "silent-code", "status-table"],
)
def test_a_fault_table_with_a_gap_fails_at_start_up(change: Any, message: str) -> None:
    data = copy.deepcopy(provider_data("evolink"))
    change(data)
    with pytest.raises(ValueError, match=message):
        GatewayCard.load("evolink", data)

"""End-to-end HTTP tests of the simulated Civitai Orchestration v2 API (engine `google`, seed 000).

Everything goes over a real socket to the session's simulator on 127.0.0.1 and is judged by what a
client sees: status codes, bodies (checked against the captured response schemas), headers, bytes
and timestamps on the virtual clock. Nothing sleeps: tests advance the clock or turn on autojump.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from conftest import TOKEN, civitai_example, civitai_examples, nb2_body
from support_civitai import (
    BLOBS,
    BLOCK,
    VERIFY_TLS,
    WORKFLOWS,
    assert_problem,
    assert_valid,
    assert_validation_problem,
    first_image,
    get_workflow,
    seconds,
    submit,
    submitted,
    workflow_body,
)

from simulator.control_client import ControlClient
from simulator.examples import expand
from simulator.live import LiveServer

TERMINAL = {"succeeded", "failed", "expired", "canceled"}

ClientFactory = Callable[[str | None], httpx.Client]


# -- helpers ---------------------------------------------------------------------------------------


def finish(client: httpx.Client, control: ControlClient, workflow_id: str) -> dict[str, Any]:
    """Run a workflow to its end by jumping the clock (a slow one can need more than one wait)."""
    control.set_autojump(True)
    for _ in range(10):
        response = get_workflow(client, workflow_id, wait=100)
        if response.status_code == 200:
            assert_valid("response/workflow", response.json())
            return response.json()
    raise AssertionError(f"workflow {workflow_id} never finished")


def query(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(WORKFLOWS, params=params)
    assert response.status_code == 200, response.text
    assert_valid("response/workflow-list", response.json())
    return response.json()


def listed_ids(client: httpx.Client, **params: Any) -> list[str]:
    return [item["id"] for item in query(client, **params)["items"]]


@pytest.fixture
def make_client(live_server: LiveServer) -> Iterator[ClientFactory]:
    """Clients of the simulated Civitai with other credentials (a raw Authorization value, or none)."""
    clients: list[httpx.Client] = []

    def make(authorization: str | None) -> httpx.Client:
        headers = {"Authorization": authorization} if authorization is not None else {}
        client = httpx.Client(base_url=live_server.provider_url("civitai"), headers=headers, verify=VERIFY_TLS)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- documented examples ---------------------------------------------------------------------------

REQUEST_EXAMPLES = [path.stem for path in civitai_examples("requests")]
INVALID_EXAMPLES = [path.stem for path in civitai_examples("invalid")]


@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_documented_request_with_wait_succeeds(civitai: httpx.Client, control: ControlClient, name: str) -> None:
    control.set_autojump(True)
    response = submit(civitai, civitai_example("requests", name), wait=60)
    assert response.status_code == 200, response.text
    workflow = response.json()
    assert_valid("response/workflow", workflow)
    assert workflow["status"] == "succeeded"
    assert all(image["available"] and image["url"] for image in workflow["steps"][0]["output"]["images"])


@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_documented_request_without_wait_is_accepted(civitai: httpx.Client, name: str) -> None:
    response = submit(civitai, civitai_example("requests", name), wait=0)
    assert response.status_code == 202, response.text
    workflow = response.json()
    assert_valid("response/workflow", workflow)
    assert workflow["status"] not in TERMINAL


def test_documented_callback_to_a_remote_host_is_journaled_but_never_sent(
    civitai: httpx.Client, control: ControlClient
) -> None:
    """The dossier example calls back https://example.com: the simulator must not leave this machine."""
    control.set_autojump(True)
    workflow = submitted(civitai, civitai_example("requests", "dossier-3.5-full-request"), wait=60)
    assert workflow["status"] == "succeeded"
    control.flush_webhooks()
    attempts = control.journal(kind="webhook", task_id=workflow["id"])
    assert [entry["detail"]["event"] for entry in attempts] == ["workflow:succeeded"]
    assert attempts[0]["path"] == "https://example.com/hook"
    assert attempts[0]["status"] is None  # no response: nothing was sent
    assert attempts[0]["detail"]["outcome"] not in ("delivered", "retrying")


@pytest.mark.parametrize("name", INVALID_EXAMPLES)
def test_documented_invalid_body_is_a_validation_problem(
    civitai: httpx.Client, control: ControlClient, name: str
) -> None:
    case = civitai_example("invalid", name)
    response = submit(civitai, expand(case["body"]))
    expect = case["expect"]
    assert_validation_problem(response, expect["path"])
    assert control.tasks("civitai") == []
    (entry,) = control.journal(provider="civitai", operation="SubmitWorkflow")
    assert entry["status"] == 400
    found = {violation["path"]: violation for violation in entry["violations"]}
    assert found[expect["path"]]["rule"] == expect["rule"]
    if "nearest" in expect:
        assert found[expect["path"]]["nearest"] == expect["nearest"]


@pytest.mark.parametrize(
    ("name", "wording"),
    [
        ("nb2-quantity-instead-of-numImages", ("unknown property", "quantity")),
        ("imagen4-aspect-ratio-21x9", ("aspectRatio must be one of",)),
        ("imagen4-aspect-ratio-5x4", ("aspectRatio must be one of",)),
        ("imagen4-resolution", ("resolution is not a valid property",)),
        ("imagen4-images", ("images is not a valid property",)),
        ("nb2-eleven-images", ("images maxItems",)),
        ("unknown-engine", ("No derived type found for discriminator value 'vertex'",)),
        ("unknown-model", ("No derived type found for discriminator value 'nano-banana-3'",)),
        ("nb2-resolution-lowercase-4k", ("'4k' is not valid for resolution",)),
    ],
)
def test_troubleshooting_wording_of_seed_000(civitai: httpx.Client, name: str, wording: tuple[str, ...]) -> None:
    case = civitai_example("invalid", name)
    problem = assert_validation_problem(submit(civitai, expand(case["body"])), case["expect"]["path"])
    text = " | ".join(problem["errors"][case["expect"]["path"]])
    for words in wording:
        assert words in text


# -- lifecycle and wait ------------------------------------------------------------------------------


def test_lifecycle_on_the_virtual_clock(civitai: httpx.Client, control: ControlClient) -> None:
    response = submit(civitai, nb2_body())
    assert response.status_code == 202
    workflow = response.json()
    assert workflow["status"] in ("unassigned", "scheduled")
    assert workflow["startedAt"] is None and workflow["completedAt"] is None
    statuses, rates = [workflow["status"]], []
    for _ in range(30):  # 1 s steps cover the 20 s ceiling of nano-banana-2 1K
        control.advance(1)
        response = get_workflow(civitai, workflow["id"])
        workflow = response.json()
        assert_valid("response/workflow", workflow)
        if workflow["status"] != statuses[-1]:
            statuses.append(workflow["status"])
        if workflow["status"] == "processing":
            assert response.status_code == 202
            step = workflow["steps"][0]
            assert step["status"] == step["jobs"][0]["status"] == "processing"
            assert workflow["startedAt"] is not None and workflow["completedAt"] is None
            rates.append(step["estimatedProgressRate"])
        if workflow["status"] in TERMINAL:
            break
    assert statuses[-2:] == ["processing", "succeeded"]
    assert set(statuses) <= {"unassigned", "scheduled", "processing", "succeeded"}
    assert rates and all(0 <= rate < 1 for rate in rates) and rates == sorted(rates) and rates[-1] > 0
    assert response.status_code == 200
    step = workflow["steps"][0]
    assert step["status"] == step["jobs"][0]["status"] == "succeeded"
    assert step["estimatedProgressRate"] is None
    image = first_image(workflow)
    assert image["available"] is True and image["url"].startswith("http://127.0.0.1:")
    created, started, completed = (seconds(workflow[key]) for key in ("createdAt", "startedAt", "completedAt"))
    assert created < started < completed <= control.now()
    assert 8 <= completed - created <= 20


@pytest.mark.parametrize(
    ("model", "resolution", "low", "high"),
    [
        ("nano-banana-2", "1K", 8, 20),
        ("nano-banana-2", "2K", 20, 60),
        ("nano-banana-2", "4K", 20, 60),
        ("nano-banana-pro", "1K", 20, 60),
        ("nano-banana-pro", "2K", 20, 60),
        ("nano-banana-pro", "4K", 20, 60),
        ("imagen4", None, 8, 20),
    ],
)
def test_runtime_per_image_follows_the_seed_table(
    civitai: httpx.Client, control: ControlClient, model: str, resolution: str | None, low: float, high: float
) -> None:
    extra = {"resolution": resolution} if resolution else {}
    for num_images in (1, 1, 1, 2, 3):
        workflow = submitted(civitai, workflow_body(model, numImages=num_images, **extra))
        done = finish(civitai, control, workflow["id"])
        duration = seconds(done["completedAt"]) - seconds(done["createdAt"])
        assert low * num_images <= duration <= high * num_images, (num_images, duration)


def test_get_with_wait_returns_at_the_moment_of_completion(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = submitted(civitai, nb2_body())
    control.set_autojump(True)
    response = get_workflow(civitai, workflow["id"], wait=60)
    assert response.status_code == 200
    done = response.json()
    assert done["status"] == "succeeded"
    assert control.now() == pytest.approx(seconds(done["completedAt"]), abs=1e-3)


def slow_workflow(client: httpx.Client, control: ControlClient, longer_than: float) -> dict[str, Any]:
    """A workflow (pro 4K x4, 80-240 s) that is still running `longer_than` seconds from now."""
    for _ in range(10):
        workflow = submitted(client, workflow_body("nano-banana-pro", resolution="4K", numImages=4))
        timeline = control.task(workflow["id"])["timeline"]
        if timeline["finished_at"] - control.now() > longer_than:
            return workflow
    raise AssertionError("no slow workflow drawn")


def test_get_wait_above_100_is_clamped_to_100_seconds(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = slow_workflow(civitai, control, longer_than=100.5)
    control.set_autojump(True)
    before = control.now()
    response = get_workflow(civitai, workflow["id"], wait=1000)
    assert response.status_code == 202
    assert response.json()["status"] == "processing"
    assert control.now() - before == pytest.approx(100, abs=1e-6)


def test_submit_wait_above_100_is_clamped_to_100_seconds(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    for _ in range(10):  # pro 4K x4 takes 80-240 s: a draw under 100 s must answer 200 when it ends
        before = control.now()
        response = submit(civitai, workflow_body("nano-banana-pro", resolution="4K", numImages=4), wait=1000)
        workflow = response.json()
        if response.status_code == 200:
            assert control.now() == pytest.approx(seconds(workflow["completedAt"]), abs=1e-3)
            assert control.now() - before < 100
            continue
        assert response.status_code == 202 and workflow["status"] == "processing"
        assert control.now() - before == pytest.approx(100, abs=1e-6)
        return
    raise AssertionError("no draw slower than the cap")


# -- cost, whatif, Buzz ------------------------------------------------------------------------------

SOURCE = "https://example.com/source.png"
PRICES = [
    ("imagen4", {}, 40),
    ("imagen4", {"numImages": 3}, 120),
    ("nano-banana-2", {"resolution": "1K"}, 104),
    ("nano-banana-2", {"resolution": "2K"}, 156),
    ("nano-banana-2", {"resolution": "4K"}, 208),
    ("nano-banana-2", {"enableWebSearch": True}, 124),
    ("nano-banana-2", {"enableGoogleSearch": True}, 124),
    ("nano-banana-2", {"enableWebSearch": True, "enableGoogleSearch": True}, 144),
    ("nano-banana-2", {"resolution": "2K", "enableWebSearch": True, "numImages": 2}, 352),
    ("nano-banana-2", {"resolution": "4K", "numImages": 4}, 832),
    ("nano-banana-2", {"images": [SOURCE]}, 104),
    ("nano-banana-pro", {"resolution": "1K"}, 160),
    ("nano-banana-pro", {"resolution": "2K"}, 230),
    ("nano-banana-pro", {"resolution": "4K"}, 320),
    ("nano-banana-pro", {"resolution": "1K", "images": [SOURCE]}, 180),
    ("nano-banana-pro", {"resolution": "2K", "images": [SOURCE]}, 250),
    ("nano-banana-pro", {"resolution": "4K", "images": [SOURCE]}, 340),
    ("nano-banana-pro", {"resolution": "4K", "images": [SOURCE], "numImages": 2}, 680),
]


@pytest.mark.parametrize(("model", "fields", "cost"), PRICES)
def test_whatif_quotes_the_seed_price_and_charges_nothing(
    civitai: httpx.Client, control: ControlClient, model: str, fields: dict[str, Any], cost: int
) -> None:
    balance = control.balance("civitai", TOKEN)
    response = submit(civitai, workflow_body(model, **fields), whatif=True)
    assert response.status_code == 200
    workflow = response.json()
    assert_valid("response/workflow", workflow)
    assert workflow["status"] == "unassigned"
    assert workflow["cost"]["total"] == cost
    assert [t["amount"] for t in workflow["transactions"]["list"]] == [cost]
    assert workflow["transactions"]["insufficientBuzz"] is False
    assert response.headers["x-civitai-cost-total"] == str(cost)
    by_currency = dict(pair.split("=") for pair in response.headers["x-civitai-cost-by-currency"].split(";"))
    assert sum(int(amount) for amount in by_currency.values()) == cost
    assert response.headers["x-civitai-insufficient-buzz"] == "false"
    assert control.balance("civitai", TOKEN) == balance
    assert listed_ids(civitai) == []
    assert control.tasks("civitai") == []
    assert_problem(get_workflow(civitai, workflow["id"]), 404)


def test_whatif_with_a_low_balance_reports_insufficient_buzz(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_balance("civitai", TOKEN, 100)
    response = submit(civitai, nb2_body(), whatif=True)
    assert response.status_code == 200
    assert response.json()["transactions"]["insufficientBuzz"] is True
    assert response.headers["x-civitai-insufficient-buzz"] == "true"
    assert response.headers["x-civitai-cost-total"] == "104"
    assert control.balance("civitai", TOKEN) == 100


def test_insufficient_buzz_is_a_403_string_and_takes_nothing(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_balance("civitai", TOKEN, 103)
    response = submit(civitai, nb2_body())
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), str) and "Buzz" in response.json()
    assert control.balance("civitai", TOKEN) == 103
    assert control.tasks("civitai") == []
    assert listed_ids(civitai) == []


def test_submission_debits_exactly_the_cost(civitai: httpx.Client, control: ControlClient) -> None:
    balance = control.balance("civitai", TOKEN)
    workflow = submitted(civitai, nb2_body(resolution="2K", numImages=2, enableGoogleSearch=True))
    assert workflow["cost"]["total"] == 2 * (156 + 20)
    assert workflow["transactions"]["list"] == [
        {"type": "debit", "amount": 352, "id": workflow["transactions"]["list"][0]["id"], "accountType": "blue"}
    ]
    assert control.balance("civitai", TOKEN) == balance - 352


# -- cancel and blocked ------------------------------------------------------------------------------


def cancel(client: httpx.Client, workflow_id: str) -> httpx.Response:
    return client.put(f"{WORKFLOWS}/{workflow_id}", json={"status": "canceled"})


def test_cancel_before_processing_refunds(civitai: httpx.Client, control: ControlClient) -> None:
    balance = control.balance("civitai", TOKEN)
    workflow = submitted(civitai, nb2_body())
    response = cancel(civitai, workflow["id"])
    assert response.status_code == 204 and response.content == b""
    response = get_workflow(civitai, workflow["id"])
    assert response.status_code == 200
    canceled = response.json()
    assert_valid("response/workflow", canceled)
    step = canceled["steps"][0]
    assert canceled["status"] == step["status"] == step["jobs"][0]["status"] == "canceled"
    assert canceled["completedAt"] == canceled["createdAt"]
    debit, credit = canceled["transactions"]["list"]
    assert (debit["type"], credit["type"], credit["amount"]) == ("debit", "credit", debit["amount"])
    assert control.balance("civitai", TOKEN) == balance
    control.advance(60)
    assert get_workflow(civitai, workflow["id"]).json()["status"] == "canceled"


def test_cancel_while_processing_keeps_the_charge(civitai: httpx.Client, control: ControlClient) -> None:
    balance = control.balance("civitai", TOKEN)
    workflow = submitted(civitai, nb2_body())
    started = control.task(workflow["id"])["timeline"]["started_at"]
    control.advance_to(started + 1)
    assert cancel(civitai, workflow["id"]).status_code == 204
    canceled = get_workflow(civitai, workflow["id"]).json()
    assert canceled["status"] == "canceled"
    assert seconds(canceled["completedAt"]) == pytest.approx(started + 1, abs=1e-3)
    assert [t["type"] for t in canceled["transactions"]["list"]] == ["debit"]
    assert control.balance("civitai", TOKEN) == balance - 104
    assert all(not image["available"] and not image.get("url") for image in canceled["steps"][0]["output"]["images"])


def test_cancel_of_a_finished_workflow_changes_nothing(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = finish(civitai, control, submitted(civitai, nb2_body())["id"])
    balance = control.balance("civitai", TOKEN)
    assert cancel(civitai, workflow["id"]).status_code == 204
    again = get_workflow(civitai, workflow["id"]).json()
    assert again["status"] == "succeeded"
    assert again["transactions"] == workflow["transactions"]
    assert again["completedAt"] == workflow["completedAt"]
    assert control.balance("civitai", TOKEN) == balance


def assert_blocked(workflow: dict[str, Any]) -> None:
    assert_valid("response/workflow", workflow)
    step = workflow["steps"][0]
    job = step["jobs"][0]
    assert workflow["status"] == step["status"] == job["status"] == "failed"
    assert job["reason"] == "blocked" and job["blockedReason"]
    assert step["output"]["errors"]
    for image in step["output"]["images"]:
        assert image["available"] is False and not image.get("url") and image["blockedReason"]


def test_prompt_trigger_blocks_the_step(civitai: httpx.Client, control: ControlClient) -> None:
    response = submit(civitai, nb2_body(prompt=f"a banana {BLOCK}"))
    assert response.status_code == 202
    control.set_autojump(True)
    response = get_workflow(civitai, response.json()["id"], wait=60)
    assert response.status_code == 200
    assert_blocked(response.json())


def test_moderation_patterns_from_the_control_plane_block(civitai: httpx.Client, control: ControlClient) -> None:
    control.set_moderation([r"forbidden\s+fruit"])
    control.set_autojump(True)
    blocked = submit(civitai, nb2_body(prompt="A FORBIDDEN   fruit"), wait=60)
    assert blocked.status_code == 200
    assert_blocked(blocked.json())
    assert submitted(civitai, nb2_body(prompt="a forbidden banana"), wait=60)["status"] == "succeeded"


# -- authentication and ownership --------------------------------------------------------------------

ROUTES = [
    ("POST", WORKFLOWS),
    ("GET", WORKFLOWS),
    ("GET", WORKFLOWS + "/{workflow}"),
    ("PUT", WORKFLOWS + "/{workflow}"),
    ("DELETE", WORKFLOWS + "/{workflow}"),
    ("POST", WORKFLOWS + "/{workflow}/tags"),
    ("DELETE", WORKFLOWS + "/{workflow}/tags"),
    ("DELETE", WORKFLOWS + "/{workflow}/tags/first"),
    ("GET", WORKFLOWS + "/{workflow}/steps/$0"),
    ("PUT", WORKFLOWS + "/{workflow}/steps/$0"),
    ("GET", BLOBS + "/{blob}"),
    ("HEAD", BLOBS + "/{blob}"),
    ("POST", BLOBS + "/{blob}/refresh"),
]
BODIES = {
    ("POST", WORKFLOWS): nb2_body(),
    ("PUT", WORKFLOWS + "/{workflow}"): {"status": "canceled"},
    ("POST", WORKFLOWS + "/{workflow}/tags"): "second",
    ("PUT", WORKFLOWS + "/{workflow}/steps/$0"): {"metadata": {"k": "v"}},
}


def call_routes(client: httpx.Client, workflow: dict[str, Any]) -> Iterator[tuple[str, httpx.Response]]:
    names = {"workflow": workflow["id"], "blob": first_image(workflow)["id"]}
    for method, template in ROUTES:
        body = BODIES.get((method, template))
        response = client.request(
            method, template.format(**names), json=body if body is not None else None,
        )
        yield f"{method} {template}", response


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dGVzdDp0ZXN0", "test-token", "Token test-token", "Bearer\ttest"],
    ids=["missing", "empty", "no-token", "basic", "bare-token", "other-scheme", "tab"],
)
def test_bad_authorization_is_401_on_every_route(
    civitai: httpx.Client, control: ControlClient, make_client: ClientFactory, authorization: str | None
) -> None:
    workflow = finish(civitai, control, submitted(civitai, nb2_body())["id"])
    civitai.post(f"{WORKFLOWS}/{workflow['id']}/tags", json="first")
    stranger = make_client(authorization)
    for route, response in call_routes(stranger, workflow):
        assert response.status_code == 401, route
        assert response.headers["www-authenticate"] == "Bearer", route
        if response.request.method != "HEAD":
            assert_problem(response, 401)
    after = get_workflow(civitai, workflow["id"]).json()
    assert after["status"] == "succeeded" and after["tags"] == ["first"]
    assert len(control.tasks("civitai")) == 1


def test_only_listed_tokens_are_accepted(control: ControlClient, make_client: ClientFactory) -> None:
    control.set_tokens("civitai", ["good"])
    response = submit(make_client("Bearer unknown"), nb2_body())
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert submit(make_client("Bearer good"), nb2_body()).status_code == 202
    control.set_tokens("civitai", None)
    assert submit(make_client("Bearer anything"), nb2_body()).status_code == 202


def test_another_accounts_workflow_is_not_found(
    civitai: httpx.Client, control: ControlClient, make_client: ClientFactory
) -> None:
    workflow = finish(civitai, control, submitted(civitai, nb2_body())["id"])
    civitai.post(f"{WORKFLOWS}/{workflow['id']}/tags", json="first")
    other = make_client("Bearer someone-else")
    for route, response in call_routes(other, workflow):
        if route.endswith(f"{WORKFLOWS}"):
            continue  # the collection routes are the other account's own
        assert response.status_code == 404, route
        if response.request.method != "HEAD":
            assert_problem(response, 404)
    assert workflow["id"] not in listed_ids(other)
    after = get_workflow(civitai, workflow["id"]).json()
    assert after["tags"] == ["first"] and after["steps"][0]["metadata"] == {}


# -- externalId, query, tags, steps, delete --------------------------------------------------------------


def test_external_id_returns_the_same_workflow_without_a_second_charge(
    civitai: httpx.Client, control: ControlClient, make_client: ClientFactory
) -> None:
    balance = control.balance("civitai", TOKEN)
    body = {**nb2_body(), "externalId": "job-123"}
    first = submitted(civitai, body)
    control.advance(2)
    second = submitted(civitai, {**nb2_body(prompt="a different prompt"), "externalId": "job-123"})
    assert second["id"] == first["id"]
    assert second["createdAt"] == first["createdAt"]
    assert second["steps"][0]["input"]["prompt"] == first["steps"][0]["input"]["prompt"]
    assert control.balance("civitai", TOKEN) == balance - 104
    assert len(control.tasks("civitai")) == 1
    # The key is scoped to the account: another one gets its own workflow.
    assert submitted(make_client("Bearer someone-else"), body)["id"] != first["id"]


def test_query_filters_pages_and_orders(civitai: httpx.Client, control: ControlClient) -> None:
    def make(tags: list[str], **fields: Any) -> str:
        return submitted(civitai, {**nb2_body(**fields), "tags": tags})["id"]

    ab, a, b, abc = make(["a", "b"]), make(["a"]), make(["b"]), make(["a", "b", "c"])
    blocked = make(["a"], prompt=f"x {BLOCK}")
    canceled = make(["a"])
    deleted = make(["a"])
    untagged = make([])
    submit(civitai, {**nb2_body(), "tags": ["a"]}, whatif=True)
    assert cancel(civitai, canceled).status_code == 204
    assert civitai.delete(f"{WORKFLOWS}/{deleted}").status_code == 204
    control.advance(30)

    newest_first = [untagged, canceled, blocked, abc, b, a, ab]
    assert listed_ids(civitai) == newest_first
    assert listed_ids(civitai, ascending=True) == newest_first[::-1]
    assert listed_ids(civitai, tags=["a", "b"]) == [abc, ab]
    assert listed_ids(civitai, tags=["c"]) == [abc]
    assert listed_ids(civitai, tags=["a"], excludeFailed=True) == [abc, a, ab]

    for ascending in (False, True):
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"take": 2, "ascending": ascending}
            if cursor:
                params["cursor"] = cursor
            page = query(civitai, **params)
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == (newest_first[::-1] if ascending else newest_first)


def test_query_by_creation_time(civitai: httpx.Client, control: ControlClient) -> None:
    early = submitted(civitai, nb2_body())
    control.advance(10)
    late = submitted(civitai, nb2_body())
    middle = datetime.fromtimestamp(seconds(early["createdAt"]) + 5, tz=UTC)
    for text in (middle.isoformat(), middle.astimezone(timezone(timedelta(hours=2))).isoformat(),
                 middle.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")):
        assert listed_ids(civitai, fromDate=text) == [late["id"]], text
        assert listed_ids(civitai, toDate=text) == [early["id"]], text


@pytest.mark.parametrize(
    ("route", "name", "value"),
    [
        ("query", "take", "0"),
        ("query", "take", "-1"),
        ("query", "take", "ten"),
        ("query", "take", str(2**31)),
        ("query", "ascending", "maybe"),
        ("query", "excludeFailed", "2"),
        ("query", "fromDate", "yesterday"),
        ("query", "toDate", "2026-13-01"),
        ("query", "hideMatureContent", "nope"),
        ("get", "wait", "abc"),
        ("get", "wait", "1.5"),
        ("get", "wait", str(2**31)),
        ("submit", "wait", "abc"),
        ("submit", "whatif", "perhaps"),
    ],
)
def test_query_parameters_of_the_wrong_type_are_400(civitai: httpx.Client, route: str, name: str, value: str) -> None:
    if route == "query":
        response = civitai.get(WORKFLOWS, params={name: value})
    elif route == "get":
        response = get_workflow(civitai, submitted(civitai, nb2_body())["id"], **{name: value})
    else:
        response = submit(civitai, nb2_body(), **{name: value})
    problem = assert_validation_problem(response, name)
    assert problem["errors"][name] == [f"The value '{value}' is not valid for {name}."]


def test_tags_add_and_remove(civitai: httpx.Client) -> None:
    workflow = submitted(civitai, {**nb2_body(), "tags": ["tenant:42"]})
    tags_url = f"{WORKFLOWS}/{workflow['id']}/tags"
    for tag in ("x", "y", "x"):
        response = civitai.post(tags_url, json=tag)
        assert response.status_code == 204, response.text
    assert get_workflow(civitai, workflow["id"]).json()["tags"] == ["tenant:42", "x", "y"]
    assert_validation_problem(civitai.post(tags_url, json={"tag": "z"}))
    assert_validation_problem(civitai.post(tags_url, content=b"not json", headers={"content-type": "application/json"}))
    assert civitai.delete(f"{tags_url}/{quote('tenant:42')}").status_code == 204
    assert get_workflow(civitai, workflow["id"]).json()["tags"] == ["x", "y"]
    assert civitai.delete(tags_url).status_code == 204
    assert get_workflow(civitai, workflow["id"]).json()["tags"] == []


def test_a_workflow_holds_at_most_ten_tags(civitai: httpx.Client) -> None:
    ten = [f"t{n}" for n in range(10)]
    workflow = submitted(civitai, {**nb2_body(), "tags": ten})
    tags_url = f"{WORKFLOWS}/{workflow['id']}/tags"
    assert_validation_problem(civitai.post(tags_url, json="eleventh"), "tags")
    assert civitai.post(tags_url, json="t3").status_code == 204  # already there: nothing to add
    assert_validation_problem(civitai.post(tags_url, json="x" * 201))
    # A replacement with 11 tags is refused as a whole: the cancel in the same request does not happen.
    response = civitai.put(f"{WORKFLOWS}/{workflow['id']}", json={"status": "canceled", "tags": [*ten, "t10"]})
    assert_validation_problem(response, "tags")
    after = get_workflow(civitai, workflow["id"]).json()
    assert after["tags"] == ten and after["status"] != "canceled"


def test_delete_makes_the_workflow_gone(civitai: httpx.Client) -> None:
    workflow = submitted(civitai, nb2_body())
    response = civitai.delete(f"{WORKFLOWS}/{workflow['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_problem(get_workflow(civitai, workflow["id"]), 404)
    assert_problem(civitai.delete(f"{WORKFLOWS}/{workflow['id']}"), 404)
    assert listed_ids(civitai) == []


def test_steps_by_name(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = finish(civitai, control, submitted(civitai, nb2_body())["id"])
    step_url = f"{WORKFLOWS}/{workflow['id']}/steps/$0"
    response = civitai.get(step_url)
    assert response.status_code == 200
    step = response.json()
    assert_valid("response/workflow-step", step)
    assert step["name"] == "$0" and step["status"] == "succeeded"
    assert step["output"]["images"][0]["id"] == first_image(workflow)["id"]
    assert_problem(civitai.get(f"{WORKFLOWS}/{workflow['id']}/steps/$1"), 404)
    assert_problem(civitai.get(f"{WORKFLOWS}/no-such-workflow/steps/$0"), 404)

    assert civitai.put(step_url, json={"metadata": {"note": "kept"}}).status_code == 204
    assert civitai.get(step_url).json()["metadata"] == {"note": "kept"}
    assert get_workflow(civitai, workflow["id"]).json()["steps"][0]["metadata"] == {"note": "kept"}
    assert_validation_problem(civitai.put(step_url, json={}), "metadata")
    assert_problem(civitai.put(f"{WORKFLOWS}/{workflow['id']}/steps/$9", json={"metadata": {}}), 404)


def test_named_steps_are_addressable(civitai: httpx.Client) -> None:
    body = nb2_body()
    body["steps"][0]["name"] = "hero"
    workflow = submitted(civitai, body)
    assert workflow["steps"][0]["name"] == "hero"
    assert civitai.get(f"{WORKFLOWS}/{workflow['id']}/steps/hero").status_code == 200


def test_ephemeral_workflows_are_gone_once_finished(civitai: httpx.Client, control: ControlClient) -> None:
    body = {**nb2_body(), "ephemeral": True}
    assert_validation_problem(submit(civitai, body), "ephemeral")
    control.set_autojump(True)
    workflow = submitted(civitai, body, wait=60)
    assert workflow["status"] == "succeeded" and workflow["ephemeral"] is True
    assert_problem(get_workflow(civitai, workflow["id"]), 404)
    assert listed_ids(civitai) == []


# -- routing, hostile input, journal, determinism --------------------------------------------------------


def test_real_hostname_reaches_civitai_at_the_root(live_server: LiveServer, control: ControlClient) -> None:
    """The simulator is addressed as orchestration.civitai.com (a hosts-file or proxy setup)."""
    control.set_autojump(True)
    host = "orchestration.civitai.com"
    headers = {"Host": host, "Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=live_server.url, headers=headers, verify=VERIFY_TLS) as client:
        workflow = submitted(client, nb2_body(), wait=60)
        url = urlsplit(first_image(workflow)["url"])
        assert (url.hostname, url.path) == (host, f"{BLOBS}/{first_image(workflow)['id']}")
        # Fetch it from this machine with the same Host header: the redirect stays at the root too.
        redirect = client.get(f"{url.path}?{url.query}")
        assert redirect.status_code == 308
        assert redirect.headers["location"].startswith(f"{BLOBS}/content/")
        content = client.get(redirect.headers["location"])
        assert content.status_code == 200 and content.headers["content-type"] == "image/jpeg"
    (entry,) = control.journal(provider="civitai", operation="SubmitWorkflow")
    assert entry["task_id"] == workflow["id"]


HOSTILE_BODIES = [
    pytest.param(b"{not json", "application/json", id="not-json"),
    pytest.param(b"[" + json.dumps(nb2_body()).encode() + b"]", "application/json", id="json-array"),
    pytest.param(b'"steps"', "application/json", id="json-string"),
    pytest.param(b"null", "application/json", id="null"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b"   \n", "application/json", id="whitespace"),
    pytest.param(json.dumps({"steps": "x"}).encode(), "application/json", id="steps-string"),
    pytest.param(json.dumps({"steps": None}).encode(), "application/json", id="steps-null"),
    pytest.param(json.dumps({"steps": [None]}).encode(), "application/json", id="step-null"),
    pytest.param(json.dumps({"steps": [{"$type": "imageGen", "input": None}]}).encode(), "application/json",
                 id="input-null"),
    pytest.param(json.dumps(nb2_body(prompt=None)).encode(), "application/json", id="prompt-null"),
    pytest.param(json.dumps(nb2_body(prompt=["a"])).encode(), "application/json", id="prompt-array"),
    pytest.param(json.dumps(nb2_body(numImages="2")).encode(), "application/json", id="numImages-string"),
    pytest.param(json.dumps(nb2_body(numImages=True)).encode(), "application/json", id="numImages-bool"),
    pytest.param(json.dumps(nb2_body(numImages=2.5)).encode(), "application/json", id="numImages-fraction"),
    pytest.param(json.dumps(nb2_body(numImages=10**400)).encode(), "application/json", id="numImages-huge"),
    pytest.param(json.dumps(nb2_body(seed=-(10**30))).encode(), "application/json", id="seed-huge-negative"),
    pytest.param(json.dumps(nb2_body(engine=["google"])).encode(), "application/json", id="engine-array"),
    pytest.param(json.dumps(nb2_body(model={"$ref": "x"})).encode(), "application/json", id="model-object"),
    pytest.param(json.dumps(nb2_body(images="https://example.com/a.png")).encode(), "application/json",
                 id="images-string"),
    pytest.param(json.dumps(nb2_body(images=[None, 1])).encode(), "application/json", id="images-junk"),
    pytest.param(json.dumps({**nb2_body(), "tags": [{}], "callbacks": "x", "tips": []}).encode(),
                 "application/json", id="wrong-types-everywhere"),
    pytest.param(json.dumps({**nb2_body(), "metadata": json.loads("[" * 100 + "]" * 100)}).encode(),
                 "application/json", id="nested-100-deep"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", id="nested-100000-deep"),
    pytest.param(json.dumps(nb2_body(aspectRatio="\uff11:\uff11", prompt="🍌" * 10)).encode(), "application/json",
                 id="unicode-lookalike-ratio"),
    pytest.param(json.dumps({**nb2_body(), "ñ\u200b": "\u0000"}).encode(), "application/json", id="unicode-key"),
    pytest.param(b'{"steps":[{"$type":"imageGen","input":{"engine":"google","model":"nano-banana-2",'
                 b'"prompt":"\\ud800"}}]}', "application/json", id="lone-surrogate"),
    pytest.param('{"steps": "é"}'.encode("latin-1"), "application/json", id="not-utf8"),
    pytest.param(bytes(range(256)), "application/json", id="binary"),
    pytest.param(b'{"steps":[{"$type":"imageGen","input":{"engine":"google","model":"nano-banana-2",'
                 b'"prompt":"x","seed":NaN}}]}', "application/json", id="nan"),
    pytest.param(b'{"steps":[{"$type":"imageGen","input":{"engine":"google","model":"nano-banana-2",'
                 b'"prompt":"x","numImages":1e999}}]}', "application/json", id="infinity"),
    pytest.param(b"steps=x&prompt=banana", "application/x-www-form-urlencoded", id="form-encoded"),
    pytest.param(json.dumps(nb2_body()).encode(), "text/plain", id="json-as-text-plain"),
    pytest.param(json.dumps(nb2_body()).encode(), "multipart/form-data; boundary=x", id="json-as-multipart"),
]


@pytest.mark.parametrize(("content", "content_type"), HOSTILE_BODIES)
def test_hostile_bodies_are_400_never_500(
    civitai: httpx.Client, control: ControlClient, content: bytes, content_type: str
) -> None:
    response = civitai.post(WORKFLOWS, content=content, headers={"content-type": content_type})
    assert_validation_problem(response)
    assert control.tasks("civitai") == []


# The hostile bodies that no route can take (the others are only wrong for SubmitWorkflow's shape).
NOT_JSON_FOR_ANY_ROUTE = {
    "not-json", "json-array", "null", "empty", "whitespace", "nested-100000-deep", "lone-surrogate", "not-utf8",
    "binary", "nan", "infinity", "form-encoded", "json-as-text-plain", "json-as-multipart",
}


@pytest.mark.parametrize("route", ["PUT /{workflow}", "POST /{workflow}/tags", "PUT /{workflow}/steps/$0"])
def test_hostile_bodies_on_the_other_body_routes_are_400(civitai: httpx.Client, route: str) -> None:
    workflow = submitted(civitai, nb2_body())
    method, _, template = route.partition(" ")
    url = WORKFLOWS + template.format(workflow=workflow["id"])
    for param in HOSTILE_BODIES:
        if param.id not in NOT_JSON_FOR_ANY_ROUTE:
            continue
        content, content_type = param.values
        response = civitai.request(method, url, content=content, headers={"content-type": content_type})
        assert response.status_code == 400, (param.id, response.text)
        assert_validation_problem(response)
    assert get_workflow(civitai, workflow["id"]).json()["status"] != "canceled"


def assert_journaled_as_400(client: httpx.Client, control: ControlClient, params: list[Any]) -> None:
    for param in params:
        control.clear_journal()
        content, content_type = param.values
        client.post(WORKFLOWS, content=content, headers={"content-type": content_type})
        (entry,) = control.journal(provider="civitai")
        assert (entry["operation"], entry["status"], entry["owner"]) == ("SubmitWorkflow", 400, TOKEN), param.id
        assert entry["violations"], param.id


def test_hostile_bodies_are_journaled_as_400(civitai: httpx.Client, control: ControlClient) -> None:
    assert_journaled_as_400(civitai, control, HOSTILE_BODIES)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/consumer/nothing"),
        ("POST", "/v2/consumer/recipes/unknownRecipe"),
        ("GET", "/v1/consumer/jobs"),
        ("DELETE", "/"),
        ("GET", WORKFLOWS + "/x/steps"),
        ("OPTIONS", WORKFLOWS + "/x/steps/$0/extra"),
        ("GET", WORKFLOWS + "/a%0Ab"),  # a newline no route pattern matches: still Civitai's own 404
    ],
)
def test_unknown_routes_are_civitai_404s(civitai: httpx.Client, method: str, path: str) -> None:
    response = civitai.request(method, path)
    problem = assert_problem(response, 404)
    assert problem["title"] == "Not Found"


def test_journal_records_each_exchange(civitai: httpx.Client, control: ControlClient) -> None:
    workflow = submitted(civitai, nb2_body())
    get_workflow(civitai, workflow["id"])
    submit(civitai, nb2_body(resolution="4k"))
    civitai.get(f"{WORKFLOWS}/nope")
    entries = control.journal(provider="civitai", kind="http")
    summary = [(e["operation"], e["method"], e["status"], e["owner"], e["task_id"]) for e in entries]
    assert summary == [
        ("SubmitWorkflow", "POST", 202, TOKEN, workflow["id"]),
        ("GetWorkflow", "GET", 202, TOKEN, workflow["id"]),
        ("SubmitWorkflow", "POST", 400, TOKEN, None),
        ("GetWorkflow", "GET", 404, TOKEN, None),
    ]
    assert entries[0]["request_body"] == nb2_body()
    assert entries[0]["response_body"]["id"] == workflow["id"]
    assert entries[0]["at"] == control.now()
    (violation,) = entries[2]["violations"]
    assert (violation["path"], violation["rule"], violation["value"], violation["nearest"]) == (
        "steps[0].input.resolution", "enum", "4k", "4K",
    )
    assert [e["status"] for e in control.journal(provider="civitai", status=400)] == [400]


def test_same_seed_same_requests_same_everything(civitai: httpx.Client, control: ControlClient) -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        control.reset(seed=seed)
        control.set_autojump(True)
        workflows = [
            submitted(civitai, nb2_body(prompt="one", numImages=2), wait=60),
            submitted(civitai, workflow_body("imagen4", prompt="two", aspectRatio="16:9"), wait=60),
        ]
        with httpx.Client(follow_redirects=True, verify=VERIFY_TLS) as downloader:
            return [
                {
                    "id": workflow["id"],
                    "times": [workflow[key] for key in ("createdAt", "startedAt", "completedAt")],
                    "job": workflow["steps"][0]["jobs"][0]["id"],
                    "transactions": workflow["transactions"],
                    "images": [
                        (image["id"], image["url"], downloader.get(image["url"]).content)
                        for image in workflow["steps"][0]["output"]["images"]
                    ],
                }
                for workflow in workflows
            ]

    seven = run(7)
    assert run(7) == seven
    assert [w["job"] for w in run(8)] != [w["job"] for w in seven]  # job (and so blob) ids come from the seed


# -- PATCH (JSON Patch) --------------------------------------------------------------------------------------

PATCH_HEADERS = {"Content-Type": "application/json-patch+json"}


def patch(civitai: httpx.Client, path: str, operations: Any) -> httpx.Response:
    return civitai.patch(path, content=json.dumps(operations), headers=PATCH_HEADERS)


@pytest.mark.parametrize(
    ("operations", "error_key"),
    [
        ({"op": "add", "path": "/tags/-", "value": "x"}, "$"),  # an object, not an array of operations
        ([{"op": "add", "path": "/tags/-"}], "[1].value"),  # add needs a value
        ([{"op": "merge", "path": "/tags"}], "[1].op"),
        ([{"op": "move", "path": "/tags/0"}], "[1].from"),
        ([{"op": "add", "path": "tags", "value": []}], "[1].path"),  # not a JSON Pointer
        ([{"op": "remove", "path": "/nope"}], "[1]"),  # nothing there to remove
        ([{"op": "test", "path": "/tags", "value": ["other"]}], "[1]"),  # a failed test refuses the whole patch
        ([{"op": "add", "path": "/priority", "value": "high"}], "priority"),  # not something a patch can change
        ([{"op": "replace", "path": "/status", "value": "succeeded"}], "status"),  # only "canceled" can be written
    ],
    ids=["not-an-array", "add-without-value", "unknown-op", "move-without-from", "bad-pointer", "missing-target",
         "failed-test", "unknown-member", "status-not-canceled"],
)
def test_a_bad_patch_is_a_validation_problem_and_changes_nothing(civitai: httpx.Client, operations: Any,
                                                                  error_key: str) -> None:
    workflow = submitted(civitai, {**nb2_body(), "tags": ["first"]})
    # A valid first operation does not survive a refused patch: all or nothing.
    whole = operations if isinstance(operations, dict) else [{"op": "add", "path": "/tags/-", "value": "second"},
                                                             *operations]
    problem = assert_validation_problem(patch(civitai, f"{WORKFLOWS}/{workflow['id']}", whole))
    assert error_key in problem["errors"], problem["errors"]
    assert get_workflow(civitai, workflow["id"]).json()["tags"] == ["first"]


def test_patch_of_an_unknown_workflow_or_without_a_token(civitai: httpx.Client, live_server: LiveServer) -> None:
    assert_problem(patch(civitai, f"{WORKFLOWS}/nope", []), 404)
    workflow = submitted(civitai, nb2_body())
    anonymous = httpx.patch(live_server.provider_url("civitai") + f"{WORKFLOWS}/{workflow['id']}", content="[]",
                            headers=PATCH_HEADERS)
    assert_problem(anonymous, 401)


def test_an_empty_patch_changes_nothing_and_a_test_that_holds_lets_the_rest_apply(civitai: httpx.Client) -> None:
    workflow = submitted(civitai, {**nb2_body(), "tags": ["first"]})
    path = f"{WORKFLOWS}/{workflow['id']}"
    assert patch(civitai, path, []).status_code == 204
    operations = [{"op": "test", "path": "/tags/0", "value": "first"},
                  {"op": "replace", "path": "/tags/0", "value": "renamed"}]
    assert patch(civitai, path, operations).status_code == 204
    after = get_workflow(civitai, workflow["id"]).json()
    assert after["tags"] == ["renamed"] and after["status"] == workflow["status"]


def test_patch_step_metadata(civitai: httpx.Client) -> None:
    workflow = submitted(civitai, nb2_body())
    step = f"{WORKFLOWS}/{workflow['id']}/steps/$0"
    assert patch(civitai, step, [{"op": "add", "path": "/metadata/reviewer", "value": "ada"}]).status_code == 204
    assert patch(civitai, step, [{"op": "copy", "from": "/metadata/reviewer", "path": "/metadata/owner"}]) \
        .status_code == 204
    assert civitai.get(step).json()["metadata"] == {"reviewer": "ada", "owner": "ada"}
    assert_validation_problem(patch(civitai, step, [{"op": "remove", "path": "/metadata/nobody"}]), "[0]")
    assert_problem(patch(civitai, f"{WORKFLOWS}/{workflow['id']}/steps/$9", []), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", WORKFLOWS, "GET, HEAD, POST"),
        ("POST", WORKFLOWS + "/abc", "DELETE, GET, HEAD, PATCH, PUT"),
        ("GET", f"{BLOBS}/abc/refresh", "POST"),
    ],
)
def test_a_known_path_with_a_method_it_does_not_serve_is_405_with_allow(
    civitai: httpx.Client, control: ControlClient, method: str, path: str, allowed: str
) -> None:
    refused = civitai.request(method, path)
    problem = assert_problem(refused, 405)
    assert problem["title"] == "Method Not Allowed" and refused.headers["allow"] == allowed
    control.set_options("civitai", wrong_method_status=404)  # the named option for a client that expects 404
    assert_problem(civitai.request(method, path), 404)

"""The simulated CRun task API end to end over HTTP: auth, CreateTask/TaskInfo lifecycle, credits, errors,
result images and callbacks. Every timing is on the virtual clock; callbacks go to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import server_fixture
from PIL import Image
from support_crun import BALANCE, JOB, KEY, OTHER_KEY, assert_valid, balance, body, create, finish, info

from simulator.control_client import ControlClient
from simulator.examples import expand
from simulator.live import LiveServer
from simulator.resources import schemas_dir
from simulator.testing.receiver import WebhookReceiver

EXAMPLES = schemas_dir() / "crun" / "examples"
BLOCK = "[sim:block]"

server = server_fixture("crun")


@pytest.fixture(scope="module")
def clients(server: LiveServer) -> Iterator[tuple[ControlClient, httpx.Client, httpx.Client]]:
    """Created once per module: each httpx client builds an SSL context, which costs more than a test."""
    control = ControlClient(server.url)
    with (
        httpx.Client(base_url=server.provider_url("crun"), headers={"x-api-key": KEY}, timeout=30) as crun,
        httpx.Client(timeout=30) as anonymous,
    ):
        yield control, crun, anonymous
    control.close()


@pytest.fixture
def control(clients: tuple[ControlClient, httpx.Client, httpx.Client]) -> ControlClient:
    """The control client, after a reset to seed 0 (clock rewound, default options, wallets and moderation)."""
    clients[0].reset(seed=0)
    return clients[0]


@pytest.fixture
def crun(clients: tuple[ControlClient, httpx.Client, httpx.Client], control: ControlClient) -> httpx.Client:
    """A client aimed at the simulated CRun with KEY in `x-api-key`."""
    return clients[1]


@pytest.fixture
def anonymous(clients: tuple[ControlClient, httpx.Client, httpx.Client], control: ControlClient) -> httpx.Client:
    """A client without credentials (media downloads, missing-key cases)."""
    return clients[2]


def completed(crun: httpx.Client, control: ControlClient, request: dict[str, Any]) -> dict[str, Any]:
    task_id = create(crun, request)
    finish(control, task_id)
    return info(crun, task_id)


MISSING_KEY = "API key missing: send it in the x-api-key header"  # the documented words, then the header


def assert_error(response: httpx.Response, code: int, message: str, status: int | None = None) -> None:
    assert response.status_code == (code if status is None else status), response.text
    assert response.json() == {"code": code, "message": message, "data": None}
    assert_valid("response/error", response.json())


# -- auth --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"{JOB}/CreateTask"), ("GET", f"{JOB}/TaskInfo?task_id=x"), ("GET", BALANCE),
    ("POST", f"{JOB}/estimate-credits"), ("POST", f"{JOB}/EstimateTask"),
])
def test_every_route_wants_an_api_key(server: LiveServer, anonymous: httpx.Client, method: str, path: str) -> None:
    response = anonymous.request(method, server.provider_url("crun") + path, json=body())
    assert_error(response, 401, MISSING_KEY)


def test_key_header_name_is_case_insensitive_and_bearer_is_not_a_key(
    server: LiveServer, control: ControlClient, anonymous: httpx.Client
) -> None:
    url = server.provider_url("crun") + BALANCE
    assert anonymous.get(url, headers={"X-API-KEY": KEY}).status_code == 200
    assert_error(anonymous.get(url, headers={"Authorization": f"Bearer {KEY}"}), 401, MISSING_KEY)
    control.set_options("crun", accept_bearer=True)
    assert anonymous.get(url, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_unknown_and_disabled_keys(crun: httpx.Client, control: ControlClient) -> None:
    control.set_tokens("crun", [OTHER_KEY])
    assert_error(crun.get(BALANCE), 401, "Invalid API key")
    control.set_tokens("crun", None)
    control.set_options("crun", disabled_api_keys=[KEY])
    assert_error(crun.get(BALANCE), 403, "API key disabled")


def test_error_http_status_option_answers_200_with_the_code_in_the_body(
    crun: httpx.Client, control: ControlClient
) -> None:
    control.set_options("crun", error_http_status="200")
    assert_error(crun.get(f"{JOB}/TaskInfo", params={"task_id": "nope"}), 404, "Task not found", status=200)
    assert_error(crun.get(f"{JOB}/TaskInfo", params={"task_id": "x"}, headers={"x-api-key": ""}),
                 401, MISSING_KEY, status=200)
    invalid = crun.post(f"{JOB}/CreateTask", json={"model": "google/nano-banana"})
    assert invalid.status_code == 200 and invalid.json()["code"] == 422


# -- documented examples -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((EXAMPLES / "requests").glob("*.json")), ids=lambda p: p.stem)
def test_documented_requests_sent_as_written_run_to_success(
    crun: httpx.Client, control: ControlClient, path: Path
) -> None:
    request = json.loads(path.read_text())
    estimate = crun.post(f"{JOB}/estimate-credits", json=request)
    assert estimate.status_code == 200
    assert_valid("response/estimate-credits", estimate.json())
    task_id = create(crun, request)
    pending = info(crun, task_id)
    assert pending["status"] == "pending"
    assert pending["param"] == {"callback_url": None, **request}
    assert pending["credits"] == estimate.json()["data"]["credits"]
    finish(control, task_id)
    done = info(crun, task_id)
    assert done["status"] == "success"
    assert len(done["result"]["media_urls"]) == 1


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_documented_mistakes_get_422_with_crun_messages(crun: httpx.Client, path: Path) -> None:
    case = json.loads(path.read_text())
    for route in ("CreateTask", "estimate-credits"):
        response = crun.post(f"{JOB}/{route}", json=expand(case["body"]))
        assert response.status_code == 422
        assert response.json() == {
            "code": 422, "message": "Missing Params or Type Error", "errors": case["expect"]["errors"],
        }
        assert_valid("response/validation-error", response.json())
    assert balance(crun) == 1_000_000


def test_bodies_that_are_not_objects(crun: httpx.Client) -> None:
    broken = crun.post(f"{JOB}/CreateTask", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["errors"] == ["body: JSON decode error"]
    listed = crun.post(f"{JOB}/CreateTask", json=[body()])
    assert listed.json()["errors"] == ["body: Input should be a valid dictionary"]
    bad_input = crun.post(f"{JOB}/CreateTask", json={"model": "google/nano-banana", "input": "a cat"})
    assert bad_input.json()["errors"] == ["input: Input should be a valid dictionary"]


def test_unknown_fields_option_ignores_them_and_param_keeps_what_was_sent(
    crun: httpx.Client, control: ControlClient
) -> None:
    request = body(image_urls=["https://example.com/a.png"])
    assert crun.post(f"{JOB}/CreateTask", json=request).status_code == 422
    control.set_options("crun", unknown_fields="ignore")
    task_id = create(crun, request)
    assert info(crun, task_id)["param"]["input"]["image_urls"] == ["https://example.com/a.png"]
    [entry] = control.journal(operation="CreateTask", status=200)
    assert entry["note"] == "ignored unknown fields: input.image_urls"


# -- lifecycle ----------------------------------------------------------------------------------------


def test_polling_sees_pending_running_success_on_the_clock(crun: httpx.Client, control: ControlClient) -> None:
    t0 = control.now()
    task_id = create(crun, body("google/nano-banana-pro", resolution="2K"))
    timeline = control.task(task_id)["timeline"]
    seen: list[str] = []
    while not seen or seen[-1] not in ("success", "failed"):
        data = info(crun, task_id)
        if not seen or seen[-1] != data["status"]:
            seen.append(data["status"])
        if data["status"] != "success":
            assert data["result"] is None and data["complete_at"] is None and data["duration_s"] is None
        control.advance(5)  # CRun's CLI polls every 5 s
    assert seen == ["pending", "running", "success"]
    assert 20 <= timeline["finished_at"] - t0 <= 60  # nano-banana-pro 2K: 20-60 s
    assert data["create_at"] == int(t0)
    assert data["complete_at"] == int(timeline["finished_at"])
    assert data["duration_s"] == data["complete_at"] - data["create_at"]
    assert (data["provider"], data["model_version"], data["source"]) == ("Google", "nano-banana-pro", "api")


def test_task_ids_are_uuids_or_prefixed_and_deterministic(crun: httpx.Client, control: ControlClient) -> None:
    first = create(crun, body())
    control.reset(seed=0)
    assert create(crun, body()) == first
    assert len(first) == 36 and first.count("-") == 4
    control.set_options("crun", task_id_format="prefixed")
    millis = round(control.now() * 1000)
    assert create(crun, body("google/nano-banana-pro")) == f"task_nano-banana-pro_{millis}"
    assert create(crun, body("google/nano-banana-pro")) == f"task_nano-banana-pro_{millis + 1}"


def test_tasks_are_private_to_their_key(crun: httpx.Client, control: ControlClient) -> None:
    task_id = create(crun, body())
    other = crun.get(f"{JOB}/TaskInfo", params={"task_id": task_id}, headers={"x-api-key": OTHER_KEY})
    assert_error(other, 404, "Task not found")
    missing = crun.get(f"{JOB}/TaskInfo")
    assert missing.status_code == 422 and missing.json()["errors"] == ["task_id: Field required"]


def test_unknown_routes_answer_in_the_envelope(crun: httpx.Client) -> None:
    for path in (f"{JOB}/CancelTask", f"{JOB}/Task%0AInfo"):  # a newline no route pattern matches, too
        response = crun.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == 404 and response.json()["data"] is None


def test_real_hostname_routes_to_crun(server: LiveServer, anonymous: httpx.Client) -> None:
    response = anonymous.get(server.url + BALANCE, headers={"host": "api.crun.ai", "x-api-key": KEY})
    assert response.json() == {"code": 200, "message": "success", "data": {"balance": 1000000}}


# -- credits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("request_body", "credits"), [
    (body("google/nano-banana"), 3),
    (body("google/nano-banana-v2"), 1.8),
    (body("google/nano-banana-pro", resolution="4K"), 10),
    (body("google/nano-banana-pro-v2"), 4.8),
    (body("google/nano-banana-2", resolution="2K"), 6),
    (body("google/nano-banana-2-v2", resolution="4K"), 4.8),
])
def test_estimate_create_and_balance_agree(crun: httpx.Client, request_body: dict[str, Any], credits: float) -> None:
    estimate = crun.post(f"{JOB}/estimate-credits", json=request_body).json()
    assert estimate["data"] == {"credits": credits, "estimated": False}
    estimate_task = crun.post(f"{JOB}/EstimateTask", json=request_body).json()
    assert_valid("response/estimate-task", estimate_task)
    assert estimate_task["data"] == {"estimated_credits": credits, "balance": 1000000, "affordable": True}
    task_id = create(crun, request_body)
    assert info(crun, task_id)["credits"] == credits
    assert balance(crun) == pytest.approx(1_000_000 - credits)


def test_empty_wallet_gets_402_and_no_task(crun: httpx.Client, control: ControlClient) -> None:
    control.set_balance("crun", KEY, 0)
    assert balance(crun) == 0
    assert_error(crun.post(f"{JOB}/CreateTask", json=body()), 402, "Insufficient credits")
    assert control.tasks("crun") == []
    assert crun.post(f"{JOB}/EstimateTask", json=body()).json()["data"]["affordable"] is False
    control.set_balance("crun", KEY, 3)
    create(crun, body())
    assert balance(crun) == 0


def test_success_keeps_the_reservation(crun: httpx.Client, control: ControlClient) -> None:
    data = completed(crun, control, body("google/nano-banana-pro"))
    assert data["credits"] == 8
    assert balance(crun) == 1_000_000 - 8


# -- content block ------------------------------------------------------------------------------------


def test_blocked_prompt_fails_fast_with_501_and_is_refunded(crun: httpx.Client, control: ControlClient) -> None:
    t0 = control.now()
    task_id = create(crun, body("google/nano-banana-pro", prompt=f"{BLOCK} a cat"))
    assert info(crun, task_id)["credits"] == 8
    assert balance(crun) == 1_000_000 - 8
    finish(control, task_id)
    data = info(crun, task_id)
    assert data["status"] == "failed"
    assert data["result"]["code"] == 501 and data["result"]["media_urls"] == []
    assert data["result"]["message"]
    assert data["complete_at"] - int(t0) <= 6  # blockedSeconds 2-6
    assert data["credits"] == 0
    assert balance(crun) == 1_000_000


def test_blocked_task_is_charged_when_refunds_are_off(crun: httpx.Client, control: ControlClient) -> None:
    control.set_options("crun", refund_failed_tasks=False)
    data = completed(crun, control, body(prompt=f"{BLOCK} a cat"))
    assert (data["status"], data["credits"]) == ("failed", 3)
    assert balance(crun) == 1_000_000 - 3


def test_moderation_patterns_come_from_the_control_plane(crun: httpx.Client, control: ControlClient) -> None:
    control.set_moderation(["forbidden"])
    assert completed(crun, control, body(prompt="a forbidden banana"))["status"] == "failed"


# -- result images ------------------------------------------------------------------------------------


def download(anonymous: httpx.Client, data: dict[str, Any]) -> tuple[httpx.Response, Image.Image]:
    [url] = data["result"]["media_urls"]
    response = anonymous.get(url)
    assert response.status_code == 200, response.text
    return response, Image.open(BytesIO(response.content))


@pytest.mark.parametrize(("request_body", "size", "fmt"), [
    (body("google/nano-banana", aspect_ratio="16:9"), (1344, 768), "PNG"),
    (body("google/nano-banana", output_format="jpeg"), (1024, 1024), "JPEG"),
    (body("google/nano-banana-v2", aspect_ratio="9:16", output_format="jpeg"), (768, 1344), "PNG"),
    (body("google/nano-banana-pro", resolution="2K", aspect_ratio="21:9", output_format="jpg"), (3168, 1344), "JPEG"),
    (body("google/nano-banana-pro-v2", aspect_ratio="4:5", output_format="jpg"), (928, 1152), "PNG"),
    (body("google/nano-banana-2", resolution="2K", aspect_ratio="1:8"), (768, 6144), "PNG"),
    (body("google/nano-banana-2-v2", aspect_ratio="4:1", google_search=True), (2048, 512), "PNG"),
])
def test_images_have_the_documented_size_and_format(
    crun: httpx.Client, control: ControlClient, anonymous: httpx.Client,
    request_body: dict[str, Any], size: tuple[int, int], fmt: str,
) -> None:
    data = completed(crun, control, request_body)
    response, image = download(anonymous, data)
    assert (image.size, image.format) == (size, fmt)
    assert response.headers["content-type"] == f"image/{fmt.lower()}"
    assert urlsplit(data["result"]["media_urls"][0]).path.endswith("." + ("jpg" if fmt == "JPEG" else "png"))


def test_auto_ratio_follows_a_reference_made_by_the_simulator(
    crun: httpx.Client, control: ControlClient, anonymous: httpx.Client
) -> None:
    wide = completed(crun, control, body(aspect_ratio="16:9"))
    edit = completed(crun, control, body(aspect_ratio="auto", img_urls=wide["result"]["media_urls"]))
    assert download(anonymous, edit)[1].size == (1344, 768)
    text_only = completed(crun, control, body(aspect_ratio="auto"))
    assert download(anonymous, text_only)[1].size == (1024, 1024)


def test_media_urls_are_stable_and_expire_after_the_ttl(
    crun: httpx.Client, control: ControlClient, anonymous: httpx.Client
) -> None:
    data = completed(crun, control, body())
    [url] = data["result"]["media_urls"]
    control.advance(3600)
    assert info(crun, data["task_id"])["result"]["media_urls"] == [url]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert int(query["expires"]) == int(control.task(data["task_id"])["timeline"]["finished_at"] + 1_209_600)
    tampered = parts._replace(query=urlencode({**query, "expires": int(query["expires"]) + 1})).geturl()
    assert anonymous.get(tampered).status_code == 403
    control.advance_to(int(query["expires"]) - 1)
    assert anonymous.get(url).status_code == 200
    control.advance(1)
    expired = anonymous.get(url)
    assert expired.status_code == 403 and b"AccessDenied" in expired.content


# -- callbacks ----------------------------------------------------------------------------------------


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    started: list[WebhookReceiver] = []

    def start(statuses: Sequence[int] = ()) -> WebhookReceiver:
        started.append(WebhookReceiver(statuses, path="/api/callback"))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def test_callback_posts_the_taskinfo_data_once_on_completion(
    crun: httpx.Client, control: ControlClient, receiver_factory: Any
) -> None:
    receiver = receiver_factory()
    task_id = create(crun, {"callback_url": receiver.url, **body()})
    control.advance(1)
    assert receiver.bodies() == []  # no callback for pending/running
    finish(control, task_id)
    [payload] = receiver.bodies()
    assert_valid("response/callback", payload)
    assert payload == info(crun, task_id)
    assert payload["status"] == "success"
    [attempt] = control.journal(kind="webhook")
    assert attempt["detail"] == {"attempt": 1, "event": "task:success", "outcome": "delivered"}


def test_callback_for_a_failed_task_and_the_envelope_option(
    crun: httpx.Client, control: ControlClient, receiver_factory: Any
) -> None:
    receiver = receiver_factory()
    control.set_options("crun", callback_body="envelope")
    data = completed(crun, control, {"callback_url": receiver.url, **body(prompt=BLOCK)})
    [payload] = receiver.bodies()
    assert_valid("response/task-info", payload)
    assert payload["data"] == data and data["status"] == "failed"


def test_callback_is_retried_on_the_clock_and_every_attempt_is_journaled(
    crun: httpx.Client, control: ControlClient, receiver_factory: Any
) -> None:
    receiver = receiver_factory(statuses=[500, 503])
    task_id = create(crun, {"callback_url": receiver.url, **body()})
    finish(control, task_id)
    assert len(receiver.bodies()) == 1
    control.advance(5)
    assert len(receiver.bodies()) == 2
    control.advance(10)
    assert len(receiver.bodies()) == 3
    attempts = control.journal(kind="webhook", task_id=task_id)
    assert [(a["status"], a["detail"]["outcome"]) for a in attempts] == [
        (500, "retrying"), (503, "retrying"), (200, "delivered"),
    ]
    assert receiver.bodies()[0] == receiver.bodies()[2]


def test_callbacks_to_the_internet_are_journaled_not_sent(crun: httpx.Client, control: ControlClient) -> None:
    request = json.loads((EXAMPLES / "requests" / "dossier-4.4-nano-banana.json").read_text())
    task_id = create(crun, request)
    finish(control, task_id)
    [attempt] = control.journal(kind="webhook")
    assert attempt["path"] == "https://your-domain.com/api/callback"
    assert attempt["detail"]["outcome"] == "refused"
    assert_valid("response/callback", attempt["request_body"])

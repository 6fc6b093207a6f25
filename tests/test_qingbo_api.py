"""End-to-end HTTP tests of the simulated qingbo.dev task API (Gemini Image Series, seed 001).

Everything goes over a real socket to a qingbo-only simulator on 127.0.0.1 and is judged by what a
client sees: status codes, bodies (checked against schemas/qingbo), headers, image bytes and
timestamps on the virtual clock. Nothing sleeps for queue time: tests advance the clock, turn on
autojump, or (for Prefer: wait on a manual clock) advance it from the test while a request waits.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import receiver_fixture, server_fixture
from PIL import Image
from support_qingbo import (
    FLASH,
    PRO,
    TASKS,
    assert_error,
    assert_valid,
    error_message,
    fetch,
    ms,
    submit,
    submitted,
    task_body,
    timeline,
)

from simulator.clock import DEFAULT_VIRTUAL_EPOCH
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.resources import schemas_dir
from simulator.testing.receiver import WebhookReceiver

KEY = "qingbo-test-key"
OTHER_KEY = "someone-else"
EXAMPLES = schemas_dir() / "qingbo" / "examples"
BLOCK = "[sim:block]"
QUOTA_PER_USD = 500_000
DAY = 86_400
WAVE_ID = re.compile(r"^task-wave(\d{10})([0-9a-f]{4})(\d{6})$")
# seed 001 pricing table, USD per image, written out independently of provider.json.
SEED_PRICES = {
    "gemini-3-pro-image-preview-official": "0.1139",
    "gemini-3-pro-image-preview": "0.0425",
    "gemini-3.1-flash-image-preview-official": "0.05695",
    "gemini-3.1-flash-image-preview": "0.031875",
    "gemini-2.5-flash-image-preview-official": "0.03315",
    "gemini-2.5-flash-image-preview": "0.01328125",
}
NANO = "gemini-2.5-flash-image-preview"


# -- fixtures ------------------------------------------------------------------------------------------

server = server_fixture("qingbo")


@pytest.fixture(scope="module", autouse=True)
def shared_transport() -> Iterator[None]:
    """One connection pool for every client of this module: building an httpx.Client from scratch
    costs tens of milliseconds (an SSL context), which would dominate these fast tests."""
    transport = httpx.HTTPTransport()
    TRANSPORT.append(transport)
    yield
    TRANSPORT.clear()
    transport.close()


TRANSPORT: list[httpx.HTTPTransport] = []


def plain_client(**kwargs: Any) -> httpx.Client:
    """A client on the shared pool (never closed on its own: closing it would close the pool)."""
    return httpx.Client(transport=TRANSPORT[0], timeout=30, **kwargs)


@pytest.fixture
def control(server: LiveServer) -> ControlClient:
    client = ControlClient(server.url, client=plain_client())
    client.reset(seed=0)
    return client


def make_client(server: LiveServer, key: str | None = KEY, **headers: str) -> httpx.Client:
    auth = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return plain_client(base_url=server.provider_url("qingbo"), headers={**auth, **headers})


@pytest.fixture
def api(server: LiveServer, control: ControlClient) -> httpx.Client:
    return make_client(server)


# -- helpers -------------------------------------------------------------------------------------------


def finish(client: httpx.Client, control: ControlClient, task_id: str) -> dict[str, Any]:
    control.advance_to(timeline(control, task_id)["finished_at"])
    return fetch(client, task_id)


def quota(usd: str, n: int = 1) -> int:
    return int((Decimal(usd) * QUOTA_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * n


def image_urls(task: dict[str, Any]) -> list[str]:
    return [url for item in task["result"]["images"] for url in item["url"]]


def download(url: str, **headers: str) -> httpx.Response:
    return plain_client().get(url, headers=headers)


def example(kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / kind / f"{name}.json").read_text(encoding="utf-8")))


def example_names(kind: str) -> list[str]:
    return [p.stem for p in sorted((EXAMPLES / kind).glob("*.json"))]


def png_data_url(width: int, height: int, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, fmt)
    mime = {"PNG": "image/png", "GIF": "image/gif"}[fmt]
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def in_background(server: LiveServer, body: Any, **headers: str) -> tuple[ThreadPoolExecutor, Future[httpx.Response]]:
    """Send a submit from another thread (it blocks on the manual clock) and return its future."""
    pool = ThreadPoolExecutor(1)

    def send() -> httpx.Response:
        return submit(make_client(server), body, **headers)

    return pool, pool.submit(send)


def first_task(control: ControlClient) -> dict[str, Any]:
    """The task a background request created (it exists before the request starts to wait)."""
    for _ in range(5000):
        tasks = control.tasks("qingbo")
        if tasks:
            return dict(tasks[0])
    raise AssertionError("the background submit never created a task")


# -- documented examples -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", example_names("requests"))
def test_documented_request_is_accepted_and_completes(
    api: httpx.Client, control: ControlClient, name: str
) -> None:
    """Sent as written (headers included); a `Prefer: wait` example returns at completion (autojump)."""
    doc = example("requests", name)
    control.set_options("qingbo", contract=doc["contract"])
    control.set_autojump(True)
    answer = submitted(api, doc["body"], **doc["headers"])
    assert answer["pre_consumed_cost"] > 0
    if "Prefer" in doc["headers"]:
        assert answer["status"] == "completed"
    task = finish(api, control, answer["task_id"])
    assert task["status"] == "completed" and task["model"] == doc["body"]["model"]
    assert task["action"] == doc["body"].get("action", "generate")
    assert len(image_urls(task)) == doc["body"].get("n", 1)
    image = download(image_urls(task)[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("name", example_names("invalid"))
def test_documented_invalid_request_is_a_400_and_costs_nothing(
    api: httpx.Client, control: ControlClient, name: str
) -> None:
    doc = example("invalid", name)
    control.set_options("qingbo", contract=doc["contract"])
    message = error_message(submit(api, doc["body"], **doc["headers"]), 400, "invalid_request")
    assert doc["expect"]["path"].split("[")[0] in message
    assert control.tasks("qingbo") == []
    (entry,) = control.journal(provider="qingbo", operation="SubmitTask")
    assert [(v["path"], v["rule"]) for v in entry["violations"]] == [(doc["expect"]["path"], doc["expect"]["rule"])]
    assert control.balance("qingbo", KEY) == 500_000_000


def test_documented_query_and_cancel_examples_of_unknown_tasks_are_task_not_found(api: httpx.Client) -> None:
    """STATUS's `curl …/v1/tasks/task-wave1775285160b950328499` and TS's cancel curl, sent as written."""
    assert_error(api.get(f"{TASKS}/task-wave1775285160b950328499"), 404, "task_not_found")
    assert_error(api.post(f"{TASKS}/{{task_id}}/cancel"), 404, "task_not_found")


# -- lifecycle on the manual clock ---------------------------------------------------------------------


def test_lifecycle_queued_processing_completed_on_the_clock(api: httpx.Client, control: ControlClient) -> None:
    start = control.now()
    created = submitted(api, task_body())
    assert list(created) == ["task_id", "status", "action", "model", "progress", "created_at", "pre_consumed_cost"]
    assert (created["status"], created["progress"], created["action"]) == ("queued", 0, "generate")
    assert created["created_at"] == ms(start) == ms(DEFAULT_VIRTUAL_EPOCH)
    task_id = created["task_id"]
    times = timeline(control, task_id)

    queued = fetch(api, task_id)
    assert (queued["status"], queued["progress"]) == ("queued", 0)
    assert {"completed_at", "cost", "result", "error"}.isdisjoint(queued)
    base = str(api.base_url).rstrip("/")
    assert queued["urls"] == {"get": f"{base}{TASKS}/{task_id}", "cancel": f"{base}{TASKS}/{task_id}/cancel"}

    control.advance_to(times["started_at"])
    assert fetch(api, task_id)["status"] == "processing"
    control.advance_to((times["started_at"] + times["finished_at"]) / 2)
    halfway = fetch(api, task_id)
    assert halfway["status"] == "processing" and 45 <= halfway["progress"] <= 55
    control.advance_to(times["finished_at"] - 0.001)
    assert fetch(api, task_id)["progress"] == 99

    control.advance_to(times["finished_at"])
    done = fetch(api, task_id)
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["completed_at"] == ms(times["finished_at"])
    assert done["cost"] == created["pre_consumed_cost"] == quota(SEED_PRICES[FLASH])
    (item,) = done["result"]["images"]
    assert item["expires_at"] == int(times["finished_at"]) + DAY
    # 6-15 s per 1K image (provider.json), of which 10-30 % queued
    assert 6 <= times["finished_at"] - start <= 15


def test_task_ids_are_task_wave_seconds_user_tag_and_digits(server: LiveServer, control: ControlClient) -> None:
    ids = []
    for key in (KEY, KEY, OTHER_KEY):
        ids.append(submitted(make_client(server, key), task_body())["task_id"])
    matches = [WAVE_ID.match(task_id) for task_id in ids]
    assert all(matches), ids
    assert {int(m.group(1)) for m in matches if m} == {int(DEFAULT_VIRTUAL_EPOCH)}
    tags = [m.group(2) for m in matches if m]
    assert tags[0] == tags[1] != tags[2]  # the part after the timestamp starts with a per-account tag
    assert len(set(ids)) == 3


# -- Prefer: wait --------------------------------------------------------------------------------------


def test_prefer_wait_with_autojump_returns_the_terminal_object(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    done = submitted(api, task_body(), Prefer="wait=60")
    times = timeline(control, done["task_id"])
    assert done["status"] == "completed" and done["completed_at"] == ms(times["finished_at"])
    assert done["cost"] == done["pre_consumed_cost"]
    assert set(done) >= {"result", "urls", "cost", "pre_consumed_cost"}
    assert control.now() == times["finished_at"]  # the clock jumped exactly to the completion


def test_prefer_wait_that_runs_out_returns_the_current_state(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    start = control.now()
    state = submitted(api, task_body(PRO, resolution="4K", n=4), Prefer="wait=5")
    assert state["status"] in ("queued", "processing") and "cost" not in state
    assert state["pre_consumed_cost"] == quota(SEED_PRICES[PRO], 4)
    assert set(state["urls"]) == {"get", "cancel"}
    assert control.now() == start + 5


def test_prefer_wait_above_60_is_clamped(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    start = control.now()
    state = submitted(api, task_body(PRO, resolution="4K", n=4), Prefer="wait=600")  # 80-200 s of work
    assert state["status"] == "processing"
    assert control.now() == start + 60
    (entry,) = control.journal(operation="SubmitTask")
    assert "clamped to 60" in entry["note"]


@pytest.mark.parametrize("prefer", ["wait=soon", "wait=-5", "wait=1.5", "respond-async"])
def test_prefer_without_a_usable_wait_does_not_wait(api: httpx.Client, control: ControlClient, prefer: str) -> None:
    control.set_autojump(True)
    start = control.now()
    created = submitted(api, task_body(), Prefer=prefer)
    assert created["status"] == "queued" and "urls" not in created
    assert control.now() == start


def test_prefer_wait_among_other_preferences(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    assert submitted(api, task_body(), Prefer="respond-async, wait=30")["status"] == "completed"


def test_prefer_wait_on_a_manual_clock_answers_when_the_clock_reaches_completion(
    server: LiveServer, control: ControlClient
) -> None:
    pool, future = in_background(server, task_body(), Prefer="wait=60")
    with pool:
        task = first_task(control)
        times = task["timeline"]
        control.advance_to(times["started_at"])
        assert not future.done()  # the clock is not past completion, so nothing can have been answered
        control.advance_to(times["finished_at"])
        response = future.result(timeout=10)
    assert response.status_code == 200
    assert_valid("response/task", response.json())
    assert response.json()["status"] == "completed"
    assert response.json()["completed_at"] == ms(times["finished_at"])


def test_prefer_wait_on_a_manual_clock_answers_at_the_deadline(server: LiveServer, control: ControlClient) -> None:
    start = control.now()
    pool, future = in_background(server, task_body(PRO, resolution="4K", n=4), Prefer="wait=20")
    with pool:
        first_task(control)
        control.advance(19.5)
        assert not future.done()
        control.advance(0.5)
        response = future.result(timeout=10)
    assert response.json()["status"] in ("queued", "processing")
    entry = control.journal(operation="SubmitTask")[-1]
    assert (entry["at"], entry["finished_at"]) == (start, start + 20)


# -- Idempotency-Key -----------------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_task_and_charges_once(api: httpx.Client, control: ControlClient) -> None:
    first = submitted(api, task_body(), **{"Idempotency-Key": "order-1"})
    control.advance(30)
    again = submitted(api, task_body(prompt="a different body is ignored"), **{"Idempotency-Key": "order-1"})
    assert again["task_id"] == first["task_id"]
    assert again["status"] == "completed" and again["pre_consumed_cost"] == first["pre_consumed_cost"]
    assert len(control.tasks("qingbo")) == 1
    assert control.balance("qingbo", KEY) == 500_000_000 - first["pre_consumed_cost"]
    entry = control.journal(operation="SubmitTask")[-1]
    assert entry["task_id"] == first["task_id"] and "Idempotency-Key" in entry["note"]


def test_idempotency_key_holds_for_24_hours_only(api: httpx.Client, control: ControlClient) -> None:
    first = submitted(api, task_body(), **{"Idempotency-Key": "retry-me"})
    control.advance(DAY - 1)
    assert submitted(api, task_body(), **{"Idempotency-Key": "retry-me"})["task_id"] == first["task_id"]
    control.advance(1)
    later = submitted(api, task_body(), **{"Idempotency-Key": "retry-me"})
    assert later["task_id"] != first["task_id"]
    control.advance(DAY - 1)
    assert submitted(api, task_body(), **{"Idempotency-Key": "retry-me"})["task_id"] == later["task_id"]
    assert control.balance("qingbo", KEY) == 500_000_000 - 2 * first["pre_consumed_cost"]


def test_idempotency_keys_belong_to_one_api_key(server: LiveServer, control: ControlClient) -> None:
    mine, theirs = make_client(server), make_client(server, OTHER_KEY)
    a = submitted(mine, task_body(), **{"Idempotency-Key": "k"})
    b = submitted(theirs, task_body(), **{"Idempotency-Key": "k"})
    assert a["task_id"] != b["task_id"]


def test_idempotent_replay_with_prefer_wait_waits_for_the_original(api: httpx.Client, control: ControlClient) -> None:
    first = submitted(api, task_body(), **{"Idempotency-Key": "w"})
    control.set_autojump(True)
    replay = submitted(api, task_body(), **{"Idempotency-Key": "w", "Prefer": "wait=60"})
    assert (replay["task_id"], replay["status"]) == (first["task_id"], "completed")


def test_rejected_submission_does_not_claim_its_idempotency_key(api: httpx.Client, control: ControlClient) -> None:
    assert_error(submit(api, task_body(resolution="8K"), **{"Idempotency-Key": "k2"}), 400, "invalid_request")
    assert submitted(api, task_body(), **{"Idempotency-Key": "k2"})["status"] == "queued"


# -- cancel --------------------------------------------------------------------------------------------


def test_cancel_while_queued_refunds_and_stays_cancelled(api: httpx.Client, control: ControlClient) -> None:
    created = submitted(api, task_body(PRO))
    task_id = created["task_id"]
    control.advance(0.5)
    assert fetch(api, task_id)["status"] == "queued"
    response = api.post(f"{TASKS}/{task_id}/cancel")
    assert response.status_code == 200
    assert_valid("response/cancel", response.json())
    assert response.json() == {
        "task_id": task_id, "status": "cancelled", "refunded": True, "refunded_quota": created["pre_consumed_cost"],
    }
    assert control.balance("qingbo", KEY) == 500_000_000
    cancelled_at = control.now()
    control.advance(120)
    task = fetch(api, task_id)
    assert (task["status"], task["progress"], task["cost"]) == ("cancelled", 0, 0)
    assert task["completed_at"] == ms(cancelled_at) and "result" not in task
    message = error_message(api.post(f"{TASKS}/{task_id}/cancel"), 400, "task_not_cancellable")
    assert "cancelled" in message


def test_cancel_while_processing_is_task_not_cancellable(api: httpx.Client, control: ControlClient) -> None:
    task_id = submitted(api, task_body())["task_id"]
    control.advance_to(timeline(control, task_id)["started_at"])
    message = error_message(api.post(f"{TASKS}/{task_id}/cancel"), 400, "task_not_cancellable")
    assert "processing" in message
    assert finish(api, control, task_id)["status"] == "completed"
    assert_error(api.post(f"{TASKS}/{task_id}/cancel"), 400, "task_not_cancellable")


def test_other_accounts_tasks_are_not_found(server: LiveServer, control: ControlClient) -> None:
    mine, theirs = make_client(server), make_client(server, OTHER_KEY)
    task_id = submitted(mine, task_body())["task_id"]
    assert_error(theirs.get(f"{TASKS}/{task_id}"), 404, "task_not_found")
    assert_error(theirs.post(f"{TASKS}/{task_id}/cancel"), 404, "task_not_found")
    assert fetch(mine, task_id)["status"] == "queued"


# -- billing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(SEED_PRICES))
def test_pre_consumed_cost_is_the_seed_price_in_quota(api: httpx.Client, control: ControlClient, model: str) -> None:
    created = submitted(api, task_body(model, n=3))
    assert created["pre_consumed_cost"] == quota(SEED_PRICES[model], 3)
    assert control.balance("qingbo", KEY) == 500_000_000 - created["pre_consumed_cost"]
    assert finish(api, control, created["task_id"])["cost"] == created["pre_consumed_cost"]


@pytest.mark.parametrize(
    ("model", "resolution", "usd"),
    [
        (PRO, "4K", "0.05625"), (FLASH, "0.5K", "0.03375"), (FLASH + "-official", "2K", "0.0909"),
        (NANO, "1K", "0.014063"),
    ],
)
def test_pricing_by_resolution_option(
    api: httpx.Client, control: ControlClient, model: str, resolution: str, usd: str
) -> None:
    control.set_options("qingbo", pricing="by_resolution")
    assert submitted(api, task_body(model, resolution=resolution))["pre_consumed_cost"] == quota(usd)


def test_empty_wallet_is_402_and_nothing_happens(api: httpx.Client, control: ControlClient) -> None:
    control.set_balance("qingbo", KEY, 0)
    message = error_message(submit(api, task_body(PRO)), 402, "payment_required")
    assert str(quota(SEED_PRICES[PRO])) in message
    assert control.tasks("qingbo") == [] and control.balance("qingbo", KEY) == 0
    control.set_balance("qingbo", KEY, quota(SEED_PRICES[PRO]))
    assert submitted(api, task_body(PRO))["status"] == "queued"
    assert control.balance("qingbo", KEY) == 0


def test_insufficient_balance_status_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", insufficient_balance_status=403)
    control.set_balance("qingbo", KEY, 1)
    assert_error(submit(api, task_body()), 403, "quota_not_enough")


def test_missing_price_fails_closed_with_500(server: LiveServer, api: httpx.Client, control: ControlClient) -> None:
    """TS: a model without a configured price is refused at submission (500 price_not_configured)."""
    prices = server.sim.provider("qingbo").data["models"][NANO]["usdPerImage"]
    saved = dict(prices)
    del prices["flat"]
    try:
        assert_error(submit(api, task_body(NANO)), 500, "price_not_configured")
    finally:
        prices.update(saved)
    assert control.tasks("qingbo") == [] and control.balance("qingbo", KEY) == 500_000_000


# -- content block -------------------------------------------------------------------------------------


def test_blocked_prompt_fails_with_upstream_bad_request_and_is_refunded(
    api: httpx.Client, control: ControlClient
) -> None:
    created = submitted(api, task_body(PRO, prompt=f"a banana {BLOCK}"))
    times = timeline(control, created["task_id"])
    assert 2 <= times["finished_at"] - times["accepted_at"] <= 6
    control.advance_to(times["finished_at"] - 0.01)
    assert control.balance("qingbo", KEY) == 500_000_000 - created["pre_consumed_cost"]
    control.advance_to(times["finished_at"])
    task = fetch(api, created["task_id"])
    assert (task["status"], task["progress"], task["cost"]) == ("failed", 0, 0)
    assert task["error"]["code"] == "upstream_bad_request"
    assert task["error"]["message"].startswith("[upstream_bad_request] Upstream returned: ")
    assert task["completed_at"] == ms(times["finished_at"]) and "result" not in task
    assert control.balance("qingbo", KEY) == 500_000_000


def test_block_error_code_option_and_moderation_patterns(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", block_error_code="upstream_unavailable")
    control.set_moderation(["forbidden fruit"])
    control.set_autojump(True)
    task = submitted(api, task_body(prompt="A Forbidden Fruit still life"), Prefer="wait=60")
    assert task["status"] == "failed" and task["error"]["code"] == "upstream_unavailable"


# -- images --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "ratio", "resolution", "size"),
    [
        (FLASH, "1:8", "0.5K", (192, 1536)),
        (FLASH, "16:9", "1K", (1376, 768)),
        (FLASH + "-official", "4:1", "2K", (4096, 1024)),
        (PRO, "3:2", "1K", (1264, 848)),
        (NANO, "4:5", "1K", (896, 1152)),
        (NANO + "-official", "16:9", "1K", (1344, 768)),
    ],
)
def test_images_download_at_the_gemini_size_as_jpeg(
    api: httpx.Client, control: ControlClient, model: str, ratio: str, resolution: str, size: tuple[int, int]
) -> None:
    control.set_autojump(True)
    task = submitted(api, task_body(model, aspect_ratio=ratio, resolution=resolution), Prefer="wait=60")
    (url,) = image_urls(task)
    assert urlsplit(url).path.startswith("/qingbo/output/") and urlsplit(url).path.endswith(".jpg")
    image = download(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    decoded = Image.open(io.BytesIO(image.content))
    assert (decoded.format, decoded.size) == ("JPEG", size)


def test_result_links_expire_after_24_hours(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    task = submitted(api, task_body(resolution="0.5K"), Prefer="wait=60")
    (url,) = image_urls(task)
    (item,) = task["result"]["images"]
    assert item["expires_at"] == task["completed_at"] // 1000 + DAY
    assert parse_qs(urlsplit(url).query)["expires"] == [str(item["expires_at"])]
    control.set_autojump(False)
    control.advance(DAY - 10)
    assert download(url).status_code == 200
    assert fetch(api, task["task_id"])["result"] == task["result"]  # reads do not extend the lifetime
    control.advance(10)
    expired = download(url)
    assert expired.status_code == 403 and b"AccessDenied" in expired.content
    tampered = url.replace("expires=", "expires=9")
    assert download(tampered).status_code == 403


def test_url_ttl_option_sets_expires_at(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", url_ttl_seconds=3 * DAY)
    control.set_autojump(True)
    task = submitted(api, task_body(), Prefer="wait=60")
    assert task["result"]["images"][0]["expires_at"] == task["completed_at"] // 1000 + 3 * DAY


def test_several_images_layouts(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    task = submitted(api, task_body(NANO, n=3, seed=42), Prefer="wait=60")
    assert [len(item["url"]) for item in task["result"]["images"]] == [1, 1, 1]
    assert len(set(image_urls(task))) == 3
    control.set_options("qingbo", result_layout="one_item")
    assert [len(item["url"]) for item in fetch(api, task["task_id"])["result"]["images"]] == [3]


def test_same_seed_same_ids_times_and_pixels(api: httpx.Client, control: ControlClient) -> None:
    def run(seed: int) -> list[Any]:
        control.reset(seed=seed)
        control.set_autojump(True)
        task = submitted(api, task_body(NANO, n=2), Prefer="wait=60")
        return [task["task_id"], task["completed_at"], [download(u).content for u in image_urls(task)]]

    first = run(5)
    assert run(5) == first
    assert run(6)[1] != first[1]


# -- request checks beyond the schema ------------------------------------------------------------------


def test_prompt_limit_is_the_documented_1000_characters(api: httpx.Client, control: ControlClient) -> None:
    assert submitted(api, task_body(prompt="猫" * 1000))["status"] == "queued"
    message = error_message(submit(api, task_body(prompt="猫" * 1001)), 400, "invalid_request")
    assert "prompt" in message and "1000" in message
    control.set_options("qingbo", prompt_max_chars=0)
    assert submitted(api, task_body(prompt="猫" * 5000))["status"] == "queued"


def test_legacy_field_names_are_accepted_then_refused_by_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_autojump(True)
    task = submitted(api, task_body(size="4:1", google_search_enhancement=True), Prefer="wait=60")
    width, height = Image.open(io.BytesIO(download(image_urls(task)[0]).content)).size
    assert width == 4 * height
    assert_error(submit(api, task_body(size="16:9", aspect_ratio="1:1")), 400, "invalid_request")
    control.set_options("qingbo", legacy_field_names=False)
    message = error_message(submit(api, task_body(size="16:9")), 400, "invalid_request")
    assert "size" in message


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("aGVsbG8=", id="bare-base64"),
        pytest.param("ftp://example.com/a.png", id="ftp-url"),
        pytest.param("https://example.com/has space.png", id="url-with-space"),
        pytest.param("data:image/png;base64,!!!", id="broken-data-url"),
        pytest.param(png_data_url(8, 8, "GIF"), id="gif-data-url"),
    ],
)
def test_unusable_reference_images_are_400(api: httpx.Client, reference: str) -> None:
    message = error_message(submit(api, task_body(action="edit", image_urls=[reference])), 400, "invalid_request")
    assert "image_urls[0]" in message


def test_auto_ratio_under_the_cn_contract(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", contract="cn")
    control.set_autojump(True)
    wide = submitted(api, task_body(NANO, action="edit", aspect_ratio="auto", image_urls=[png_data_url(160, 90)]),
                     Prefer="wait=60")
    assert Image.open(io.BytesIO(download(image_urls(wide)[0]).content)).size == (1344, 768)  # follows the input
    sizes = set()
    for n in range(8):
        task = submitted(api, task_body(NANO, aspect_ratio="auto", prompt=f"banana {n}"), Prefer="wait=60")
        sizes.add(Image.open(io.BytesIO(download(image_urls(task)[0]).content)).size)
    assert sizes <= {(1024, 1024), (1344, 768)} and len(sizes) == 2  # text-to-image picks 1:1 or 16:9


HOSTILE_BODIES = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"prompt"', id="string"),
    pytest.param(json.dumps(task_body(prompt=None)).encode(), id="prompt-null"),
    pytest.param(json.dumps(task_body(prompt="")).encode(), id="prompt-empty"),
    pytest.param(json.dumps(task_body(n="2")).encode(), id="n-string"),
    pytest.param(json.dumps(task_body(n=True)).encode(), id="n-bool"),
    pytest.param(json.dumps(task_body(n=2.5)).encode(), id="n-fraction"),
    pytest.param(json.dumps(task_body(n=10**400)).encode(), id="n-huge"),
    pytest.param(json.dumps(task_body(image_urls="https://e.com/a.png")).encode(), id="image-urls-string"),
    pytest.param(json.dumps(task_body(image_urls=[None, 1])).encode(), id="image-urls-junk"),
    pytest.param(json.dumps(task_body(model={"$ref": "x"})).encode(), id="model-object"),
    pytest.param(json.dumps(task_body(callback_url="javascript:alert(1)")).encode(), id="callback-not-http"),
    pytest.param(json.dumps(task_body(aspect_ratio="\uff11:\uff11")).encode(), id="unicode-lookalike-ratio"),
    pytest.param(b'{"model":"gemini-3.1-flash-image-preview","prompt":"\\ud800"}', id="lone-surrogate"),
    pytest.param(b'{"model":"gemini-3.1-flash-image-preview","prompt":"x","extra":{"v":NaN}}', id="nan"),
    pytest.param(b'{"model":"gemini-3.1-flash-image-preview","prompt":"x","seed":1e999}', id="infinity"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-nesting"),
    pytest.param(bytes(range(256)), id="binary"),
]


@pytest.mark.parametrize("content", HOSTILE_BODIES)
def test_hostile_bodies_are_400_never_500(api: httpx.Client, control: ControlClient, content: bytes) -> None:
    assert_error(api.post(TASKS, content=content, headers={"content-type": "application/json"}), 400,
                 "invalid_request")
    assert control.tasks("qingbo") == []


# -- auth, routes, hosts, journal ----------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "qingbo-test-key"])
def test_bad_authorization_is_401_on_every_route(
    server: LiveServer, control: ControlClient, authorization: str | None
) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    headers = {} if authorization is None else {"Authorization": authorization}
    client = make_client(server, None, **headers)
    for method, path in [("POST", TASKS), ("GET", f"{TASKS}/task-wave1"), ("POST", f"{TASKS}/task-wave1/cancel"),
                         ("POST", f"{TASKS}/sync")]:
        assert_error(client.request(method, path, json=task_body()), 401, "authentication_error")
    assert control.tasks("qingbo") == []


def test_only_listed_tokens_are_accepted(server: LiveServer, control: ControlClient) -> None:
    control.set_tokens("qingbo", ["good"])
    good, bad = make_client(server, "good"), make_client(server, "bad")
    assert submitted(good, task_body())["status"] == "queued"
    assert_error(submit(bad, task_body()), 401, "authentication_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", TASKS), ("GET", "/v1/nothing"), ("DELETE", f"{TASKS}/x"), ("PUT", TASKS), ("POST", "/v1/models"),
     ("POST", f"{TASKS}/sync"), ("GET", "/")],
)
def test_unknown_routes_are_qingbo_404s(api: httpx.Client, method: str, path: str) -> None:
    assert_error(api.request(method, path), 404, "not_found")


@pytest.mark.parametrize("host", ["www.qingbo.dev", "qingbo.dev"])
def test_real_hostnames_reach_qingbo_at_the_root(server: LiveServer, control: ControlClient, host: str) -> None:
    control.set_autojump(True)
    headers = {"Host": host, "Authorization": f"Bearer {KEY}"}
    client = plain_client(base_url=server.url, headers=headers)
    task = submitted(client, task_body(resolution="0.5K"), Prefer="wait=60")
    assert task["urls"]["get"] == f"http://{host}{TASKS}/{task['task_id']}"
    url = urlsplit(image_urls(task)[0])
    assert url.hostname == host and url.path.startswith("/output/")
    image = client.get(f"{url.path}?{url.query}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert fetch(client, task["task_id"])["status"] == "completed"


def test_journal_records_each_exchange(api: httpx.Client, control: ControlClient) -> None:
    created = submitted(api, task_body())
    fetch(api, created["task_id"])
    api.post(f"{TASKS}/{created['task_id']}/cancel")
    submit(api, task_body(resolution="1k"))
    entries = control.journal(provider="qingbo", kind="http")
    summary = [(e["operation"], e["status"], e["owner"], e["task_id"]) for e in entries]
    assert summary == [
        ("SubmitTask", 200, KEY, created["task_id"]),
        ("GetTask", 200, KEY, created["task_id"]),
        ("CancelTask", 200, KEY, created["task_id"]),
        ("SubmitTask", 400, KEY, None),
    ]
    (violation,) = entries[-1]["violations"]
    assert (violation["path"], violation["rule"], violation["nearest"]) == ("resolution", "enum", "1K")


# -- named options -------------------------------------------------------------------------------------


def test_timestamps_in_seconds_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", timestamp_unit="s")
    control.set_autojump(True)
    task = submitted(api, task_body(), Prefer="wait=60")
    times = timeline(control, task["task_id"])
    assert (task["created_at"], task["completed_at"]) == (int(times["accepted_at"]), int(times["finished_at"]))


def test_percent_string_progress_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", progress_type="percent_string")
    created = submitted(api, task_body())
    assert created["progress"] == 0  # submit keeps the integer
    times = timeline(control, created["task_id"])
    assert fetch(api, created["task_id"])["progress"] == ""
    control.advance_to((times["started_at"] + times["finished_at"]) / 2)
    assert re.fullmatch(r"(4[5-9]|5[0-5])%", fetch(api, created["task_id"])["progress"])
    assert finish(api, control, created["task_id"])["progress"] == "100%"


def test_code_data_submit_envelope_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", submit_response="code_data")
    response = submit(api, task_body())
    assert_valid("response/submit-legacy", response.json())
    assert fetch(api, response.json()["data"])["status"] == "queued"


def test_ulid_task_id_option(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", task_id_style="ulid")
    task_id = submitted(api, task_body())["task_id"]
    assert re.fullmatch(r"task_[0-9A-HJKMNP-TV-Z]{26}", task_id)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    millis = 0
    for char in task_id[5:15]:
        millis = millis * 32 + alphabet.index(char)
    assert millis == ms(DEFAULT_VIRTUAL_EPOCH)


# -- legacy POST /v1/tasks/sync ------------------------------------------------------------------------


def test_sync_endpoint_returns_the_documented_finished_shape(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    control.set_autojump(True)
    response = api.post(f"{TASKS}/sync", json=task_body(NANO))
    assert response.status_code == 200
    assert_valid("response/sync", response.json())
    body = response.json()
    assert body["status"] == "completed" and set(body) == {
        "task_id", "model", "status", "created_at", "completed_at", "progress", "result",
    }
    (item,) = body["result"]["images"]
    assert isinstance(item["url"], str) and download(item["url"]).status_code == 200


def test_sync_endpoint_times_out_with_a_poll_url(server: LiveServer, api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    control.set_autojump(True)
    start = control.now()
    response = api.post(f"{TASKS}/sync", json=task_body(PRO, resolution="4K", n=4))
    assert_valid("response/sync", response.json())
    body = response.json()
    assert body["status"] == "processing" and control.now() == start + 60
    assert body["poll_url"] == f"/qingbo{TASKS}/{body['task_id']}"
    polled = plain_client().get(server.url + body["poll_url"], headers={"Authorization": f"Bearer {KEY}"})
    assert polled.status_code == 200 and polled.json()["task_id"] == body["task_id"]


def test_sync_endpoint_reports_a_blocked_task(api: httpx.Client, control: ControlClient) -> None:
    control.set_options("qingbo", legacy_sync_endpoint=True)
    control.set_autojump(True)
    body = api.post(f"{TASKS}/sync", json=task_body(prompt=BLOCK)).json()
    assert_valid("response/sync", body)
    assert body["status"] == "failed" and body["error"]["code"] == "upstream_bad_request"


# -- callbacks -----------------------------------------------------------------------------------------


hook = receiver_fixture("hook")


def test_callback_posts_the_task_object_at_completion(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    created = submitted(api, task_body(callback_url=hook.url))
    times = timeline(control, created["task_id"])
    control.advance_to(times["finished_at"] - 0.01)
    assert hook.requests == []
    control.advance_to(times["finished_at"])
    (call,) = hook.requests
    assert call.path == "/hook" and call.headers["content-type"] == "application/json"
    assert_valid("response/callback", call.json())
    assert call.json() == fetch(api, created["task_id"])
    (attempt,) = control.journal(kind="webhook", task_id=created["task_id"])
    assert (attempt["status"], attempt["at"], attempt["detail"]) == (
        200, times["finished_at"], {"attempt": 1, "event": "completed", "outcome": "delivered"},
    )


def test_callback_events_filter(api: httpx.Client, control: ControlClient, hook: WebhookReceiver) -> None:
    only_failed = submitted(api, task_body(callback_url=hook.url_for("/f"), callback_events=["failed"]))
    blocked = submitted(api, task_body(prompt=BLOCK, callback_url=hook.url_for("/f"), callback_events=["failed"]))
    control.advance(60)
    assert [(c.path, c.json()["task_id"], c.json()["status"]) for c in hook.requests] == [
        ("/f", blocked["task_id"], "failed"),
    ]
    assert hook.requests[0].json()["error"]["code"] == "upstream_bad_request"
    assert control.journal(kind="webhook", task_id=only_failed["task_id"]) == []


def test_cancel_sends_the_cancelled_event_by_default(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    created = submitted(api, task_body(callback_url=hook.url))
    assert api.post(f"{TASKS}/{created['task_id']}/cancel").status_code == 200
    control.flush_webhooks()
    (call,) = hook.bodies()
    assert (call["status"], call["cost"]) == ("cancelled", 0)
    control.set_options("qingbo", callback_default_events=["completed"])
    quiet = submitted(api, task_body(callback_url=hook.url))
    api.post(f"{TASKS}/{quiet['task_id']}/cancel")
    control.flush_webhooks()
    assert len(hook.requests) == 1


def test_failed_callbacks_are_retried_after_1_2_4_seconds_then_abandoned(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    hook.script(500, 503, 502, 500)
    created = submitted(api, task_body(callback_url=hook.url))
    finished = timeline(control, created["task_id"])["finished_at"]
    control.advance_to(finished + 10)
    attempts = control.journal(kind="webhook", task_id=created["task_id"])
    assert [(a["at"] - finished, a["status"], a["detail"]["outcome"]) for a in attempts] == [
        (0, 500, "retrying"), (1, 503, "retrying"), (3, 502, "retrying"), (7, 500, "abandoned"),
    ]
    assert len(hook.requests) == 4 and all(body["status"] == "completed" for body in hook.bodies())


def test_a_retry_that_succeeds_stops_the_retries(
    api: httpx.Client, control: ControlClient, hook: WebhookReceiver
) -> None:
    hook.script(500)
    created = submitted(api, task_body(callback_url=hook.url))
    control.advance(60)
    outcomes = [a["detail"]["outcome"] for a in control.journal(kind="webhook", task_id=created["task_id"])]
    assert outcomes == ["retrying", "delivered"]


def test_callbacks_to_remote_hosts_are_journaled_but_not_sent(api: httpx.Client, control: ControlClient) -> None:
    doc = example("requests", "seed-callback-events")
    created = submitted(api, doc["body"])
    control.advance(60)
    (attempt,) = control.journal(kind="webhook", task_id=created["task_id"])
    assert attempt["path"] == doc["body"]["callback_url"] and attempt["detail"]["outcome"] == "refused"
    assert_valid("response/callback", attempt["request_body"])


def test_example_folders_are_not_empty() -> None:
    for kind in ("requests", "invalid", "responses"):
        assert list(Path(EXAMPLES / kind).glob("*.json")), kind

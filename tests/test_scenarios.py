"""Each shipped scenario does what its header says, for every provider it concerns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import provider_server

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.testing import WebhookReceiver

KEY = "scenario-key"
PROMPT = "a ripe banana on a desk"


def submit_request(slug: str, count: int = 1) -> tuple[str, Any, dict[str, str]]:
    """A minimal valid submit for each provider: path, JSON body, auth headers."""
    bearer = {"Authorization": f"Bearer {KEY}"}
    gateway = {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT}
    requests: dict[str, tuple[str, Any, dict[str, str]]] = {
        "civitai": ("/v2/consumer/workflows", {"steps": [{"$type": "imageGen", "input": {
            "engine": "google", "model": "nano-banana-2", "prompt": PROMPT, "numImages": count}}]}, bearer),
        "qingbo": ("/v1/tasks", {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT, "n": count}, bearer),
        "runware": ("/v1", [{"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": "google:4@3",
                             "positivePrompt": PROMPT, "width": 1024, "height": 1024, "numberResults": count,
                             "deliveryMethod": "async"}], bearer),
        "crun": ("/api/v1/client/job/CreateTask", {"model": "google/nano-banana", "input": {"prompt": PROMPT}},
                 {"x-api-key": KEY}),
        "foxapi": ("/v1/images/generations", gateway, bearer),
        "evolink": ("/v1/images/generations", gateway, bearer),
    }
    return requests[slug]


SLUGS = ["civitai", "qingbo", "runware", "crun", "foxapi", "evolink"]
INSUFFICIENT_STATUS = {"civitai": 403, "qingbo": 402, "runware": 402, "crun": 402, "foxapi": 402, "evolink": 402}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with provider_server(*SLUGS) as live:
        yield live


def post(server: LiveServer, slug: str, count: int = 1) -> httpx.Response:
    path, body, headers = submit_request(slug, count)
    return httpx.post(server.provider_url(slug) + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("slug", SLUGS)
def test_empty_wallet_gives_each_providers_insufficient_funds_answer(
    server: LiveServer, control: ControlClient, slug: str
) -> None:
    control.load_scenario("empty-wallet")
    response = post(server, slug)
    assert response.status_code == INSUFFICIENT_STATUS[slug], response.text
    assert control.tasks(slug) == []


def test_rate_limit_storm(server: LiveServer, control: ControlClient) -> None:
    control.load_scenario("rate-limit-storm")
    statuses = [post(server, "crun").status_code for _ in range(6)]
    # Every third submit is refused by the burst rule; the window allows 5 requests per 10 s, and
    # only 2 tasks may be in flight.
    assert statuses[:3] == [200, 200, 429]
    assert statuses.count(429) >= 3
    refused = post(server, "crun")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    control.advance(600)
    assert post(server, "crun").status_code == 200


def test_content_blocked_fails_every_task_after_processing(server: LiveServer, control: ControlClient) -> None:
    control.load_scenario("content-blocked")
    assert post(server, "civitai").status_code == 202
    control.advance(3600)
    [task] = control.tasks("civitai")
    assert task["phase"] == "failed" and task["failure"]["kind"] == "blocked"


@pytest.mark.parametrize("slug", SLUGS)
def test_partial_batch_block_blocks_the_second_image_only(
    server: LiveServer, control: ControlClient, slug: str
) -> None:
    if slug in ("crun", "foxapi", "evolink"):
        pytest.skip(f"{slug} documents one image per task")
    control.load_scenario("partial-batch-block")
    assert post(server, slug, count=3).status_code in (200, 202)
    outputs = [image for task in control.tasks(slug) for image in task["outputs"]]
    assert [image["blocked"] for image in outputs] == [False, True, False]


def test_slow_queue_delays_the_start(server: LiveServer, control: ControlClient) -> None:
    assert post(server, "civitai").status_code == 202
    [normal] = control.tasks("civitai")
    control.reset(seed=0)
    control.load_scenario("slow-queue")
    assert post(server, "civitai").status_code == 202
    [slow] = control.tasks("civitai")
    assert slow["timeline"]["started_at"] - normal["timeline"]["started_at"] > 10


def test_flaky_upstream_mixes_503s_failed_tasks_and_500s(server: LiveServer, control: ControlClient) -> None:
    control.load_scenario("flaky-upstream")
    statuses = [post(server, "evolink").status_code for _ in range(40)]
    assert 503 in statuses and 200 in statuses
    control.advance(3600)
    phases = [task["phase"] for task in control.tasks("evolink")]
    assert "failed" in phases and "succeeded" in phases


def test_dropped_connections_lose_answers_not_work(server: LiveServer, control: ControlClient) -> None:
    control.load_scenario("dropped-connections")
    lost = 0
    for _ in range(40):
        try:
            post(server, "foxapi")
        except httpx.TransportError:
            lost += 1
    assert lost > 0
    assert len(control.tasks("foxapi")) == 40  # every submit was processed, answered or not


def test_webhook_outage_drops_then_delays_duplicates_and_reorders(server: LiveServer, control: ControlClient) -> None:
    control.load_scenario("webhook-outage")
    with WebhookReceiver() as receiver:
        path, body, headers = submit_request("civitai")
        body["callbacks"] = [{"url": receiver.url, "type": ["workflow:*"]}]
        httpx.post(server.provider_url("civitai") + path, json=body, headers=headers)
        control.advance(120)
        control.flush_webhooks()
        assert receiver.requests == []  # the outage: nothing arrives in the first 5 minutes
        control.advance(300)
        body["callbacks"] = [{"url": receiver.url, "type": ["workflow:*"]}]
        httpx.post(server.provider_url("civitai") + path, json=body, headers=headers)
        for _ in range(10):
            control.advance(30)
            control.flush_webhooks()
        statuses = [b["status"] for b in receiver.bodies()]
    assert set(statuses) == {"unassigned", "processing", "succeeded"}
    dropped = [e for e in control.journal(kind="webhook") if e["detail"]["outcome"] == "dropped"]
    assert len(dropped) == 3


@pytest.mark.parametrize("slug", SLUGS)
def test_expired_urls_answer_403_after_15_seconds(server: LiveServer, control: ControlClient, slug: str) -> None:
    control.load_scenario("expired-urls")
    path, body, headers = submit_request(slug)
    assert httpx.post(server.provider_url(slug) + path, json=body, headers=headers).status_code in (200, 202)
    [task] = control.tasks(slug)
    control.advance_to(task["timeline"]["finished_at"] + 1)
    urls = urls_in(read_result(server, slug, task["id"], body, headers))
    assert urls, "no image URL in the result"
    assert httpx.get(urls[0], follow_redirects=True).status_code == 200
    control.advance(16)
    assert httpx.get(urls[0], follow_redirects=True).status_code == 403


def read_result(server: LiveServer, slug: str, task_id: str, body: Any, headers: dict[str, str]) -> Any:
    """Read the finished task the way a client would."""
    base = server.provider_url(slug)
    if slug == "runware":
        poll = [{"taskType": "getResponse", "taskUUID": body[0]["taskUUID"]}]
        return httpx.post(f"{base}/v1", headers=headers, json=poll).json()
    paths = {
        "civitai": f"/v2/consumer/workflows/{task_id}", "qingbo": f"/v1/tasks/{task_id}",
        "crun": f"/api/v1/client/job/TaskInfo?task_id={task_id}", "foxapi": f"/v1/tasks/{task_id}",
        "evolink": f"/v1/tasks/{task_id}",
    }
    return httpx.get(base + paths[slug], headers=headers).json()


def urls_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for item in value.values() for u in urls_in(item)]
    if isinstance(value, list):
        return [u for item in value for u in urls_in(item)]
    return [value] if isinstance(value, str) and value.startswith("http") else []

"""Dogfooding: the project's own tests drive every provider through the `nanobanana` fixture only.

`FLOWS` are plain httpx clients, one per provider, written from each provider's docs: submit, poll (sleeping
on the simulator's clock through the injected `nanobanana.sleep`) until an image URL shows, download it.
`tests/test_plugin.py` runs the same clients inside pytester sessions, to check what the plugin reports.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from simulator.pytest_plugin.session import Nanobanana

PROMPT = "A banana astronaut floating above the earth"
POLL_SECONDS = 5


@dataclass(frozen=True)
class Flow:
    """One provider's text-to-image generation, as a plain client does it."""

    path: str  # the submit route (POST)
    body: Any
    image_url: Callable[[Any], str | None]  # the first image's URL once the task is done, else None
    poll: Callable[[Any], tuple[str, dict[str, Any]]]  # GET path and query for the task, from the submit answer
    wrong: tuple[str, Any, str]  # a field set to a value the provider refuses, and the path its report names
    submit_options: dict[str, Any] = field(default_factory=dict)  # query and headers of the submit

    def wrong_body(self) -> Any:
        """The body with the wrong field: `dotted.path` (list indices as numbers) set to the refused value."""
        dotted, value, _ = self.wrong
        body = copy.deepcopy(self.body)
        *parents, last = [int(part) if part.isdigit() else part for part in dotted.split(".")]
        target = body
        for part in parents:
            target = target[part]
        target[last] = value
        return body


def _done(status: str, image: Callable[[Any], str]) -> Callable[[Any], str | None]:
    """The image once `status` is reached; a task that ended any other way fails the client loudly."""

    def image_url(answer: Any) -> str | None:
        state = answer.get("data", answer) if isinstance(answer, dict) and "code" in answer else answer
        if state.get("status") == status:  # CRun's create answer has no status yet: not done
            return image(state)
        if state.get("status") in {"failed", "expired", "canceled", "cancelled"}:
            raise AssertionError(f"the task ended {state['status']}: {answer}")
        return None

    return image_url


FLOWS: dict[str, Flow] = {
    "civitai": Flow(
        "/v2/consumer/workflows",
        {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2", "prompt": PROMPT,
                                                   "aspectRatio": "16:9"}}]},
        _done("succeeded", lambda w: w["steps"][0]["output"]["images"][0]["url"]),
        lambda w: (f"/v2/consumer/workflows/{w['id']}", {}),
        ("steps.0.input.aspectRatio", "16:10", "steps[0].input.aspectRatio"),
        {"params": {"wait": 60}},
    ),
    "qingbo": Flow(
        "/v1/tasks",
        {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT},
        _done("completed", lambda t: t["result"]["images"][0]["url"][0]),
        lambda t: (f"/v1/tasks/{t['task_id']}", {}),
        ("resolution", "1k", "resolution"),
    ),
    "runware": Flow(
        "/v1",
        [{"taskType": "imageInference", "taskUUID": "16830039-18a1-48fc-b10a-3f40efdf519a", "model": "google:4@3",
          "positivePrompt": PROMPT, "width": 1024, "height": 1024}],
        lambda answer: answer["data"][0]["imageURL"],  # sync delivery: the answer carries the result
        lambda answer: ("/v1", {}),
        ("0.outputFormat", "GIF", "outputFormat"),
    ),
    "crun": Flow(
        "/api/v1/client/job/CreateTask",
        {"model": "google/nano-banana-2", "input": {"prompt": PROMPT, "aspect_ratio": "1:1"}},
        _done("success", lambda t: t["result"]["media_urls"][0]),
        lambda answer: ("/api/v1/client/job/TaskInfo", {"task_id": answer["data"]["task_id"]}),
        ("input.output_format", "webp", "input.output_format"),
    ),
    "foxapi": Flow(
        "/v1/images/generations",
        {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT},
        _done("completed", lambda t: t["results"][0]["url"]),
        lambda t: (f"/v1/tasks/{t['id']}", {}),
        ("output_format", "jpeg", "output_format"),
    ),
    "evolink": Flow(
        "/v1/images/generations",
        {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT},
        _done("completed", lambda t: t["results"][0]),
        lambda t: (f"/v1/tasks/{t['id']}", {}),
        ("size", "7:3", "size"),
    ),
}
SLUGS = sorted(FLOWS)


def _client_options(nanobanana: Nanobanana, slug: str) -> dict[str, Any]:
    return {"base_url": nanobanana.base_url(slug), "headers": nanobanana.auth_headers(slug),
            "follow_redirects": True, "timeout": 10}


def generate(nanobanana: Nanobanana, slug: str) -> bytes:
    """A sync client: submit, poll with the injected sleep, download the first image."""
    flow = FLOWS[slug]
    with httpx.Client(**_client_options(nanobanana, slug)) as client:
        answer = client.post(flow.path, json=flow.body, **flow.submit_options).raise_for_status().json()
        state = answer
        while (url := flow.image_url(state)) is None:
            nanobanana.sleep(POLL_SECONDS)
            path, params = flow.poll(answer)
            state = client.get(path, params=params).raise_for_status().json()
        return client.get(url).raise_for_status().content


async def agenerate(nanobanana: Nanobanana, slug: str) -> bytes:
    """The same client on httpx.AsyncClient, sleeping with `nanobanana.asleep`."""
    flow = FLOWS[slug]
    async with httpx.AsyncClient(**_client_options(nanobanana, slug)) as client:
        answer = (await client.post(flow.path, json=flow.body, **flow.submit_options)).raise_for_status().json()
        state = answer
        while (url := flow.image_url(state)) is None:
            await nanobanana.asleep(POLL_SECONDS)
            path, params = flow.poll(answer)
            state = (await client.get(path, params=params)).raise_for_status().json()
        return (await client.get(url)).raise_for_status().content


def send_wrong_field(nanobanana: Nanobanana, slug: str) -> httpx.Response:
    flow = FLOWS[slug]
    with httpx.Client(**_client_options(nanobanana, slug)) as client:
        return client.post(flow.path, json=flow.wrong_body(), **flow.submit_options)


def is_image(content: bytes) -> bool:
    return content.startswith((b"\xff\xd8\xff", b"\x89PNG", b"RIFF"))


# -- the project's own tests, through the fixture ------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_each_provider_generates_an_image_through_the_fixture(nanobanana: Nanobanana, slug: str) -> None:
    assert is_image(generate(nanobanana, slug))
    nanobanana.assert_no_violations(strict=True)
    assert all(entry["status"] < 400 for entry in nanobanana.requests(provider=slug))


@pytest.mark.parametrize("mode", [pytest.param(mode, marks=pytest.mark.nanobanana(mode=mode))
                                  for mode in ("live", "inprocess")])
@pytest.mark.parametrize("slug", ["qingbo", "crun"])
def test_async_clients_poll_on_the_clock_in_both_modes(nanobanana: Nanobanana, mode: str, slug: str) -> None:
    assert nanobanana.mode == mode
    assert is_image(asyncio.run(agenerate(nanobanana, slug)))
    polls = nanobanana.assert_intervals(at_least=POLL_SECONDS, at_most=POLL_SECONDS, provider=slug,
                                        operation="GetTask" if slug == "qingbo" else "TaskInfo")
    assert polls, "the task took some clock time, so the client polled"
    assert nanobanana.elapsed() == POLL_SECONDS * (len(polls) + 1)


@pytest.mark.nanobanana("civitai", seed=7)
def test_the_seed_makes_runs_repeat(nanobanana: Nanobanana) -> None:
    first = generate(nanobanana, "civitai")
    ids = [entry["response_body"]["id"] for entry in nanobanana.requests(operation="SubmitWorkflow")]
    nanobanana.control.reset(seed=7)
    assert generate(nanobanana, "civitai") == first
    assert [entry["response_body"]["id"] for entry in nanobanana.requests(operation="SubmitWorkflow")] == ids


@pytest.mark.nanobanana("qingbo")
def test_a_deliberately_invalid_request_can_be_expected(nanobanana: Nanobanana) -> None:
    nanobanana.expect_violations("resolution")
    answer = send_wrong_field(nanobanana, "qingbo")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"


BOTH_MODES = [pytest.param(mode, marks=pytest.mark.nanobanana(mode=mode)) for mode in ("live", "inprocess")]


@pytest.mark.parametrize("mode", BOTH_MODES)
@pytest.mark.parametrize(("kind", "error"), [
    ("reset", httpx.ReadError), ("empty", httpx.RemoteProtocolError), ("truncate", httpx.RemoteProtocolError),
])
def test_network_faults_reach_sync_and_async_clients_as_transport_errors(
    nanobanana: Nanobanana, mode: str, kind: str, error: type[httpx.TransportError],
) -> None:
    nanobanana.control.add_faults({"match": {"operation": "GetCredits"}, "when": {"times": 2},
                                   "do": {"network": kind}})
    options = _client_options(nanobanana, "evolink")

    async def async_client() -> None:
        async with httpx.AsyncClient(**options) as client:
            with pytest.raises(error):
                await client.get("/v1/credits")

    with httpx.Client(**options) as client:
        with pytest.raises(error):
            client.get("/v1/credits")
        asyncio.run(async_client())
        assert client.get("/v1/credits").status_code == 200  # the rule fired twice; the connection recovers
    nanobanana.assert_requests(operation="GetCredits", count=3)


@pytest.mark.parametrize("mode", BOTH_MODES)
def test_callbacks_reach_a_receiver_and_are_journaled(nanobanana: Nanobanana, mode: str) -> None:
    hook = nanobanana.receiver(statuses=[500])
    with httpx.Client(**_client_options(nanobanana, "evolink")) as client:
        body = {**FLOWS["evolink"].body, "callback_url": hook.url}
        assert client.post("/v1/images/generations", json=body).status_code == 200
    nanobanana.advance(120)
    nanobanana.flush_webhooks()
    assert [request.status for request in hook.requests] == [500, 200]
    assert hook.requests[-1].json()["status"] == "completed"
    retried, delivered = nanobanana.assert_webhooks(provider="evolink", count=2)
    assert (retried["detail"]["outcome"], delivered["detail"]["outcome"]) == ("retrying", "delivered")


@pytest.mark.nanobanana("evolink", mode="inprocess")
def test_inprocess_routing_leaves_other_hosts_to_the_tests_own_respx_routes(nanobanana: Nanobanana) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get("https://status.example.test/ping").respond(json={"pong": True})
        assert httpx.get("https://status.example.test/ping").json() == {"pong": True}
        with httpx.Client(**_client_options(nanobanana, "evolink")) as client:
            assert client.get("/v1/credits").status_code == 200
    assert [entry["operation"] for entry in nanobanana.requests()] == ["GetCredits"]


@pytest.mark.nanobanana("runware", mode="inprocess")
def test_inprocess_honours_the_clients_read_timeout(nanobanana: Nanobanana) -> None:
    nanobanana.control.add_faults({"match": {"operation": "Tasks"}, "do": {"network": "latency", "seconds": 2}})
    options = {**_client_options(nanobanana, "runware"), "timeout": 0.1}
    with httpx.Client(**options) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1", json=[{"taskType": "ping", "ping": True}])

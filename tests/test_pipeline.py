"""One pipeline for every transport: HTTP and in-process answer alike, and an adapter of a few lines can drive it.

The in-process transport reaches the pipeline without ASGI or a socket; a third, hand-made adapter below
(a WebSocket-like one: a frame, the session's key, no headers) shows what any new transport needs to write.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest

from simulator.clock import VirtualClock
from simulator.engine.webhooks import Destination, destination
from simulator.pipeline import Answer, Exchange
from simulator.sim import Simulator
from simulator.transports.inprocess import Dropped, InProcessTransport

KEY = "sk-pipeline"
CIVITAI = "https://orchestration.civitai.com"
WORKFLOWS = "/v2/consumer/workflows"
STEP = {"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2", "prompt": "a pipeline"}}
# Headers that differ between the two transports for the same request (the client library's own).
TRANSPORT_HEADERS = {"date", "user-agent", "accept-encoding", "connection", "accept"}


def _sim(*slugs: str) -> Simulator:
    # One signing key for both simulators, so their signed links are the same bytes (keys are random by default).
    return Simulator(clock=VirtualClock(start=1_800_000_000, autojump=True), providers=list(slugs),
                     self_check="strict", signing_key=b"pipeline-test-key")


class Both:
    """The same requests, once through the HTTP app (ASGI) and once through the in-process transport."""

    def __init__(self, slug: str) -> None:
        self.http_sim, self.inprocess_sim = _sim(slug), _sim(slug)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.http_sim.app), base_url=CIVITAI)
        sim = self.inprocess_sim
        self.inprocess = InProcessTransport(sim.router, sim.pipeline, sim.engine.now)

    async def send(self, method: str, path: str, **options: Any) -> tuple[httpx.Response, httpx.Response]:
        headers = {"authorization": f"Bearer {KEY}", **options.pop("headers", {})}
        over_http = await self.http.request(method, path, headers=headers, **options)
        request = httpx.Request(method, CIVITAI + path, headers=headers, **options)
        target = self.inprocess.target(request)
        assert target is not None and target.endpoint is not None
        return over_http, await self.inprocess.handle(request, target)

    def journals(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        def entries(sim: Simulator) -> list[dict[str, Any]]:
            out = []
            for entry in sim.engine.journal.entries():
                seen = entry.as_dict()
                for key in ("request_headers", "response_headers"):
                    seen[key] = {k: v for k, v in seen[key].items() if k not in TRANSPORT_HEADERS}
                out.append(seen)
            return out

        return entries(self.http_sim), entries(self.inprocess_sim)


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert {k: v for k, v in a.headers.items() if k != "date"} == {k: v for k, v in b.headers.items() if k != "date"}


def test_http_and_in_process_give_the_same_answers_and_journal() -> None:
    async def scenario() -> None:
        both = Both("civitai")
        submitted = await both.send("POST", WORKFLOWS, json={"steps": [STEP]})
        _same(*submitted)
        workflow = submitted[0].json()["id"]
        for method, path, options in [
            ("GET", f"{WORKFLOWS}/{workflow}?wait=30", {}),  # waits on the virtual clock, then succeeds
            ("GET", f"{WORKFLOWS}?take=0", {}),  # a typed parameter out of range: 400 keyed `take`
            ("PUT", WORKFLOWS, {}),  # a known path, another method: 405 with Allow
            ("POST", WORKFLOWS, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
            ("GET", "/v2/nowhere", {}),
        ]:
            _same(*await both.send(method, path, **options))
        over_http, in_process = both.journals()
        assert [e["status"] for e in over_http] == [202, 200, 400, 405, 400, 404]
        assert over_http == in_process
        assert over_http[2]["violations"][0]["path"] == "take"
        await both.http.aclose()

    asyncio.run(scenario())


def test_fault_rules_limits_and_network_faults_meet_in_process_requests_too() -> None:
    async def scenario() -> None:
        sim = _sim("civitai")
        transport = InProcessTransport(sim.router, sim.pipeline, sim.engine.now)

        async def get(path: str) -> httpx.Response:
            request = httpx.Request("GET", CIVITAI + path, headers={"authorization": f"Bearer {KEY}"})
            target = transport.target(request)
            assert target is not None
            return await transport.handle(request, target)

        # A rule names the provider's own path, however the client reached it (here: by its real hostname).
        sim.engine.faults.add([{"match": {"path": f"{WORKFLOWS}*"}, "when": {"times": 1},
                                "do": {"error": "rate_limited", "retry_after": 7}}])
        refused = await get(WORKFLOWS)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
        sim.engine.faults.add([{"match": {"operation": "QueryWorkflows"}, "when": {"times": 1},
                                "do": {"network": "reset"}}])
        with pytest.raises(Dropped):
            await get(WORKFLOWS)
        sim.engine.faults.add([{"match": {"operation": "QueryWorkflows"}, "when": {"times": 1},
                                "do": {"network": "malformed"}}])
        broken = await get(WORKFLOWS)
        with pytest.raises(ValueError):
            broken.json()
        assert int(broken.headers["content-length"]) == len(broken.content)
        assert (await get(WORKFLOWS)).json()["items"] == []
        entries = sim.engine.journal.entries()
        assert [e.status for e in entries] == [429, 200, 200, 200]
        assert entries[1].faults[0]["do"] == {"network": "reset"}  # journaled, although the client lost it

    asyncio.run(scenario())


def test_a_new_transport_is_a_few_lines_the_runware_handler_runs_on_a_frame_with_the_sessions_key() -> None:
    """What a WebSocket adapter does per message: an Exchange with the frame as body and the session's key as
    its credential, the router's endpoint for the operation, and a `deliver` that sends the answer's value."""

    async def scenario() -> None:
        sim = _sim("runware")
        endpoint = sim.router.endpoints["runware"][0]
        assert endpoint.operation == "Tasks"
        sent: list[Any] = []

        async def deliver(answer: Answer) -> None:
            sent.append(answer.value)

        def frame(tasks: list[dict[str, Any]], credential: str | None) -> Exchange:
            return Exchange("WS", "/runware/v1", "/runware/v1", "/runware", "http://127.0.0.1:8000/runware",
                            sim.engine.now(), raw_body=json.dumps(tasks).encode(), transport="ws",
                            credential=credential)

        ping = [{"taskType": "ping", "ping": True}]
        answer = await sim.pipeline.run(frame(ping, KEY), endpoint, deliver, kind="ws")
        assert answer.status == 200 and sent[-1] == {"data": [{"taskType": "ping", "pong": True}]}
        await sim.pipeline.run(frame(ping, None), endpoint, deliver, kind="ws")
        assert sent[-1]["errors"][0]["code"] == "missingApiKey"
        entries = sim.engine.journal.entries(kind="ws")
        assert [(e.owner, e.status, e.operation) for e in entries] == [(KEY, 200, "Tasks"), (None, 401, "Tasks")]

    asyncio.run(scenario())


def test_a_refused_request_is_journaled_with_its_body() -> None:
    async def scenario() -> None:
        sim = _sim("civitai")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=CIVITAI)
        refused = await client.post(WORKFLOWS, json={"steps": [STEP]})  # no key: 401 before the body is used
        assert refused.status_code == 401
        assert sim.engine.journal.entries()[0].request_body == {"steps": [STEP]}
        await client.aclose()

    asyncio.run(scenario())


def test_a_bad_typed_parameter_gets_the_providers_own_refusal() -> None:
    async def scenario() -> None:
        sim = _sim("civitai")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=CIVITAI,
                                   headers={"authorization": f"Bearer {KEY}"})
        for path, name in [(f"{WORKFLOWS}?wait=soon", "wait"), (f"{WORKFLOWS}?whatif=maybe", "whatif"),
                           (f"{WORKFLOWS}?wait=2147483648", "wait")]:
            refused = await client.post(path, json={"steps": [STEP]})
            assert refused.status_code == 400
            assert list(refused.json()["errors"]) == [name]
        await client.aclose()

    asyncio.run(scenario())


# -- the one check of callback hosts -------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:9000/hook", Destination.LOOPBACK),
    ("http://127.1/hook", Destination.LOOPBACK),
    ("http://2130706433/hook", Destination.LOOPBACK),
    ("http://0x7f000001/hook", Destination.LOOPBACK),
    ("http://0177.0.0.1/hook", Destination.LOOPBACK),
    ("http://[::1]:9000/hook", Destination.LOOPBACK),
    ("http://[::ffff:127.0.0.1]/hook", Destination.LOOPBACK),
    ("http://localhost:9000/hook", Destination.LOOPBACK),
    ("http://hooks.localhost/hook", Destination.LOOPBACK),
    ("http://127.evil.com/hook", Destination.NAME),
    ("https://hooks.example.com/hook", Destination.NAME),
    ("https://10.1.2.3/hook", Destination.PRIVATE),
    ("https://172.20.0.1/hook", Destination.PRIVATE),
    ("https://192.168.1.1/hook", Destination.PRIVATE),
    ("https://100.64.0.1/hook", Destination.PRIVATE),
    ("https://[fd00::1]/hook", Destination.PRIVATE),
    ("http://169.254.169.254/latest/meta-data", Destination.LINK_LOCAL),
    ("http://[::ffff:169.254.169.254]/latest", Destination.LINK_LOCAL),
    ("http://2852039166/latest", Destination.LINK_LOCAL),
    ("https://[fe80::1]/hook", Destination.LINK_LOCAL),
    ("https://0.0.0.0/hook", Destination.RESERVED),
    ("https://8.8.8.8/hook", Destination.PUBLIC),
    ("http://metadata.google.internal/", Destination.INTERNAL_NAME),
    ("http://intranet/hook", Destination.INTERNAL_NAME),
    ("https://hooks.example.com/hook", Destination.NAME),
    ("https:///hook", Destination.NONE),
    ("http://[::1/hook", Destination.NONE),
])
def test_callback_hosts_are_classified_from_the_address_however_it_is_written(url: str,
                                                                                expected: Destination) -> None:
    assert destination(url) is expected


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://2852039166/", "http://[::ffff:a9fe:a9fe]/",
                                 "http://10.1.2.3/hook", "http://metadata.google.internal/", "http://intranet/hook"])
@pytest.mark.parametrize(("slug", "path", "body", "where"), [
    ("qingbo", "/v1/tasks", {"model": "gemini-3.1-flash-image-preview", "prompt": "a hook"}, ("callback_url",)),
    ("crun", "/api/v1/client/job/CreateTask", {"model": "google/nano-banana", "input": {"prompt": "a hook"}},
     ("callback_url",)),
    ("runware", "/v1", [{"taskType": "imageInference", "taskUUID": "16830039-18a1-48fc-b10a-3f40efdf519a",
                         "model": "google:4@3", "positivePrompt": "a hook", "width": 1024, "height": 1024,
                         "deliveryMethod": "async"}], (0, "webhookURL")),
])
def test_internal_callback_targets_are_refused_at_submit_by_every_provider(
        slug: str, path: str, body: Any, where: tuple[Any, ...], url: str) -> None:
    """One rule (engine.webhooks.callback_refusal), each provider's own validation shape, nothing created."""
    async def scenario() -> None:
        sim = _sim(slug)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=f"http://sim/{slug}",
                                   headers={"authorization": f"Bearer {KEY}", "x-api-key": KEY})
        sent = copy.deepcopy(body)
        holder = sent[where[0]] if len(where) == 2 else sent
        holder[where[-1]] = url
        answer = await client.post(path, json=sent)
        assert answer.status_code in (400, 422), answer.text
        assert "internal address" in answer.text
        assert len(sim.engine.tasks) == 0
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(("url", "status"), [
    ("http://127.0.0.1:9/hook", 202),
    ("http://2130706433:9/hook", 202),
    ("http://127.evil.com/hook", 400),  # a name that merely starts with 127. is not loopback
    ("http://10.0.0.1/hook", 400),
])
def test_civitai_accepts_plain_http_callbacks_to_loopback_only(url: str, status: int) -> None:
    async def scenario() -> None:
        sim = _sim("civitai")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url=CIVITAI,
                                   headers={"authorization": f"Bearer {KEY}"})
        body = {"steps": [STEP], "callbacks": [{"url": url, "type": ["workflow:*"]}]}
        answer = await client.post(WORKFLOWS, json=body)
        assert answer.status_code == status
        if status == 400:
            assert list(answer.json()["errors"]) == ["callbacks[0].url"]
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["http://127.evil.com/hook", "https://hooks.example.com/hook"])
def test_callbacks_to_public_names_are_taken_but_refused_at_delivery_and_journaled(url: str) -> None:
    async def scenario() -> None:
        sim = _sim("qingbo")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="https://qingbo.dev",
                                   headers={"authorization": f"Bearer {KEY}"})
        body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a hook", "callback_url": url}
        assert (await client.post("/v1/tasks", json=body)).status_code == 200
        await sim.engine.advance(600)
        attempts = sim.engine.journal.entries(kind="webhook")
        assert attempts and all(entry.detail["outcome"] == "refused" for entry in attempts)
        await client.aclose()

    asyncio.run(scenario())

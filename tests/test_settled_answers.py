"""A finished task's answer is rendered once per state and kept (simulator.pipeline.settled): what a client sees
is still exactly a fresh rendering, links signed at each read included, and the self-check still catches a
broken one, read after read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from simulator.clock import VirtualClock
from simulator.pipeline import Answer
from simulator.pipeline.answer import encode_json
from simulator.providers.civitai import render
from simulator.providers.civitai.provider import CivitaiProvider
from simulator.sim import Simulator

BASE = "http://127.0.0.1/civitai"
WORKFLOWS = "/v2/consumer/workflows"
AUTH = {"authorization": "Bearer sk-settled"}
BODY = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2",
                                                  "prompt": "a ripe banana on a desk", "numImages": 2}}]}
Scenario = Callable[[Simulator, httpx.AsyncClient], Awaitable[None]]


def _run(scenario: Scenario, self_check: str = "strict") -> None:
    async def main() -> None:
        sim = Simulator(clock=VirtualClock(start=1_800_000_000), providers=["civitai", "qingbo"],
                        self_check=self_check)
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
            await scenario(sim, client)

    asyncio.run(main())


async def _finished(sim: Simulator, client: httpx.AsyncClient) -> str:
    accepted = await client.post(WORKFLOWS, json=BODY)
    assert accepted.status_code in (200, 202), accepted.text
    await sim.engine.advance(600)
    return str(accepted.json()["id"])


def _fresh(sim: Simulator, workflow_id: str) -> bytes:
    """The workflow rendered afresh, as it was rendered before anything was kept."""
    provider = sim.provider("civitai")
    task = sim.engine.tasks.get(workflow_id)
    assert isinstance(provider, CivitaiProvider) and task is not None
    view = render.View(sim.engine, BASE, float(provider.options["url_ttl_seconds"]))
    return encode_json(render.render_workflow(view, task))


def _images(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [image for step in body["steps"] for image in step["output"]["images"]]


def test_each_read_signs_its_links_from_its_own_moment_and_is_otherwise_the_same() -> None:
    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        workflow_id = await _finished(sim, client)
        first = await client.get(f"{WORKFLOWS}/{workflow_id}")
        assert first.content == _fresh(sim, workflow_id)
        await sim.engine.advance(90)  # the links' expiry moves with the clock; nothing else does
        second = await client.get(f"{WORKFLOWS}/{workflow_id}")
        assert second.content == _fresh(sim, workflow_id)
        assert second.content != first.content
        ttl = float(sim.provider("civitai").options["url_ttl_seconds"])
        expected = render.timestamp(sim.engine.now() + ttl)
        images = _images(second.json())
        assert len(images) == 2 and len({image["url"] for image in images}) == 2
        assert all(image["urlExpiresAt"] == image["previewUrlExpiresAt"] == expected for image in images)
        assert all(image["url"] == image["previewUrl"] for image in images)
        redirect = int(sim.provider("civitai").options["blob_redirect_status"])
        for image in images:  # each link signed afresh: the blob store takes it, and redirects to the bytes
            fetched = await client.get(image["url"].removeprefix(BASE))
            assert fetched.status_code == redirect, fetched.text
        # The first read's links expire on their own schedule, as before.
        await sim.engine.advance(ttl)
        expired = await client.get(_images(first.json())[0]["url"].removeprefix(BASE))
        assert expired.status_code == 403
        assert not [entry for entry in sim.engine.journal.entries() if entry.self_check]

    _run(scenario)


def test_a_change_of_state_or_of_options_is_read_at_once() -> None:
    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        workflow_id = await _finished(sim, client)
        url = f"{WORKFLOWS}/{workflow_id}"
        assert (await client.get(url)).json()["tags"] == []
        assert (await client.post(f"{url}/tags", json="ripe")).status_code == 204
        assert (await client.get(url)).json()["tags"] == ["ripe"]
        updated = await client.put(url, json={"metadata": {"batch": "7"}, "tags": ["ripe", "yellow"]})
        assert updated.status_code == 204, updated.text
        body = (await client.get(url)).json()
        assert body["metadata"] == {"batch": "7"} and body["tags"] == ["ripe", "yellow"]
        assert (await client.delete(f"{url}/tags/ripe")).status_code == 204
        assert (await client.get(url)).json()["tags"] == ["yellow"]
        sim.provider("civitai").options.set("url_ttl_seconds", 60)
        image = _images((await client.get(url)).json())[0]
        assert image["urlExpiresAt"] == render.timestamp(sim.engine.now() + 60)
        assert (await client.get(url)).content == _fresh(sim, workflow_id)
        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).status_code == 404

    _run(scenario)


def test_a_reset_never_serves_what_was_kept_for_another_task_of_the_same_id() -> None:
    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        workflow_id = await _finished(sim, client)
        before = await client.get(f"{WORKFLOWS}/{workflow_id}")
        sim.reset()  # same seed: the next workflow gets the same ID
        changed = {"steps": [{**BODY["steps"][0], "input": {**BODY["steps"][0]["input"], "numImages": 1}}]}
        accepted = await client.post(WORKFLOWS, json=changed)
        assert accepted.json()["id"] == workflow_id
        await sim.engine.advance(600)
        after = await client.get(f"{WORKFLOWS}/{workflow_id}")
        assert len(_images(before.json())) == 2 and len(_images(after.json())) == 1
        assert after.content == _fresh(sim, workflow_id)

    _run(scenario)


@pytest.mark.parametrize("mode", ["record", "strict"])
def test_a_broken_kept_answer_is_caught_on_every_read(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = render.render_workflow

    def broken(view: render.View, task: Any) -> dict[str, Any]:
        return {**real(view, task), "status": "sort of done"}

    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        workflow_id = await _finished(sim, client)
        monkeypatch.setattr("simulator.providers.civitai.provider.render_workflow", broken)
        for _ in range(3):
            answer = await client.get(f"{WORKFLOWS}/{workflow_id}")
            assert answer.status_code == (500 if mode == "strict" else 200)
        reads = sim.engine.journal.entries(operation="GetWorkflow")
        assert len(reads) == 3 and all(entry.self_check for entry in reads)
        # Mended (a new state renders afresh): checked once more, and found good.
        monkeypatch.setattr("simulator.providers.civitai.provider.render_workflow", real)
        assert (await client.post(f"{WORKFLOWS}/{workflow_id}/tags", json="mended")).status_code == 204
        assert (await client.get(f"{WORKFLOWS}/{workflow_id}")).status_code == 200
        assert not sim.engine.journal.entries(operation="GetWorkflow")[-1].self_check

    _run(scenario, mode)


def test_a_kept_answer_is_checked_once_not_on_every_read(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    from simulator import self_check

    real = self_check._answer_findings

    def counting(provider: Any, operation: str, answer: Answer) -> list[dict[str, Any]]:
        checked.append(operation)
        return real(provider, operation, answer)

    monkeypatch.setattr(self_check, "_answer_findings", counting)

    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        workflow_id = await _finished(sim, client)
        checked.clear()
        for _ in range(5):
            assert (await client.get(f"{WORKFLOWS}/{workflow_id}")).status_code == 200
            await sim.engine.advance(1)
        assert checked == ["GetWorkflow"]
        qingbo = await client.post("http://127.0.0.1/qingbo/v1/tasks",
                                   json={"model": "gemini-3.1-flash-image-preview", "prompt": "a banana"})
        await sim.engine.advance(600)
        checked.clear()
        for _ in range(3):
            read = await client.get(f"http://127.0.0.1/qingbo/v1/tasks/{qingbo.json()['task_id']}")
            assert read.json()["status"] == "completed"
        assert checked == ["GetTask"]

    _run(scenario)


# -- Runware: a getResponse poll of a finished job is an answer kept like the others ---------------------------

RUNWARE = "http://127.0.0.1/runware/v1"


def _runware_job(task_uuid: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"taskType": "imageInference", "taskUUID": task_uuid, "model": "google:4@3", "positivePrompt": "a banana",
             "width": 1024, "height": 1024, "deliveryMethod": "async", "numberResults": 2, **extra}]


def _fresh_poll(sim: Simulator, task_uuid: str) -> bytes:
    """The getResponse answer rendered afresh, as it was before anything was kept."""
    from simulator.providers.runware.jobs import job_of
    from simulator.providers.runware.provider import ANY_OWNER, RunwareProvider

    provider = sim.provider("runware")
    found = sim.engine.tasks.by_key("runware", ANY_OWNER, task_uuid)
    assert isinstance(provider, RunwareProvider) and found is not None
    job = job_of(found)
    assert job is not None
    return provider._respond(*provider.renderer.state(job, sim.engine.now(), polled=True)).body


def test_a_runware_poll_of_a_finished_job_is_rendered_once_per_state_and_reads_as_a_fresh_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.providers.runware.render import Renderer

    rendered: list[str] = []
    real = Renderer.state

    def counting(self: Renderer, job: Any, now: float, *, polled: bool) -> Any:
        rendered.append(job.task_uuid)
        return real(self, job, now, polled=polled)

    monkeypatch.setattr(Renderer, "state", counting)

    async def scenario(sim: Simulator, client: httpx.AsyncClient) -> None:
        kept, inline = "6a1c2f5e-0000-4000-8000-000000000001", "6a1c2f5e-0000-4000-8000-000000000002"
        for task_uuid, extra in ((kept, {}), (inline, {"outputType": "base64Data"})):
            accepted = await client.post(RUNWARE, json=_runware_job(task_uuid, **extra))
            assert accepted.status_code == 200, accepted.text
        poll = [{"taskType": "getResponse", "taskUUID": kept}]
        # While a generation runs, each read is rendered as it stands.
        running = await client.post(RUNWARE, json=poll)
        assert running.json()["data"][0]["status"] == "processing", running.text
        await sim.engine.advance(600)
        rendered.clear()
        reads = []
        for _ in range(4):
            reads.append(await client.post(RUNWARE, json=poll))
            await sim.engine.advance(30)
        assert rendered == [kept]  # once, then kept
        assert all(read.content == reads[0].content == _fresh_poll(sim, kept) for read in reads)
        assert [item["status"] for item in reads[0].json()["data"]] == ["success", "success"]
        # Anything else in the request (a second task, inline images) is answered afresh, as before.
        rendered.clear()
        both = await client.post(RUNWARE, json=[*poll, {"taskType": "ping"}])
        assert both.json()["data"][-1] == {"taskType": "ping", "pong": True} and rendered == [kept]
        inline_reads = [await client.post(RUNWARE, json=[{"taskType": "getResponse", "taskUUID": inline}])
                        for _ in range(2)]
        assert rendered == [kept, inline, inline]
        assert all(read.content == _fresh_poll(sim, inline) for read in inline_reads)
        assert "imageBase64Data" in inline_reads[0].json()["data"][0]
        assert not [entry for entry in sim.engine.journal.entries() if entry.self_check]

    async def main() -> None:
        sim = Simulator(clock=VirtualClock(start=1_800_000_000), providers=["runware"], self_check="strict")
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, headers=AUTH) as client:
            await scenario(sim, client)

    asyncio.run(main())

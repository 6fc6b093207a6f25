"""Runware's WebSocket API (`/runware/v1`, `ws-api.runware.ai`): sessions, frames, refusals and socket faults.

Each test drives a real socket against a LiveServer on a manual virtual clock with the `websockets` client, and
checks what a client sees (frames, close codes) and what the journal kept.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import server_fixture
from support_runware import task
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from simulator.control_client import ControlClient
from simulator.live import LiveServer

KEY = "rw-ws-unit"
AUTH = [{"taskType": "authentication", "apiKey": KEY}]
PING = [{"taskType": "ping", "ping": True}]

server = server_fixture("runware", "civitai")


def ws_url(server: LiveServer, path: str = "/runware/v1") -> str:
    return server.url.replace("http://", "ws://") + path


async def exchange(socket: ClientConnection, frame: Any) -> dict[str, Any]:
    await socket.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(socket.recv(), 10))


async def received(socket: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), 10))


async def closed(socket: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(socket.recv(), 10)
    return socket.close_code, socket.close_reason


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_authentication_opens_a_session_and_ping_gets_pong(server: LiveServer, control: ControlClient) -> None:
    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            reply = await exchange(socket, AUTH)
            [item] = reply["data"]
            assert item["taskType"] == "authentication" and len(item["connectionSessionUUID"]) == 36
            assert await exchange(socket, PING) == {"data": [{"taskType": "ping", "pong": True}]}
        async with connect(ws_url(server)) as other:
            again = (await exchange(other, AUTH))["data"][0]["connectionSessionUUID"]
            assert again != item["connectionSessionUUID"]  # one session per connection

    run(scenario)
    entries = control.journal(provider="runware")
    assert [(e["kind"], e["method"], e["status"]) for e in entries[:2]] == [("ws", "WS", 200), ("ws", "WS", 200)]
    assert entries[0]["owner"] == KEY and entries[1]["owner"] == KEY  # the session's key, not the frame's


def test_sync_results_arrive_one_frame_per_image_as_each_is_ready(server: LiveServer, control: ControlClient) -> None:
    control.set_autojump(True)
    job = task(numberResults=2, includeCost=True, outputType=["URL", "base64Data"])

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            first = await exchange(socket, [job])
            second = await received(socket)
            items = [first["data"][0], second["data"][0]]
            assert {item["taskUUID"] for item in items} == {job["taskUUID"]}
            assert len({item["imageUUID"] for item in items}) == 2
            assert all(item["cost"] == 0.06895 and item["imageBase64Data"] and item["imageURL"] for item in items)
            assert all("status" not in item for item in items)

    run(scenario)
    entries = control.journal(provider="runware")
    assert [e["method"] for e in entries] == ["WS", "WS", "PUSH", "PUSH"]
    assert entries[1]["response_body"] == {"data": []} and "no frame of its own" in entries[1]["note"]
    assert all(e["self_check"] == [] for e in entries)


def test_async_ack_then_get_response_on_either_transport(server: LiveServer, control: ControlClient) -> None:
    job = task(deliveryMethod="async")
    rest_job = task(deliveryMethod="async")
    rest = httpx.Client(base_url=server.url + "/runware", headers={"Authorization": f"Bearer {KEY}"})
    assert rest.post("/v1", json=[rest_job]).status_code == 200

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            ack = await exchange(socket, [job])
            assert ack == {"data": [{"taskType": "imageInference", "taskUUID": job["taskUUID"]}]}
            control.advance(100)  # both finish (under the 120 s idle close)
            polled = await exchange(socket, [{"taskType": "getResponse", "taskUUID": rest_job["taskUUID"]}])
            assert polled["data"][0]["status"] == "success" and polled["data"][0]["imageURL"]

    run(scenario)
    over_rest = rest.post("/v1", json=[{"taskType": "getResponse", "taskUUID": job["taskUUID"]}]).json()
    assert over_rest["data"][0]["status"] == "success"


@pytest.mark.parametrize(("frame", "detail"), [
    (b"\x00\x01binary", "binary frame"),
    ("not json", "Expecting value"),
    ('{"taskType": "ping"}', "Got a JSON object"),
    ("[]", "empty array"),
    ("[" + "1," * 600 + "1]", "limit is 1024 bytes"),
])
def test_a_malformed_frame_gets_an_error_item_and_the_socket_stays(
    server: LiveServer, control: ControlClient, frame: str | bytes, detail: str
) -> None:
    control.set_options("runware", ws_max_frame_bytes=1024)

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            [error] = (await exchange(socket, frame))["errors"]
            assert error["code"] == "invalidRequestBody" and detail in error["message"]
            assert await exchange(socket, PING) == {"data": [{"taskType": "ping", "pong": True}]}

    run(scenario)
    refused = control.journal(provider="runware")[1]
    assert refused["status"] == 400 and refused["self_check"] == []


@pytest.mark.parametrize(("first", "code"), [
    ([{"taskType": "authentication", "apiKey": "not-a-key"}], "invalidApiKey"),
    (PING, "missingApiKey"),  # the first message must be the authentication task
])
def test_a_refused_key_gets_the_auth_error_then_a_close(
    server: LiveServer, control: ControlClient, first: list[dict[str, Any]], code: str
) -> None:
    control.set_tokens("runware", [KEY])

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            [error] = (await exchange(socket, first))["errors"]
            assert (error["code"], error["taskType"], error["parameter"]) == (code, "authentication", "apiKey")
            assert await closed(socket) == (1008, "authentication failed")

    run(scenario)


def test_a_refusal_is_worded_for_the_socket_where_rest_names_a_header(
    server: LiveServer, control: ControlClient
) -> None:
    """A socket has no Authorization header, no request body and no Retry-After: its missing-key, unreadable-frame
    and rate-limit messages say what a socket client can do (provider.json `errorsByTransport`)."""
    control.set_options("runware", ws_auth_failure_close_code=0)
    rest = httpx.Client(base_url=server.url + "/runware", timeout=10)
    bearer = {"Authorization": f"Bearer {KEY}"}
    over_rest = [rest.post("/v1", json=[task()]), rest.post("/v1", content=b"not json", headers=bearer)]
    control.add_faults({"match": {"provider": "runware", "body": {"0.taskType": "imageInference"}},
                        "do": {"error": "rate_limited", "retry_after": 2}, "when": {"times": 2}})
    over_rest.append(rest.post("/v1", json=[task(deliveryMethod="async")], headers=bearer))
    assert [r.status_code for r in over_rest] == [401, 400, 429]
    missing, unreadable, limited = (r.json()["errors"][0]["message"] for r in over_rest)
    assert "'Authorization: Bearer <API_KEY>'" in missing and unreadable.startswith("The request body must be")
    assert "Retry after the indicated delay" in limited

    async def scenario() -> list[str]:
        async with connect(ws_url(server)) as socket:
            frames = [await exchange(socket, PING), await exchange(socket, "not json")]
            await exchange(socket, AUTH)
            frames.append(await exchange(socket, [task(deliveryMethod="async")]))
            return [frame["errors"][0]["message"] for frame in frames]

    missing, unreadable, limited = asyncio.run(scenario())
    assert "first message on the socket must be the authentication task" in missing and "Bearer" not in missing
    assert unreadable.startswith("Every message must be a non-empty JSON array") and "body" not in unreadable
    assert "indicated delay" not in limited and "try again later" in limited


def test_an_idle_socket_is_closed_on_the_clock(server: LiveServer, control: ControlClient) -> None:
    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            control.advance(119)
            assert (await exchange(socket, PING))["data"][0]["pong"] is True  # a message restarts the count
            control.advance(119)
            assert (await exchange(socket, PING))["data"][0]["pong"] is True
            control.advance(121)
            assert await closed(socket) == (1000, "idle timeout")

    run(scenario)


def test_a_resumed_session_gets_the_results_produced_while_away(server: LiveServer, control: ControlClient) -> None:
    job = task(numberResults=2)

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            session = (await exchange(socket, AUTH))["data"][0]["connectionSessionUUID"]
            await socket.send(json.dumps([job]))
            await asyncio.sleep(0.2)  # the task frame is taken before the client leaves
        control.advance(120)  # both images are ready while nobody listens
        async with connect(ws_url(server)) as stranger:  # another key cannot take the session over
            other = {"taskType": "authentication", "apiKey": "someone-else", "connectionSessionUUID": session}
            assert (await exchange(stranger, [other]))["data"][0]["connectionSessionUUID"] != session
        async with connect(ws_url(server)) as socket:
            resumed = await exchange(socket, [{**AUTH[0], "connectionSessionUUID": session}])
            assert resumed["data"][0]["connectionSessionUUID"] == session
            results = [(await received(socket))["data"][0], (await received(socket))["data"][0]]
            assert {r["taskUUID"] for r in results} == {job["taskUUID"]} and len({r["imageUUID"] for r in results}) == 2

    run(scenario)


def test_results_held_longer_than_the_window_are_gone(server: LiveServer, control: ControlClient) -> None:
    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            session = (await exchange(socket, AUTH))["data"][0]["connectionSessionUUID"]
            await socket.send(json.dumps([task()]))
            await asyncio.sleep(0.2)
        control.advance(60)
        control.advance(200)
        async with connect(ws_url(server)) as socket:
            await exchange(socket, [{**AUTH[0], "connectionSessionUUID": session}])
            assert await exchange(socket, PING) == {"data": [{"taskType": "ping", "pong": True}]}

    run(scenario)


def test_fault_rules_and_limits_answer_error_items_scoped_to_the_task(
    server: LiveServer, control: ControlClient
) -> None:
    control.add_faults({"match": {"provider": "runware", "body": {"0.taskType": "imageInference"}},
                        "do": {"error": "rate_limited", "retry_after": 2}, "when": {"times": 1}})
    job = task(deliveryMethod="async")

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            [error] = (await exchange(socket, [job]))["errors"]
            assert (error["code"], error["taskType"], error["taskUUID"]) == \
                ("rateLimitExceeded", "imageInference", job["taskUUID"])
            assert (await exchange(socket, [job]))["data"][0]["taskUUID"] == job["taskUUID"]

    run(scenario)


@pytest.mark.parametrize(("do", "expected"), [
    ({"network": "close", "close_code": 4000, "reason": "rehearsal"}, (4000, "rehearsal")),
    ({"network": "reset"}, (1006, "")),
])
def test_a_network_fault_closes_or_drops_the_socket(
    server: LiveServer, control: ControlClient, do: dict[str, Any], expected: tuple[int, str]
) -> None:
    control.add_faults({"match": {"provider": "runware", "body": {"0.taskType": "ping"}}, "do": do})

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            await socket.send(json.dumps(PING))
            code, reason = await closed(socket)
            assert (code, reason or "") == expected

    run(scenario)


def test_a_malformed_network_fault_sends_a_frame_that_is_not_json(server: LiveServer, control: ControlClient) -> None:
    control.add_faults({"match": {"provider": "runware", "body": {"0.taskType": "ping"}},
                        "do": {"network": "malformed"}})

    async def scenario() -> None:
        async with connect(ws_url(server)) as socket:
            await exchange(socket, AUTH)
            await socket.send(json.dumps(PING))
            with pytest.raises(json.JSONDecodeError):
                json.loads(await asyncio.wait_for(socket.recv(), 10))

    run(scenario)


def test_runware_hostnames_reach_it_at_the_root_and_other_providers_refuse_the_handshake(
    server: LiveServer, control: ControlClient
) -> None:
    async def scenario() -> None:
        async with connect("ws://ws-api.runware.ai/v1", host="127.0.0.1", port=server.port) as socket:
            assert (await exchange(socket, AUTH))["data"][0]["taskType"] == "authentication"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "/civitai/v2/consumer/workflows")):
                pass
        assert refused.value.response.status_code == 403

    run(scenario)

"""The mechanisms under the hostile table, in-process: the body reader's limit, the JSON text checks, the
connection guard's cap, and the same 413 on every transport."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from simulator.connections import REFUSED, Limits, guarded
from simulator.json_text import deeper_than
from simulator.pipeline.body import DISCARD_LIMIT, BodyReader
from simulator.sim import Simulator
from simulator.transports.inprocess import InProcessTransport


def test_a_body_within_the_limit_is_kept_whole() -> None:
    reader = BodyReader(10, declared=6)
    reader.add(b"abc", True)
    reader.add(b"def", False)
    assert reader.body() == b"abcdef" and reader.oversized == 0 and reader.complete and not reader.reading


def test_a_body_past_the_limit_is_counted_and_dropped_not_kept() -> None:
    reader = BodyReader(10)
    reader.add(b"x" * 8, True)
    reader.add(b"x" * 8, True)
    assert reader.reading and reader.body() == b"" and reader.oversized == 16
    assert not reader._chunks  # nothing held past the limit
    reader.add(b"", False)
    assert reader.complete and reader.oversized == 16


def test_a_declared_length_over_the_limit_is_not_even_asked_for_when_the_client_waits_for_100_continue() -> None:
    assert not BodyReader(10, declared=11, expects_continue=True).reading
    assert BodyReader(10, declared=11).reading  # read and dropped, so a client writing it all sees the answer
    assert not BodyReader(10, declared=DISCARD_LIMIT + 1).reading  # too much even to drop: the connection closes
    assert BodyReader(10, declared=11, expects_continue=True).oversized == 11


@pytest.mark.parametrize(("text", "depth", "deeper"), [
    (b'{"a": [1, {"b": 2}]}', 3, False),
    (b'{"a": [1, {"b": 2}]}', 2, True),
    (b'{"a": "[[[[[[[[[["}', 1, False),  # brackets inside strings do not nest
    (b'{"a": "\\"[[[["}', 1, False),  # nor after an escaped quote
    (b"[" * 65 + b"]" * 65, 64, True),
    (b"[" + b"[]," * 1000 + b"[]]", 2, False),  # wide, not deep
])
def test_nesting_is_measured_on_the_text(text: bytes, depth: int, deeper: bool) -> None:
    json.loads(text)  # the function is for text that has parsed
    assert deeper_than(text, depth) is deeper


@pytest.mark.parametrize(("slug", "path", "headers"), [
    ("crun", "/api/v1/client/job/CreateTask", {"x-api-key": "k"}),
    ("foxapi", "/v1/images/generations", {"authorization": "Bearer k"}),
])
def test_an_oversized_body_in_process_meets_the_same_413_as_over_http(slug: str, path: str,
                                                                      headers: dict[str, str]) -> None:
    async def scenario() -> None:
        body = b"{" + b" " * Simulator(seed=1, providers=[slug]).providers[slug].body_limit + b"}"
        request = httpx.Request("POST", f"http://sim/{slug}{path}", content=body,
                                headers={**headers, "content-type": "application/json"})
        over_http_sim, in_process_sim = Simulator(seed=1, providers=[slug]), Simulator(seed=1, providers=[slug])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=over_http_sim.app)) as client:
            over_http = await client.send(request)
        transport = InProcessTransport(in_process_sim.router, in_process_sim.pipeline, in_process_sim.engine.now)
        target = transport.target(request)
        assert target is not None
        in_process = await transport.handle(request, target)
        assert over_http.status_code == in_process.status_code == 413
        assert over_http.json() == in_process.json()
        for sim in (over_http_sim, in_process_sim):
            [entry] = sim.engine.journal.entries()
            assert entry.status == 413 and entry.request_body is None and "over" in (entry.note or "")
            assert len(sim.engine.tasks) == 0

    asyncio.run(scenario())


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def test_a_connection_over_the_cap_is_answered_503_and_closed_at_once() -> None:
    class Base:
        connections: set[object] = set()

        def connection_made(self, transport: object) -> None:
            self.connections.add(self)

    protocol_class = guarded(Base, Limits(max_connections=2))  # type: ignore[arg-type]
    opened = []
    for _ in range(3):
        transport = _Transport()
        protocol = protocol_class()
        protocol._arm = lambda seconds, reset: None  # type: ignore[attr-defined]
        protocol.connection_made(transport)
        opened.append(transport)
    assert [t.closed for t in opened] == [False, False, True]
    assert opened[2].written == REFUSED and REFUSED.startswith(b"HTTP/1.1 503 ")

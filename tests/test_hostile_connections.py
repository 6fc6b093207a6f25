"""Slow and surplus clients against `nanobanana-sim serve`: read deadlines and the connection cap (README Security).

The server runs with a 1-second header and body deadline and a cap of 20 connections, so each test is over in
seconds; the bounds below are generous limits on a hang, not speed assertions.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
from support_cli import Served, served

DEADLINE = 1.0
CAP = 20
HANG = 15.0  # far past the deadline: a server that never drops the client fails here


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served("--port", "0", "--log-level", "warning", "--header-timeout", str(DEADLINE), "--body-timeout",
                str(DEADLINE), "--max-connections", str(CAP)) as running:
        yield running


def _connect(server: Served) -> socket.socket:
    parts = urlsplit(server.base)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=HANG)
    return sock


def _closed_after(sock: socket.socket, dribble: bytes) -> float:
    """Send `dribble` a byte every 0.1 s until the server closes the connection; how long that took."""
    started = time.monotonic()
    sock.settimeout(0.1)
    for byte in dribble * 1000:
        assert time.monotonic() - started < HANG, "the server held a dribbling client past any deadline"
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(4096) == b"":
                break
        except TimeoutError:
            continue
        except OSError:
            break
    return time.monotonic() - started


def _request(server: Served, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.base + path, timeout=HANG) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_client_dribbling_its_headers_is_dropped_after_the_header_deadline(server: Served) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /qingbo/v1/tasks/x HTTP/1.1\r\n")
        took = _closed_after(sock, b"X-Slow: a\r\n")
    assert took >= DEADLINE * 0.9
    assert _request(server, "/_sim/")[0] == 200


def test_a_client_stalling_its_body_is_dropped_and_its_exchange_journaled(server: Served) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /qingbo/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-body\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        sock.settimeout(HANG)
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, no answer to a body that never came
        assert time.monotonic() - started >= DEADLINE * 0.9
    deadline = time.monotonic() + HANG
    while True:
        status, body = _request(server, "/_sim/journal?owner=slow-body")
        if status == 200 and json.loads(body)["entries"]:
            break
        assert time.monotonic() < deadline, "the abandoned exchange never reached the journal"
        time.sleep(0.1)


def test_past_the_cap_a_client_gets_503_and_the_server_goes_on_serving(server: Served) -> None:
    with ExitStack() as idle:
        for _ in range(CAP):
            idle.enter_context(_connect(server))
        time.sleep(0.2)  # let the server accept them all
        status, body = _request(server, "/qingbo/v1/tasks/x")
        assert status == 503 and b"too many open connections" in body
    # The idle ones are gone (closed here, or dropped at the header deadline): the server serves again.
    deadline = time.monotonic() + HANG
    while (answer := _request(server, "/qingbo/v1/tasks/x"))[0] == 503:
        assert time.monotonic() < deadline, "the server kept refusing after the idle connections left"
        time.sleep(0.1)
    assert answer[0] == 401  # qingbo's own answer to a request without a key


def test_idle_connections_that_never_speak_are_dropped_and_free_their_places(server: Served) -> None:
    socks = [_connect(server) for _ in range(CAP)]
    try:
        time.sleep(DEADLINE + 0.5)
        assert _request(server, "/qingbo/v1/tasks/x")[0] == 401
        for sock in socks:
            sock.settimeout(HANG)
            assert sock.recv(4096) == b""
    finally:
        for sock in socks:
            sock.close()

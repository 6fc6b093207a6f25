"""Accepting connections (simulator.listener): every connection waiting is taken on one readiness of the
listening socket, on asyncio's loop and on uvloop's (whose own server takes one per turn of the loop)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from simulator.listener import Listener

CLIENTS = 30


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return loops
    return [*loops, pytest.param(uvloop.new_event_loop, id="uvloop")]


class Counting(Listener):
    readiness = 0

    def _accept(self) -> None:
        self.readiness += 1
        super()._accept()


class Recorder(asyncio.Protocol):
    def __init__(self, made: list[Any]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _run(new_loop: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, None]) -> None:
    loop = new_loop()
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


async def _turns_until(condition: Callable[[], bool], limit: int = 200) -> None:
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached within the loop's turns")


@pytest.mark.parametrize("new_loop", _loops())
def test_connections_waiting_together_are_all_taken_on_one_readiness(new_loop: Any) -> None:
    async def main() -> None:
        sock = _listening()
        clients = [socket.create_connection(sock.getsockname()) for _ in range(CLIENTS)]  # queued by the kernel
        made: list[Any] = []
        listener = Counting(asyncio.get_running_loop(), sock, lambda: Recorder(made), backlog=128)
        try:
            await _turns_until(lambda: len(made) == CLIENTS)
            assert listener.readiness == 1
            for transport in made:
                nodelay = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert nodelay, "answers would wait for the client's delayed ACK"
        finally:
            listener.close()
            await listener.wait_closed()
            for transport in made:
                transport.close()
            for client in clients:
                client.close()

    _run(new_loop, main())


@pytest.mark.parametrize("new_loop", _loops())
def test_a_closed_listener_accepts_nothing_more(new_loop: Any) -> None:
    async def main() -> None:
        sock = _listening()
        address = sock.getsockname()
        made: list[Any] = []
        listener = Listener(asyncio.get_running_loop(), sock, lambda: Recorder(made), backlog=128)
        assert listener.sockets == (sock,)
        listener.close()
        listener.close()  # twice, as uvicorn's shutdown and the socket's owner may both do
        await listener.wait_closed()
        assert listener.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)
        assert made == []

    _run(new_loop, main())


class OutOfDescriptors(socket.socket):
    """A listening socket whose first accept finds the process out of file descriptors."""

    failures = 1
    accepts = 0

    def accept(self) -> tuple[socket.socket, Any]:
        self.accepts += 1
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


@pytest.mark.parametrize("new_loop", _loops())
def test_out_of_descriptors_it_waits_instead_of_spinning_and_then_accepts(new_loop: Any) -> None:
    async def main() -> None:
        sock = OutOfDescriptors(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        client = socket.create_connection(sock.getsockname())
        made: list[Any] = []
        listener = Listener(asyncio.get_running_loop(), sock, lambda: Recorder(made), backlog=16)
        listener.retry_delay = 0.05
        try:
            for _ in range(50):  # the connection stays readable all along: a listener that spins accepts on
                await asyncio.sleep(0)
            assert sock.accepts == 1 and made == []
            for _ in range(5000):  # accepted once the retry delay has passed
                if made:
                    break
                await asyncio.sleep(0.001)
            assert len(made) == 1
        finally:
            listener.close()
            await listener.wait_closed()
            for transport in made:
                transport.close()
            client.close()

    _run(new_loop, main())

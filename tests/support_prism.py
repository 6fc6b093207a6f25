"""Prism 5 (Stoplight's OpenAPI mock server) on one of our exports, for the tests and the benchmark.

Prism comes from the npm registry into a cached folder (support_envs.node_env); `prism_executable()`
raises EnvironmentUnavailable, with the reason, where Node.js or the registry is missing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support_envs import EnvironmentUnavailable, node_env

PRISM = "@stoplight/prism-cli@5"
READY = "Prism is listening"
# Prism parses and dereferences the whole document before it listens: tens of seconds on a busy machine.
START_TIMEOUT = 180.0


def prism_executable() -> Path:
    return node_env([PRISM], name="prism") / "node_modules" / ".bin" / "prism"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrismServer:
    """One Prism process mocking a document; several can start side by side and be awaited together."""

    def __init__(self, document: dict[str, Any], folder: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = folder / f"openapi-{self.port}.json"
        self.path.write_text(json.dumps(document))
        self.output: list[str] = []
        self._ready = threading.Event()
        self._process = subprocess.Popen(
            [str(prism_executable()), "mock", "--host", "127.0.0.1", "--port", str(self.port), str(self.path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if len(self.output) < 2000:  # Prism logs every request; keep what start-up said
                self.output.append(line)
            if READY in line:
                self._ready.set()

    def wait(self, timeout: float = START_TIMEOUT) -> str:
        """The base URL once Prism listens; RuntimeError with its output if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = "".join(self.output[-40:])
                raise RuntimeError(f"Prism did not start on {self.path.name} (exit {self._process.poll()}):\n{tail}")
        return self.url

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@contextmanager
def prism_mock(document: dict[str, Any], folder: Path, *, port: int | None = None) -> Iterator[str]:
    """Prism mocking `document` on 127.0.0.1; yields its base URL once it listens, stops it on exit."""
    server = PrismServer(document, folder, port=port)
    try:
        yield server.wait()
    finally:
        server.stop()


__all__ = ["PRISM", "EnvironmentUnavailable", "PrismServer", "free_port", "prism_executable", "prism_mock"]

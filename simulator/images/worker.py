"""Render worker processes: large placeholders are rendered in a child process at low priority.

The encoders are mostly Python and hold the interpreter lock while they run; in a child they share neither
the lock nor, on a busy machine, the event loop's share of the CPU (the child is `nice`d). A child is started
with `python -c` calling `main` below, not through multiprocessing, so it never imports the program that
embeds the simulator (spawn re-runs an unguarded `__main__`; fork copies the locks other threads hold).

The protocol, on the child's stdin and stdout: a request is a length (4 bytes, big-endian) and the spec's
fields as a JSON array; the answer is a status byte (0: the picture follows, 1: an error message follows), a
length and the payload. The child renders one request at a time and exits when its stdin closes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import astuple
from pathlib import Path
from typing import IO

from simulator.images.render import PlaceholderSpec, render_placeholder

NICENESS = 5
# Not `-m simulator.images.worker`: the package imports this module first, and runpy would warn of it.
CHILD = "from simulator.images.worker import main; main()"
_LENGTH = struct.Struct(">I")
_OK, _FAILED = 0, 1


class WorkerGone(RuntimeError):
    """The child exited or could not be started; the caller renders the picture itself."""


class Worker:
    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise WorkerGone(f"cannot start a render worker: {exc}") from exc

    def render(self, spec: PlaceholderSpec) -> bytes:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        request = json.dumps(astuple(spec)).encode()
        try:
            stdin.write(_LENGTH.pack(len(request)) + request)
            stdin.flush()
            head = _read(stdout, 1 + _LENGTH.size)
            payload = _read(stdout, _LENGTH.unpack(head[1:])[0])
        except (OSError, EOFError) as exc:
            self.close()
            raise WorkerGone(f"the render worker exited ({self._process.poll()})") from exc
        if head[0] == _FAILED:
            raise RuntimeError(payload.decode())
        return payload

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # the child's signal to exit
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class Workers:
    """Up to `count` workers, started on demand and kept; each renders one picture at a time."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._started: list[Worker] = []
        self._lock = threading.Lock()
        self._warmed = False
        atexit.register(self.close)
        # A forked child must not talk to its parent's workers on the same pipes: it starts its own.
        os.register_at_fork(after_in_child=self._forget)

    @property
    def warm_started(self) -> bool:
        return self._warmed

    def warm(self) -> None:
        """Start the first worker now, so that the first large render does not wait for it."""
        with self._lock:
            if self._warmed:
                return
            self._warmed = True
            if self._started:
                return
            try:
                worker = Worker()
            except WorkerGone:
                return  # the first large render will try again, and render itself if it must
            self._started.append(worker)
        self._idle.put(worker)

    def render(self, spec: PlaceholderSpec) -> bytes:
        worker = self._take()
        try:
            data = worker.render(spec)
        except WorkerGone:
            with self._lock:
                self._started.remove(worker)
            raise
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        return data

    def _take(self) -> Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._started) < self.count:
                worker = Worker()
                self._started.append(worker)
                return worker
        return self._idle.get()

    def _forget(self) -> None:
        self._idle = queue.SimpleQueue()
        self._started = []
        self._lock = threading.Lock()
        self._warmed = False

    def close(self) -> None:
        with self._lock:
            started, self._started = self._started, []
        for worker in started:
            worker.close()


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the stream ended")
    return data


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child's loop: render each request until the parent closes the pipe."""
    while True:
        try:
            head = _read(requests, _LENGTH.size)
        except EOFError:
            return
        fields = json.loads(_read(requests, _LENGTH.unpack(head)[0]))
        try:
            status, payload = _OK, render_placeholder(PlaceholderSpec(*fields))
        except Exception as exc:  # reported to the parent, which raises it to whoever waits for the picture
            status, payload = _FAILED, f"{type(exc).__name__}: {exc}".encode()
        answers.write(bytes((status,)) + _LENGTH.pack(len(payload)) + payload)
        answers.flush()


def main() -> None:
    """The child's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    os.nice(NICENESS)
    # The answers get standard output to themselves: anything else printed goes to standard error.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)

"""`nanobanana-sim` as users run it: the console script the virtualenv installed, in a subprocess.

The environment is the test process's minus every NANOBANANA_* variable (the suite sets some for itself), plus
what a test passes, so each run sees exactly the settings the test gave it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from simulator.banner import LAST_LINE

CLI = Path(sys.executable).with_name("nanobanana-sim")
START_TIMEOUT = 60  # generous: a bound on a hang, not a speed assertion
WAIT = 30


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NANOBANANA_")}
    return {**env, **(extra or {})}


def run(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=environment(env), cwd=cwd,
                          timeout=timeout)


class Served:
    """A running `nanobanana-sim serve`: its banner, its base URL, and its log lines as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.banner: list[str] = []
        self.log: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert process.stderr is not None
        # stderr (the log) is read all along, so the server never blocks on a full pipe; stdout holds only the
        # banner and the goodbye.
        self._reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._reader.start()
        self.stdout_rest = ""
        self.returncode: int | None = None

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._lines.put(line.rstrip("\n"))

    def read_banner(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.rstrip("\n") == LAST_LINE:
                return
        raise AssertionError(f"serve ended before its banner was complete: {self.banner} {self.drain()}")

    @property
    def base(self) -> str:
        found = re.search(r"serving on (http://\S+)", self.banner[0])
        assert found is not None, self.banner
        return found.group(1)

    def drain(self) -> list[str]:
        while not self._lines.empty():
            self.log.append(self._lines.get())
        return self.log

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        """The first log line (already seen or still to come) for which `predicate` holds."""
        for line in self.drain():
            if predicate(line):
                return line
        while True:
            try:
                line = self._lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no log line {what} within {WAIT} s; the log: {self.log}") from None
            self.log.append(line)
            if predicate(line):
                return line

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        """Signal the server, wait for it to end; what it printed on stdout after the banner."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.returncode = self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
        assert self.process.stdout is not None
        self.stdout_rest = self.process.stdout.read()
        self._reader.join(WAIT)
        self.drain()
        return self.stdout_rest


@contextmanager
def served(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
           banner: bool = True, subcommand: str = "serve") -> Iterator[Served]:
    command: Sequence[str] = [str(CLI), subcommand, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment(env), cwd=cwd)
    server = Served(process)
    try:
        if banner:
            server.read_banner()
        yield server
    finally:
        if server.returncode is None:
            server.stop()

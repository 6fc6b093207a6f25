"""The servers under test, each in its own process: the bare app, and the simulator as users start it."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START_TIMEOUT = 60.0


@dataclass
class Server:
    url: str
    pid: int

    def rss_mb(self) -> float:
        """Resident memory of the server process, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def _more_files() -> None:
    # Thousands of held connections need as many descriptors: raise the soft limit to the hard one.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def _process(command: Sequence[str]) -> Iterator[Server]:
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                               preexec_fn=_more_files)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                # Keep reading: a server whose log fills the pipe would stall mid-measurement.
                threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
                yield Server(found.group(1), process.pid)
                return
        raise RuntimeError(f"{' '.join(command)} did not start:\n{''.join(seen[-20:])}")
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bare_app() -> AbstractContextManager[Server]:
    return _process([sys.executable, str(HERE / "bare_app.py")])


def simulator(*args: str) -> AbstractContextManager[Server]:
    """`nanobanana-sim serve --port 0 ARGS…` (default self-check, one worker, uvicorn's own loop choice)."""
    return _process([sys.executable, "-m", "simulator", "serve", "--port", "0", *args])

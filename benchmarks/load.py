"""Driving a server with load from another process: wrk when installed, else benchmarks/pyload.py.

Either way the client is not the server's process, so the server's rate is what is measured, and both
report the same things: requests, seconds, p50/p99 latency and the count of each status.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from routes import Request

HERE = Path(__file__).resolve().parent

# wrk's Lua hooks: a fresh UUID per request where the body asks for one, and the status of every answer.
WRK_SCRIPT = r"""
local threads = {}
local counter = 0
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
if template ~= nil then
  math.randomseed(os.time())
  request = function()
    counter = counter + 1
    local id = string.format("%08x-0000-4000-8000-%012d", math.random(0, 2147483647), counter)
    return wrk.format(nil, nil, nil, (template:gsub("{uuid}", id)))
  end
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do counts[code] = (counts[code] or 0) + count end
  end
  io.write("STATUSES")
  for code, count in pairs(counts) do io.write(string.format(" %d:%d", code, count)) end
  io.write(string.format("\nRESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: int
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def drive(base: str, request: Request, headers: dict[str, str], *, connections: int, duration: float | None = None,
          requests: int | None = None, rate: float | None = None, use_wrk: bool = True) -> LoadResult:
    """Load `base + request.path` for `duration` seconds (wrk, or pyload) or `requests` times (pyload);
    `rate` paces it (pyload)."""
    all_headers = {**headers, **request.headers}
    if use_wrk and duration is not None and rate is None and have_wrk():
        return _wrk(base, request, all_headers, connections, duration)
    return _pyload(base, request, all_headers, connections, duration, requests, rate)


def _wrk(base: str, request: Request, headers: dict[str, str], connections: int, duration: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = {_lua(request.method)}\n")
        if request.body is not None:
            script.write(f"wrk.body = {_lua(request.body)}\n")
            if "{uuid}" in request.body:
                script.write(f"template = {_lua(request.body)}\n")
        for name, value in headers.items():
            script.write(f"wrk.headers[ {_lua(name)} ] = {_lua(value)}\n")  # `[[` would open a long string
        script.write(WRK_SCRIPT)
    try:
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s",
             script.name, base + request.path],
            capture_output=True, text=True, timeout=duration + 120,
        )
    finally:
        Path(script.name).unlink()
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    count, micros, p50, p99, errors = map(int, found.groups())
    statuses_line = re.search(r"^STATUSES(.*)$", done.stdout, re.MULTILINE)
    statuses = {int(code): int(n) for code, n in
                (pair.split(":") for pair in (statuses_line.group(1).split() if statuses_line else []))}
    return LoadResult(count, micros / 1e6, p50 / 1000, p99 / 1000, statuses, errors, "wrk")


def _lua(text: str) -> str:
    return "[==[" + text + "]==]" if "]==]" not in text else json.dumps(text)


def _pyload(base: str, request: Request, headers: dict[str, str], connections: int, duration: float | None,
            requests: int | None, rate: float | None) -> LoadResult:
    parts = urlsplit(base)
    job = {"host": parts.hostname, "port": parts.port, "method": request.method, "path": parts.path + request.path,
           "headers": headers, "body": request.body, "connections": connections, "duration": duration,
           "requests": requests, "rate": rate}
    done = subprocess.run([sys.executable, str(HERE / "pyload.py")], input=json.dumps(job), capture_output=True,
                          text=True, timeout=(duration or 0) + 900)
    if done.returncode != 0:
        raise RuntimeError(f"pyload failed: {done.stderr[-1000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return LoadResult(result["requests"], result["seconds"], result["p50_ms"], result["p99_ms"],
                      {int(code): n for code, n in result["statuses"].items()}, result["errors"], "pyload")


class Holder:
    """`connections` requests held open (long polls) by a pyload process until their answers come."""

    def __init__(self, base: str, request: Request, headers: dict[str, str], connections: int) -> None:
        parts = urlsplit(base)
        job = {"host": parts.hostname, "port": parts.port, "method": request.method,
               "path": parts.path + request.path, "headers": {**headers, **request.headers}, "body": request.body,
               "connections": connections, "hold": True}
        self._process = subprocess.Popen([sys.executable, str(HERE / "pyload.py")], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(job))
        self._process.stdin.close()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"pyload hold failed: {self._process.stderr.read() if self._process.stderr else ''}")
        self.ready = int(json.loads(line)["ready"])

    def result(self, timeout: float) -> dict[str, object]:
        assert self._process.stdout is not None
        out, _ = self._process.communicate(timeout=timeout)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

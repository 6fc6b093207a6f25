"""A bounded soak: many concurrent clients against `nanobanana-sim serve --scenario chaos`, then an audit.

    python benchmarks/soak.py [--duration 35] [--clients 200] [--seed 7] [--speed 50]

Each client has its own API key and, for `--duration` seconds, submits a generation to one provider after
another (Civitai, qingbo, Runware, CRun, FoxAPI, Evolink) and polls it to the end, behaving as a careful client
does under chaos: it waits out 429s and 503s as `Retry-After` says, retries other 5xx and dropped connections,
and never resubmits what was accepted. Then the fault rules are lifted and the audit checks that

- every accepted task reaches a terminal state and is retrievable through the provider's own route;
- every 5xx the journal holds was forced by a fault rule (`faults` is not empty): none is unexplained;
- the server's resident memory levels off: the growth over the second half of the run is printed beside the
  growth over the first, with the journal's bytes (bounded) and the tasks held (kept for the process's life).

Figures are printed as `name value unit` lines; the exit status is 1 when a task was lost or a 5xx unexplained.
`tests/test_soak.py` runs a short version inside `make test`; `make soak` runs this one (at most a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator import logs
from simulator.logs import Progress

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a lighthouse on a cliff at dusk"
_TLS = ssl.create_default_context()
RUNWARE_BODY = {"taskType": "imageInference", "model": "google:4@3", "positivePrompt": PROMPT, "width": 1024,
                "height": 1024, "deliveryMethod": "async"}


@dataclass(frozen=True)
class Route:
    """How a client of one provider submits a generation, learns its ID, and reads it back."""

    slug: str
    submit: str
    body: Callable[[], Any]
    auth: str  # the header the key goes in (`authorization` takes `Bearer <key>`)
    task_id: Callable[[Any, Any], str | None]  # (answer, body sent) → the ID to read it back by
    read: Callable[[str], tuple[str, str, Any]]  # ID → (method, path, body)
    terminal: Callable[[Any], bool]  # the read answer says the task is over


def _status_in(*path: str, words: frozenset[str]) -> Callable[[Any], bool]:
    def terminal(answer: Any) -> bool:
        for part in path:
            answer = answer.get(part) if isinstance(answer, dict) else None
        return answer in words

    return terminal


def _runware_terminal(answer: Any) -> bool:
    if not isinstance(answer, dict):
        return False
    items = [*answer.get("data", []), *answer.get("errors", [])]
    return bool(items) and all(item.get("status") in ("success", "error") for item in items)


ROUTES = (
    Route("civitai", "/civitai/v2/consumer/workflows",
          lambda: {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "nano-banana-2",
                                                            "prompt": PROMPT, "aspectRatio": "1:1"}}]},
          "authorization", lambda answer, sent: answer.get("id"),
          lambda ident: ("GET", f"/civitai/v2/consumer/workflows/{ident}", None),
          _status_in("status", words=frozenset({"succeeded", "failed", "expired", "canceled"}))),
    Route("qingbo", "/qingbo/v1/tasks", lambda: {"model": "gemini-3-pro-image-preview", "prompt": PROMPT},
          "authorization", lambda answer, sent: answer.get("task_id"),
          lambda ident: ("GET", f"/qingbo/v1/tasks/{ident}", None),
          _status_in("status", words=frozenset({"completed", "failed", "cancelled", "canceled"}))),
    Route("runware", "/runware/v1", lambda: [{**RUNWARE_BODY, "taskUUID": str(uuid.uuid4())}],
          "authorization", lambda answer, sent: sent[0]["taskUUID"] if answer.get("data") else None,
          lambda ident: ("POST", "/runware/v1", [{"taskType": "getResponse", "taskUUID": ident}]),
          _runware_terminal),
    Route("crun", "/crun/api/v1/client/job/CreateTask",
          lambda: {"model": "google/nano-banana", "input": {"prompt": PROMPT}},
          "x-api-key", lambda answer, sent: (answer.get("data") or {}).get("task_id"),
          lambda ident: ("GET", f"/crun/api/v1/client/job/TaskInfo?task_id={ident}", None),
          _status_in("data", "status", words=frozenset({"success", "failed"}))),
    Route("foxapi", "/foxapi/v1/images/generations",
          lambda: {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT},
          "authorization", lambda answer, sent: answer.get("id"),
          lambda ident: ("GET", f"/foxapi/v1/tasks/{ident}", None),
          _status_in("status", words=frozenset({"completed", "failed"}))),
    Route("evolink", "/evolink/v1/images/generations",
          lambda: {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT},
          "authorization", lambda answer, sent: answer.get("id"),
          lambda ident: ("GET", f"/evolink/v1/tasks/{ident}", None),
          _status_in("status", words=frozenset({"completed", "failed"}))),
)


@dataclass
class Tally:
    requests: int = 0
    accepted: int = 0
    finished: int = 0
    server_errors: int = 0
    dropped: int = 0  # connections reset or answers cut short (network faults)


class Client:
    """One careful client: its own key and connection, one provider after another, waiting out what the server
    asks. (One connection each: httpx's shared pool slows to a crawl with hundreds of connections in it.)"""

    def __init__(self, base: str, index: int, tally: Tally, deadline: float = 0.0) -> None:
        # One TLS context for all (the URLs are plain HTTP): httpx would load the CA bundle for each client.
        self.http = httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=1),
                                      verify=_TLS)
        self.tally, self.deadline = tally, deadline
        self.key = f"soak-{index}"
        self.turn = index
        self.accepted: list[tuple[Route, str]] = []

    def headers(self, route: Route) -> dict[str, str]:
        return {route.auth: f"Bearer {self.key}" if route.auth == "authorization" else self.key}

    async def call(self, route: Route, method: str, path: str, body: Any) -> tuple[int, Any] | None:
        """One request; None when the connection dropped or the answer was cut short or unreadable."""
        self.tally.requests += 1
        try:
            answer = await self.http.request(method, path, json=body, headers=self.headers(route))
            value = answer.json()
        except (httpx.TransportError, ValueError):
            self.tally.dropped += 1
            await self.pause(0.2)
            return None
        if answer.status_code >= 500:
            self.tally.server_errors += 1
        if answer.status_code == 429 or answer.status_code >= 500:
            await self.pause(min(float(answer.headers.get("retry-after", "0.5") or 0.5), 3.0))
        return answer.status_code, value

    async def pause(self, seconds: float) -> None:
        """Wait, but not past the end of the run (the audit waits on its own clock)."""
        await asyncio.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())) if self.deadline else seconds)

    async def run(self) -> None:
        while time.monotonic() < self.deadline:
            route = ROUTES[self.turn % len(ROUTES)]
            self.turn += 1
            sent = route.body()
            answer = await self.call(route, "POST", route.submit, sent)
            if answer is None or not 200 <= answer[0] < 300:
                continue  # refused (or unknown: a dropped submit is not resubmitted as the same task)
            ident = route.task_id(answer[1], sent)
            if ident is None:
                continue
            self.accepted.append((route, ident))
            self.tally.accepted += 1
            if await self.follow(route, ident, self.deadline):
                self.tally.finished += 1

    async def audit(self, until: float) -> int:
        """Read back every task this client had accepted; how many never showed as finished by `until`."""
        self.deadline = until  # Retry-After is waited out until then (a rate limit may outlive the rules)
        finished = [await self.follow(route, ident, until) for route, ident in self.accepted]
        return finished.count(False)

    async def follow(self, route: Route, ident: str, until: float) -> bool:
        """Poll the task until it is over (True) or `until` passes (False)."""
        method, path, body = route.read(ident)
        while time.monotonic() < until:
            answer = await self.call(route, method, path, body)
            # Runware answers a failed task's getResponse with the failure's status (400, 500): the body says
            # it is over, whatever the status; a forced error's envelope never reads as a finished task.
            if answer is not None and route.terminal(answer[1]):
                return True
            await asyncio.sleep(0.3)
        return False


def resident_kib(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) if found else 0


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cli = shutil.which("nanobanana-sim", path=str(Path(sys.executable).parent)) or "nanobanana-sim"
    command = [cli, "serve", "--port", "0", "--seed", str(args.seed), "--speed", str(args.speed),
               "--scenario", "chaos", "--log-level", "error"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            # The banner goes on; nothing more is read from stdout, and the server writes nothing else there.
            return process, found.group(1)
    raise RuntimeError(f"serve ended before it printed its URL (exit {process.wait()})")


async def soak(args: argparse.Namespace, base: str, pid: int) -> dict[str, float]:
    tally = Tally()
    samples: list[tuple[float, int]] = []
    clients = [Client(base, i, tally) for i in range(args.clients)]
    started = time.monotonic()
    for client in clients:
        client.deadline = started + args.duration

    async def sample(progress: Progress) -> None:
        while True:
            samples.append((time.monotonic() - started, resident_kib(pid)))
            progress.advance(tally.requests - progress.done)
            await asyncio.sleep(0.5)

    try:
        with Progress(f"soak: {args.clients} clients under chaos for {args.duration:g} s", unit="requests") as progress:
            sampler = asyncio.create_task(sample(progress))
            await asyncio.gather(*(client.run() for client in clients))
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        async with httpx.AsyncClient(base_url=base, timeout=30) as control:
            # The chaos ends: every task accepted must now finish and be readable through its provider's route.
            await control.delete("/_sim/faults")
            until = time.monotonic() + args.audit_seconds
            lost = sum(await asyncio.gather(*(client.audit(until) for client in clients)))
            unexplained = await _unexplained_server_errors(control)
            info = (await control.get("/_sim/")).json()
    finally:
        await asyncio.gather(*(client.http.aclose() for client in clients))
    half = args.duration / 2
    first = [kib for at, kib in samples if at <= half]
    second = [kib for at, kib in samples if at > half]
    return {
        "soak.clients": args.clients,
        "soak.duration": args.duration,
        "soak.requests": tally.requests,
        "soak.requests_per_second": round(tally.requests / args.duration, 1),
        "soak.tasks.accepted": tally.accepted,
        "soak.tasks.finished_while_polled": tally.finished,
        "soak.tasks.lost": lost,
        "soak.responses.5xx": tally.server_errors,
        "soak.responses.5xx_unexplained": len(unexplained),
        "soak.connections.dropped": tally.dropped,
        "soak.rss.start": round(first[0] / 1024, 1) if first else 0,
        "soak.rss.first_half_growth": round((max(first) - first[0]) / 1024, 1) if first else 0,
        "soak.rss.second_half_growth": round((max(second) - min(second)) / 1024, 1) if second else 0,
        "soak.rss.end": round(samples[-1][1] / 1024, 1) if samples else 0,
        "soak.journal.bytes": round(info["journal"]["bytes"] / 2**20, 1),
        "soak.journal.dropped": info["journal"]["dropped"],
        "soak.tasks.held": info["tasks"],
    }


async def _unexplained_server_errors(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Journaled 5xx answers no fault rule explains: none fired on the exchange, nor on the submit of its task
    (a task a rule failed is answered 5xx when read, by the providers that report failures so)."""
    async def entries(*params: tuple[str, str]) -> list[dict[str, Any]]:
        return list((await http.get("/_sim/journal", params=[("kind", "http"), *params])).json()["entries"])

    faulted = {entry["task_id"] for entry in await entries(("faulted", "true")) if entry["task_id"]}
    server_errors = await entries(("faulted", "false"), *(("status", str(status)) for status in range(500, 600)))
    return [entry for entry in server_errors if entry["task_id"] not in faulted]


UNITS = {"clients": "clients", "duration": "s", "requests": "requests", "requests_per_second": "req/s",
         "accepted": "tasks", "finished_while_polled": "tasks", "lost": "tasks", "5xx": "responses",
         "5xx_unexplained": "responses", "dropped": "count", "start": "MiB", "first_half_growth": "MiB",
         "second_half_growth": "MiB", "end": "MiB", "bytes": "MiB", "held": "tasks"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=35.0, help="seconds of load (default 35)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=50.0, help="the server's clock speed-up (default 50)")
    parser.add_argument("--audit-seconds", type=float, default=15.0,
                        help="how long the audit waits for accepted tasks to finish once the chaos ends")
    args = parser.parse_args(argv)
    logs.configure()  # progress on standard error; the figures alone on standard output
    process, base = start_server(args)
    try:
        figures = asyncio.run(soak(args, base, process.pid))
    finally:
        process.terminate()
        process.wait(timeout=30)
    for name, value in figures.items():
        print(f"{name} {value} {UNITS[name.rsplit('.', 1)[1]]}")
    return 1 if figures["soak.tasks.lost"] or figures["soak.responses.5xx_unexplained"] else 0


if __name__ == "__main__":
    sys.exit(main())

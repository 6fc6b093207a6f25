"""A bounded soak: many concurrent clients against `nanobanana-sim serve --scenario chaos`, then an audit.

    python benchmarks/soak.py [--duration 35] [--clients 200] [--seed 7] [--speed 50]

Each client has its own API key and, for `--duration` seconds, submits a generation to one provider after
another (Civitai, qingbo, Runware, CRun, FoxAPI, Evolink) and polls it to the end, behaving as a careful client
does under chaos: it waits out 429s and 503s as `Retry-After` says, retries other 5xx and dropped connections,
and never resubmits what was accepted. Then the fault rules are lifted and the audit checks that

- every accepted task reaches a terminal state and is retrievable through the provider's own route;
- every 5xx the journal holds was forced by a fault rule (`faults` is not empty): none is unexplained;
- the server's resident memory stays flat once retention evicts. The server runs with a small
  `--task-capacity` (and `--journal-capacity`), so it retires finished tasks within the first seconds; its
  VmRSS (/proc) is sampled through the run, and the growth from the moment the first task was retired to the
  end, per 10,000 tasks accepted meanwhile, must stay under `--flat-mib`. A task read back with a 404 was
  retired (the server's count of retired tasks bounds how many may be); any other task that never finished
  is lost.

Figures are printed as `name value unit` lines; the exit status is 1 when a task was lost, a 5xx unexplained,
retention never began or memory grew past the bound, each with a message on standard error.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator import logs
from simulator.logs import Progress

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a lighthouse on a cliff at dusk"
_TLS = ssl.create_default_context()
# Flat: once finished tasks are retired and the journal is full, RSS grows less than this per 10,000 more tasks.
# Measured: about 11-13 MiB (a residue of about 1 KB a task, allocator high-water marks included); an unbounded
# store costs about 20 KB a task, 190 MiB per 10,000, so a broken bound fails by an order of magnitude.
FLAT_MIB = 20.0
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


FINISHED, GONE, OPEN = "finished", "gone", "open"  # how following a task ended


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
            if await self.follow(route, ident, self.deadline) == FINISHED:
                self.tally.finished += 1

    async def audit(self, until: float) -> list[str]:
        """Read back every task this client had accepted: how each ended (see `follow`) by `until`."""
        self.deadline = until  # Retry-After is waited out until then (a rate limit may outlive the rules)
        return [await self.follow(route, ident, until) for route, ident in self.accepted]

    async def follow(self, route: Route, ident: str, until: float) -> str:
        """Poll the task until it is over (FINISHED), answers 404 (GONE: retired) or `until` passes (OPEN)."""
        method, path, body = route.read(ident)
        while time.monotonic() < until:
            answer = await self.call(route, method, path, body)
            # Runware answers a failed task's getResponse with the failure's status (400, 500): the body says
            # it is over, whatever the status; a forced error's envelope never reads as a finished task.
            if answer is not None and route.terminal(answer[1]):
                return FINISHED
            if answer is not None and answer[0] == 404:
                return GONE
            await asyncio.sleep(0.3)
        return OPEN


def resident_kib(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) if found else 0


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cli = shutil.which("nanobanana-sim", path=str(Path(sys.executable).parent)) or "nanobanana-sim"
    command = [cli, "serve", "--port", "0", "--seed", str(args.seed), "--speed", str(args.speed),
               "--scenario", "chaos", "--log-level", "error", "--task-capacity", str(args.task_capacity),
               "--journal-capacity", str(args.journal_capacity)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            # The banner goes on; nothing more is read from stdout, and the server writes nothing else there.
            return process, found.group(1)
    raise RuntimeError(f"serve ended before it printed its URL (exit {process.wait()})")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds into the run
    rss_kib: int  # the server's VmRSS
    retired: int  # tasks the server had retired for its capacity
    dropped: int  # journal entries the server had dropped for its bound
    accepted: int  # tasks the clients had had accepted


class JournalAudit:
    """Reads the journal as the run goes, oldest first: it is bounded (`--journal-capacity`), so what is not
    read in time is gone. Keeps what the 5xx audit needs: the tasks a fault rule touched, and the 5xx answers
    no rule touched (a task a rule failed is answered 5xx when read, by the providers that report failures so).
    """

    def __init__(self) -> None:
        self.after = 0  # the last sequence number read
        self.missed = 0  # entries dropped before they were read: the audit would be partial
        self.faulted: set[str] = set()
        self.server_errors: list[dict[str, Any]] = []

    async def read(self, control: httpx.AsyncClient) -> dict[str, Any]:
        """Read what is new; return the server's `/_sim/` info, read just after."""
        entries = (await control.get("/_sim/journal", params={"after": self.after, "summary": "true"})).json()
        for entry in entries["entries"]:
            self.missed += max(0, entry["seq"] - self.after - 1)
            self.after = entry["seq"]
            if entry["kind"] != "http":
                continue
            if entry["faults"]:
                if entry["task_id"]:
                    self.faulted.add(entry["task_id"])
            elif 500 <= int(entry["status"] or 0) < 600:
                self.server_errors.append(entry)
        return dict((await control.get("/_sim/")).json())

    def unexplained(self) -> list[dict[str, Any]]:
        return [entry for entry in self.server_errors if entry["task_id"] not in self.faulted]


async def soak(args: argparse.Namespace, base: str, pid: int) -> dict[str, tuple[float, str]]:
    tally = Tally()
    samples: list[Sample] = []
    journal = JournalAudit()
    clients = [Client(base, i, tally) for i in range(args.clients)]
    started = time.monotonic()
    for client in clients:
        client.deadline = started + args.duration

    async def sample(control: httpx.AsyncClient, progress: Progress | None) -> None:
        while True:
            info = await journal.read(control)
            if progress is not None:  # under load: memory is judged on these
                samples.append(Sample(time.monotonic() - started, resident_kib(pid),
                                      info["tasks_retention"]["retired"], info["journal"]["dropped"], tally.accepted))
                progress.advance(tally.requests - progress.done)
            await asyncio.sleep(0.1)

    async def meanwhile(work: Awaitable[Any], control: httpx.AsyncClient, progress: Progress | None = None) -> Any:
        sampler = asyncio.create_task(sample(control, progress))
        try:
            return await work
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as control:
            with Progress(f"soak: {args.clients} clients under chaos for {args.duration:g} s",
                          unit="requests") as progress:
                await meanwhile(asyncio.gather(*(client.run() for client in clients)), control, progress)
            # The chaos ends: every task accepted must now finish and be readable through its provider's route,
            # or have been retired for the capacity (its ID then answers 404).
            await control.delete("/_sim/faults")
            until = time.monotonic() + args.audit_seconds
            audits = await meanwhile(asyncio.gather(*(client.audit(until) for client in clients)), control)
            info = await journal.read(control)
    finally:
        await asyncio.gather(*(client.http.aclose() for client in clients))
    ends = [end for found in audits for end in found]
    retired = int(info["tasks_retention"]["retired"])
    gone = ends.count(GONE)
    lost = ends.count(OPEN) + max(0, gone - retired)  # more 404s than retired tasks: some were not retired
    figures: dict[str, tuple[float, str]] = {
        "soak.clients": (args.clients, "clients"),
        "soak.duration": (args.duration, "s"),
        "soak.requests": (tally.requests, "requests"),
        "soak.requests_per_second": (round(tally.requests / args.duration, 1), "req/s"),
        "soak.tasks.accepted": (tally.accepted, "tasks"),
        "soak.tasks.finished_while_polled": (tally.finished, "tasks"),
        "soak.tasks.retired": (retired, "tasks"),
        "soak.tasks.gone_when_read": (gone, "tasks"),
        "soak.tasks.lost": (lost, "tasks"),
        "soak.tasks.held": (info["tasks"], "tasks"),
        "soak.tasks.capacity": (args.task_capacity, "tasks"),
        "soak.responses.5xx": (tally.server_errors, "responses"),
        "soak.responses.5xx_unexplained": (len(journal.unexplained()), "responses"),
        "soak.connections.dropped": (tally.dropped, "count"),
        "soak.journal.entries": (info["journal"]["entries"], "entries"),
        "soak.journal.bytes": (round(info["journal"]["bytes"] / 2**20, 1), "MiB"),
        "soak.journal.dropped": (info["journal"]["dropped"], "entries"),
        "soak.journal.missed_by_audit": (journal.missed, "entries"),
        "soak.rss.start": (round(samples[0].rss_kib / 1024, 1) if samples else 0, "MiB"),
        **_memory(samples, args.flat_mib),
    }
    return figures


def _memory(samples: list[Sample], flat_mib: float) -> dict[str, tuple[float, str]]:
    """RSS from the first sample where the bounds the run reaches were reached (a task retired, and a journal
    entry dropped if the journal fills at all) to the last, and its growth per 1,000 tasks accepted meanwhile
    (judged against `flat_mib` per 10,000)."""
    journal_fills = any(sample.dropped for sample in samples)
    evicting = [sample for sample in samples if sample.retired > 0 and (sample.dropped > 0 or not journal_fills)]
    if len(evicting) < 2:
        return {"soak.retention.started_after": (-1, "s")}
    first, last = evicting[0], evicting[-1]
    growth = (last.rss_kib - first.rss_kib) / 1024
    tasks = max(1, last.accepted - first.accepted)
    journal_full = next((sample.at for sample in samples if sample.dropped), -1.0)
    return {
        "soak.retention.tasks_retired_from": (round(next(s.at for s in samples if s.retired), 1), "s"),
        "soak.retention.journal_full_from": (round(journal_full, 1), "s"),
        "soak.retention.started_after": (round(first.at, 1), "s"),
        "soak.rss.at_eviction_start": (round(first.rss_kib / 1024, 1), "MiB"),
        "soak.rss.end": (round(last.rss_kib / 1024, 1), "MiB"),
        "soak.rss.peak_after_eviction": (round(max(s.rss_kib for s in evicting) / 1024, 1), "MiB"),
        "soak.rss.growth_after_eviction": (round(growth, 1), "MiB"),
        "soak.tasks.accepted_after_eviction": (tasks, "tasks"),
        "soak.rss.growth_per_1000_tasks": (round(growth / tasks * 1000, 2), "MiB"),
        "soak.rss.flat_bound_per_10000_tasks": (flat_mib, "MiB"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=35.0, help="seconds of load (default 35)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=50.0, help="the server's clock speed-up (default 50)")
    parser.add_argument("--audit-seconds", type=float, default=15.0,
                        help="how long the audit waits for accepted tasks to finish once the chaos ends")
    parser.add_argument("--task-capacity", type=int, default=100,
                        help="the server's --task-capacity: small, so retention evicts from the first seconds")
    parser.add_argument("--journal-capacity", type=int, default=1000,
                        help="the server's --journal-capacity: small, so the journal is full from the first seconds")
    parser.add_argument("--flat-mib", type=float, default=FLAT_MIB,
                        help=f"memory is flat when RSS grows less than this many MiB per 10,000 tasks once "
                             f"retention evicts (default {FLAT_MIB:g})")
    args = parser.parse_args(argv)
    logs.configure()  # progress on standard error; the figures alone on standard output
    process, base = start_server(args)
    try:
        figures = asyncio.run(soak(args, base, process.pid))
    finally:
        process.terminate()
        process.wait(timeout=30)
    for name, (value, unit) in figures.items():
        print(f"{name} {value} {unit}")
    return _verdict({name: value for name, (value, _) in figures.items()}, args.flat_mib)


def _verdict(figures: dict[str, float], flat_mib: float) -> int:
    problems = []
    if figures["soak.tasks.lost"]:
        problems.append(f"{figures['soak.tasks.lost']:g} accepted task(s) never finished and were not retired")
    if figures["soak.journal.missed_by_audit"]:
        problems.append(f"the journal dropped {figures['soak.journal.missed_by_audit']:g} entries before the 5xx "
                        "audit read them: raise --journal-capacity")
    if figures["soak.responses.5xx_unexplained"]:
        problems.append(f"{figures['soak.responses.5xx_unexplained']:g} 5xx answer(s) no fault rule explains")
    if figures["soak.retention.started_after"] < 0:
        problems.append("retention never began (no task was retired): raise --duration or lower --task-capacity")
    elif figures["soak.rss.growth_per_1000_tasks"] * 10 > flat_mib:
        problems.append(f"memory is not flat once retention evicts: RSS grew "
                        f"{figures['soak.rss.growth_after_eviction']:g} MiB over "
                        f"{figures['soak.tasks.accepted_after_eviction']:g} tasks, "
                        f"{figures['soak.rss.growth_per_1000_tasks'] * 10:.1f} MiB per 10,000 (bound {flat_mib:g})")
    for problem in problems:
        print(f"soak: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

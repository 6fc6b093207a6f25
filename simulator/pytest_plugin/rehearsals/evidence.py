"""What happened in one rehearsal: the adapter's outcome and the journal, sorted by role, with excerpts."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.pytest_plugin.rehearsals.adapter import count
from simulator.pytest_plugin.rehearsals.guidance import SOCKET_KIND, Guidance

Entry = dict[str, Any]
EXCERPT_HEAD, EXCERPT_TAIL = 3, 1  # a long run of requests is shown by its first and last few
PUSHED = "PUSH"  # the journal's method for a frame the server sent on its own


def client_requests(journal: Sequence[Entry], guidance: Guidance) -> tuple[list[Entry], list[Entry]]:
    """What the client sent the rehearsed provider, oldest first, whichever transport carried it, and its
    housekeeping frames apart. HTTP exchanges and WebSocket frames (kind `ws`, method `WS`, each journaled
    with the answer it got) are judged as requests. A frame the server pushed (method `PUSH`, a result as it
    is ready) answers nothing the client did at that moment and is left out; a frame that only keeps the
    socket open or signs it in (the provider's `socket.housekeeping`) is neither a retry nor a poll, and is
    kept aside only so that the clock it took is not counted as the client's pause (`Evidence.gap`)."""
    requests: list[Entry] = []
    housekeeping: list[Entry] = []
    for entry in journal:
        if entry.get("provider") != guidance.slug or entry.get("kind") not in ("http", SOCKET_KIND) \
                or entry.get("method") == PUSHED:
            continue
        (housekeeping if guidance.is_housekeeping(entry) else requests).append(entry)
    return requests, housekeeping


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0  # clock seconds the adapter took

    def describe(self, limit: int = 160) -> str:
        if self.error is not None:
            text = f"raised {type(self.error).__name__}: {self.error}"
        else:
            images, blocked = count(self.value, "images"), count(self.value, "blocked")
            text = f"returned {type(self.value).__name__}"
            if images is not None:
                text += f" with {images} image{'s' if images != 1 else ''}"
                if blocked:
                    text += f" and {blocked} blocked"
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Evidence:
    guidance: Guidance
    entries: list[Entry]  # the client's requests to the rehearsed provider, oldest first (`client_requests`)
    webhooks: list[Entry]
    tasks: list[Entry]
    outcome: Outcome
    line: Callable[[Mapping[str, Any]], str]  # a journal entry as the scorecard shows it (clock offset …)
    deliveries: list[bytes] = field(default_factory=list)
    handled: list[Any] = field(default_factory=list)  # what on_callback answered per delivery (or raised)
    findings: Sequence[Any] = ()  # contract-check findings
    housekeeping: list[Entry] = field(default_factory=list)  # pings and sign-ins on a socket (`client_requests`)

    def gap(self, answered: Mapping[str, Any], then: Mapping[str, Any]) -> float:
        """Clock seconds the client waited between an answer and its next request. The clock the server took
        over housekeeping frames sent in between (the rehearsal tick moves it before each) is not the
        client's pause: a client that pings while it retries at once has not waited."""
        start, end = float(answered["finished_at"]), float(then["at"])
        busy = sum(float(e["finished_at"]) - float(e["at"]) for e in self.housekeeping
                   if start <= float(e["at"]) and float(e["finished_at"]) <= end)
        return end - start - busy

    @property
    def submits(self) -> list[Entry]:
        return [e for e in self.entries if self.guidance.is_submit(e)]

    def generations(self) -> list[str]:
        """Distinct tasks the accepted submits created. The journal's task ID of a submit is the generation's
        own ID (Civitai workflow, qingbo task, Runware taskUUID: its engine tasks are per image), and an
        answer lost on the wire is still journaled with the status the provider sent."""
        accepted = [e for e in self.submits if 200 <= int(e.get("status") or 0) < 300 and e.get("task_id")]
        return list(dict.fromkeys(str(e["task_id"]) for e in accepted))

    def terminal_at(self, task_id: Any) -> float:
        """When the generation became terminal on the clock; for IDs the engine does not know (Runware's
        taskUUID) the moment every task of the rehearsal had finished."""
        finished = {t["id"]: float(t["timeline"]["finished_at"]) for t in self.tasks}
        if task_id in finished:
            return finished[task_id]
        return max(finished.values(), default=math.inf)


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    excerpt: list[str] = field(default_factory=list)


def fault_note(entry: Mapping[str, Any]) -> str:
    """What the rehearsal did to this exchange, so an excerpt shows why e.g. a 202 never reached the client."""
    actions = []
    for fired in entry.get("faults") or []:
        do = fired.get("do") or {}
        kind = next((key for key in ("error", "network", "task", "webhook") if key in do), None)
        if kind is not None:
            actions.append(" ".join(str(part) for part in (kind, do[kind], do.get("status")) if part is not None))
    return f"  ⚡ {', '.join(actions)}" if actions else ""


def excerpt(evidence: Evidence, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    # A signed result URL's query (signature, expiry) is long and says nothing about the client's behaviour.
    shown = [{**entry, "query": {}} if evidence.guidance.is_download(entry) else entry for entry in entries]
    lines = [evidence.line(entry) + fault_note(entry) for entry in shown]
    if len(lines) > EXCERPT_HEAD + EXCERPT_TAIL + 1:
        hidden = len(lines) - EXCERPT_HEAD - EXCERPT_TAIL
        lines = [*lines[:EXCERPT_HEAD], f"  … {hidden} more", *lines[-EXCERPT_TAIL:]]
    return lines

"""What the inspector shows, as JSON the control plane serves (so every view is also scriptable): journal
summaries, task timelines with the client's polls, the gallery, webhook deliveries, and a whole session.

Everything here is read from the journal, the task store and the wallets; nothing is kept twice.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from simulator.engine.journal import JournalEntry
from simulator.engine.tasks import Task
from simulator.images import content_type
from simulator.inspector.masking import mask_owner, mask_url, masked_entry

if TYPE_CHECKING:
    from simulator.sim import Simulator

# Clock seconds of slack when comparing a poll's spacing with the guidance (clock values are floats).
EPSILON = 1e-6
# Request fields that say what size and format a client asked for, across the providers' vocabularies.
REQUESTED_KEYS = ("aspectRatio", "aspect_ratio", "resolution", "imageSize", "image_size", "size", "width",
                  "height", "outputFormat", "output_format", "format", "mimeType", "numberResults", "quantity")


def summary(entry: JournalEntry) -> dict[str, Any]:
    """One row of the live journal: enough to list, filter and flag it; the detail is fetched on demand."""
    return {
        "seq": entry.seq, "kind": entry.kind, "at": entry.at, "finished_at": entry.finished_at,
        "provider": entry.provider, "operation": entry.operation, "method": entry.method,
        "path": mask_url(entry.path),
        "status": entry.status, "owner": mask_owner(entry.owner), "task_id": entry.task_id, "note": entry.note,
        "violations": len(entry.violations), "why": _why(entry),
        "faults": [f.get("rule") or f.get("limit") for f in entry.faults],
        "self_check": len(entry.self_check), "detail": entry.detail,
    }


def _why(entry: JournalEntry) -> str | None:
    """The first broken rule in a line: `steps[0].input.aspectRatio: enum (nearest 21:9)` (+ how many more)."""
    if not entry.violations:
        return None
    first = entry.violations[0]
    text = f"{first.get('path') or '(body)'}: {first.get('rule')}"
    if first.get("nearest") is not None:
        text += f" (nearest {json.dumps(first['nearest'])})"
    more = len(entry.violations) - 1
    return text + (f" +{more} more" if more else "")


def rejected(entry: JournalEntry) -> bool:
    """Refused: a 4xx or 5xx answer, a broken request contract, or no answer at all."""
    return bool(entry.violations) or (entry.kind == "http" and (entry.status is None or entry.status >= 400))


def matches_text(journal_text: str, needle: str) -> bool:
    return needle.casefold() in journal_text.casefold()


# -- task timelines -------------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _retry_after(entry: JournalEntry) -> float | None:
    for name, value in entry.response_headers.items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None


class PollGuide:
    """Which requests poll a task, and the least spacing the provider's docs ask for (clientGuidance)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        poll = (data.get("clientGuidance") or {}).get("poll") or {}
        self.operations = frozenset(poll.get("operations", ()))
        self.min_seconds = float(poll.get("minSeconds", 0))
        self.doc = str(poll.get("doc", ""))

    def is_poll(self, entry: JournalEntry) -> bool:
        return entry.kind == "http" and entry.operation in self.operations


def timelines(sim: Simulator) -> dict[str, Any]:
    """Per task: its phases on the clock, the client's polls with their spacing judged, its webhook attempts."""
    engine = sim.engine
    now = engine.now()
    guides = {slug: PollGuide(provider.data) for slug, provider in sim.providers.items()}
    by_task: dict[str, list[JournalEntry]] = {}
    for entry in engine.journal.entries():
        task_id = entry.task_id or _task_in_path(entry, engine.tasks)
        if task_id:
            by_task.setdefault(task_id, []).append(entry)
    out = []
    for task in engine.tasks.all():
        seen = by_task.get(task.id, [])
        guide = guides.get(task.provider)
        out.append({
            **task_bar(task, now),
            "polls": _polls(task, seen, guide) if guide else [],
            "webhooks": [_attempt(e) for e in seen if e.kind == "webhook"],
            "min_poll": guide.min_seconds if guide else None,
            "poll_doc": guide.doc if guide else "",
        })
    return {"clock": engine.clock.describe(), "tasks": out}


def _task_in_path(entry: JournalEntry, tasks: Any) -> str | None:
    """A poll refused before its handler ran (a 429 from a rule) names no task; its path still does."""
    if entry.kind != "http" or not entry.path:
        return None
    return next((part for part in entry.path.split("/") if part and part in tasks), None)


def task_bar(task: Task, now: float) -> dict[str, Any]:
    t = task.timeline
    terminal = _finite(task.terminal_at())
    return {
        "id": task.id, "provider": task.provider, "owner": mask_owner(task.owner), "model": task.model,
        "phase": task.phase(now).value, "outcome": task.outcome.value, "accepted_at": t.accepted_at,
        "queued_at": _finite(t.queued_at), "started_at": _finite(t.started_at), "terminal_at": terminal,
        "canceled_at": task.canceled_at, "faults": task.faults,
        "failure": {"kind": task.failure.kind, "message": task.failure.message} if task.failure else None,
    }


def _polls(task: Task, seen: list[JournalEntry], guide: PollGuide) -> list[dict[str, Any]]:
    """Each poll as a tick: its gap after the previous answer about the task, and what was wrong with it."""
    terminal = task.terminal_at()
    polls: list[dict[str, Any]] = []
    previous: JournalEntry | None = None
    showed_terminal = False
    for entry in seen:
        if entry.kind != "http":
            continue
        if guide.is_poll(entry):
            flags = []
            gap = entry.at - previous.finished_at if previous and previous.finished_at is not None else None
            ok_before = previous is not None and previous.status is not None and 200 <= previous.status < 300
            if showed_terminal:
                flags.append("after_terminal")
            elif gap is not None and ok_before and gap + EPSILON < guide.min_seconds:
                flags.append("too_fast")
            wait = _retry_after(previous) if previous is not None else None
            if gap is not None and wait is not None and gap + EPSILON < wait:
                flags.append("before_retry_after")
            polls.append({"seq": entry.seq, "at": entry.at, "status": entry.status, "gap": gap, "flags": flags})
        if entry.finished_at is not None and entry.finished_at >= terminal and entry.status and entry.status < 300:
            showed_terminal = True
        previous = entry
    return polls


def _attempt(entry: JournalEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": entry.at, "finished_at": entry.finished_at, "status": entry.status,
            "attempt": entry.detail.get("attempt"), "event": entry.detail.get("event"),
            "outcome": entry.detail.get("outcome"), "note": entry.note, "url": mask_url(entry.path)}


# -- webhooks ---------------------------------------------------------------------------------------------------


def webhooks(sim: Simulator) -> dict[str, Any]:
    """Deliveries (one callback of one event to one URL) with every attempt and its backoff, and what fault rules
    did to them: `duplicate` (a second delivery of an event already sent), `reordered` (held back until a later
    event of the stream went first), `faults` (every rule that fired on the event, with what it did)."""
    journal = sim.engine.journal
    fired: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for entry in journal.entries(kind="event"):
        event = (entry.note or "").rpartition(" fired on webhook ")[2]
        for fault in entry.faults:
            fired.setdefault((entry.task_id, event), []).append({"at": entry.at, "rule": fault.get("rule"),
                                                                 "do": fault.get("do")})
    deliveries: list[dict[str, Any]] = []
    current: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in journal.entries(kind="webhook"):
        attempt = _attempt(entry)
        key = (entry.task_id, attempt["event"], attempt["url"])
        delivery = current.get(key)
        if delivery is None or attempt["attempt"] == 1:
            faults = fired.get((entry.task_id, str(attempt["event"])), [])
            delivery = {"task_id": entry.task_id, "provider": entry.provider, "event": attempt["event"],
                        "url": attempt["url"], "attempts": [], "duplicate": key in current,
                        "reordered": any((f["do"] or {}).get("webhook") == "reorder" for f in faults),
                        "faults": faults}
            current[key] = delivery
            deliveries.append(delivery)
        attempts = delivery["attempts"]
        attempt["backoff"] = entry.at - attempts[-1]["at"] if attempts else None
        attempts.append(attempt)
    for delivery in deliveries:
        delivery["outcome"] = delivery["attempts"][-1]["outcome"]
    return {"deliveries": deliveries, "pending": sim.engine.webhooks.pending()}


# -- gallery ----------------------------------------------------------------------------------------------------

def gallery(sim: Simulator) -> dict[str, Any]:
    """Every output image with what was asked and what was made, and when its latest signed link expires."""
    engine = sim.engine
    now = engine.now()
    tasks = engine.tasks.all()
    links = _latest_links(engine.journal.entries(), {o.blob_id for t in tasks for o in t.outputs})
    images = []
    for task in tasks:
        phase = task.phase(now)
        blocked = sum(1 for o in task.outputs if o.blocked)
        requested = {k: v for k, v in _flat(task.requested()).items() if k in REQUESTED_KEYS}
        for output in task.outputs:
            link = links.get(output.blob_id)
            images.append({
                "blob_id": output.blob_id, "task_id": task.id, "provider": task.provider, "model": task.model,
                "prompt": task.prompt, "seed": output.seed, "index": output.index, "width": output.width,
                "height": output.height, "format": str(output.format), "media_type": content_type(output.format),
                "requested": requested, "phase": phase.value, "ready": phase.value == "succeeded",
                "blocked": output.blocked, "blocked_reason": output.blocked_reason,
                "partial": 0 < blocked < len(task.outputs), "url": link[0] if link else None,
                "expires_at": link[1] if link else None,
            })
    return {"clock": engine.clock.describe(), "images": images}


def _flat(request: Any, depth: int = 0) -> dict[str, Any]:
    """Scalar fields of a request, however deep (Civitai nests them in steps[].input), first one wins."""
    out: dict[str, Any] = {}
    items: Iterable[Any] = request.items() if isinstance(request, Mapping) else enumerate(request)
    for key, value in items:
        if isinstance(value, Mapping | list) and depth < 6:
            for k, v in _flat(value, depth + 1).items():
                out.setdefault(k, v)
        elif isinstance(key, str) and isinstance(value, str | int | float | bool):
            out.setdefault(key, value)
    return out


def _latest_links(entries: list[JournalEntry], blobs: set[str]) -> dict[str, tuple[str, float | None]]:
    """blob ID → the last signed URL handed out for it (in an answer) and the clock time it expires; read newest
    first, stopping once every image has its link."""
    links: dict[str, tuple[str, float | None]] = {}
    for entry in reversed(entries):
        if len(links) == len(blobs):
            break
        if entry.kind != "http" or entry.response_body is None or not entry.task_id:
            continue
        text = json.dumps(entry.response_body) if not isinstance(entry.response_body, str) else entry.response_body
        for url in re.findall(r"https?://[^\"\s\\]+", text):
            blob = urlsplit(url).path.rsplit("/", 1)[-1]
            if blob in blobs and blob not in links:
                links[blob] = (url, _expiry(url))
    return links


def _expiry(url: str) -> float | None:
    query = parse_qs(urlsplit(url).query)
    for name in ("expires", "Expires", "exp"):
        if name in query:
            text = query[name][0]
            try:
                return float(text)
            except ValueError:
                try:
                    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()
                except ValueError:
                    return None
    return None


# -- wallets ----------------------------------------------------------------------------------------------------


def ledger(sim: Simulator) -> dict[str, Any]:
    wallets = sim.engine.wallets
    return {
        "wallets": [{**w, "owner": mask_owner(str(w["owner"]))} for w in wallets.snapshot()],
        "ledger": [{**m, "owner": mask_owner(m["owner"])} for m in wallets.ledger()],
    }


def windows(sim: Simulator) -> dict[str, Any]:
    """The rate limits' request windows now, per API key (masked)."""
    engine = sim.engine
    return {"clock": engine.clock.describe(),
            "windows": [{**w, "api_key": mask_owner(w["api_key"])} for w in engine.limits.windows(engine.now())]}


# -- a whole session --------------------------------------------------------------------------------------------


def har(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The HTTP exchanges as a HAR 1.2 log (credentials already masked in what is given)."""
    out = []
    for entry in entries:
        if entry["kind"] != "http":
            continue
        started = datetime.fromtimestamp(entry["at"], UTC).isoformat().replace("+00:00", "Z")
        took = max(0.0, ((entry.get("finished_at") or entry["at"]) - entry["at"]) * 1000)
        out.append({
            "startedDateTime": started, "time": took,
            "request": {
                "method": entry["method"], "url": _url(entry),
                "httpVersion": "HTTP/1.1",
                "headers": _pairs(entry["request_headers"]), "cookies": [],
                "queryString": [{"name": k, "value": v} for k, vs in entry["query"].items() for v in vs],
                "headersSize": -1, "bodySize": -1,
                **({"postData": _content(entry["request_body"], entry["request_headers"], "text")}
                   if entry["request_body"] is not None else {}),
            },
            "response": {
                "status": entry["status"] or 0, "statusText": "", "httpVersion": "HTTP/1.1",
                "headers": _pairs(entry["response_headers"]), "cookies": [],
                "content": _content(entry["response_body"], entry["response_headers"], "text", size=True),
                "redirectURL": "", "headersSize": -1, "bodySize": -1,
            },
            "cache": {}, "timings": {"send": 0, "wait": took, "receive": 0},
            "_seq": entry["seq"], "_provider": entry["provider"], "_operation": entry["operation"],
            "_taskId": entry["task_id"],
        })
    return {"log": {"version": "1.2", "creator": {"name": "nanobanana-sim", "version": _version()}, "entries": out}}


def _version() -> str:
    try:
        return version("nanobanana-sim")
    except PackageNotFoundError:
        return "unknown"


def _url(entry: Mapping[str, Any]) -> str:
    """HAR wants an absolute URL: the one the client asked for, from its Host header."""
    host = next((v for k, v in entry["request_headers"].items() if k.lower() == "host"), "localhost")
    query = entry["query"]
    text = "?" + urlencode([(k, v) for k, vs in query.items() for v in vs]) if query else ""
    return f"http://{host}{entry['path']}{text}"


def _pairs(headers: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers.items()]


def _content(body: Any, headers: Mapping[str, str], key: str, size: bool = False) -> dict[str, Any]:
    mime = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    out: dict[str, Any] = {"mimeType": mime, key: text}
    if size:
        out["size"] = len(text.encode())
    return out


SESSION_FORMAT = "nanobanana-sim-session"


def session(sim: Simulator) -> dict[str, Any]:
    """One file for a bug report: the HTTP part as HAR, and the simulator's own records beside it."""
    engine = sim.engine
    kept = engine.journal.entries()
    entries = [masked_entry(e.as_dict()) for e in kept]
    return {
        "format": SESSION_FORMAT, "version": 1,
        "info": {"seed": engine.seed, "clock": engine.clock.describe(), "providers": sorted(sim.providers),
                 "self_check": sim.self_check.value, "dropped": engine.journal.dropped},
        "har": har(entries),
        "journal": entries,
        "journal_rows": [summary(e) for e in kept],
        "timelines": timelines(sim),
        "gallery": gallery(sim),
        "webhooks": webhooks(sim),
        "credits": ledger(sim),
        "faults": {"rules": engine.faults.describe(), "limits": engine.limits.describe()},
        "windows": windows(sim),
        "scenarios": [s.get("name") for s in sim.scenarios],
    }

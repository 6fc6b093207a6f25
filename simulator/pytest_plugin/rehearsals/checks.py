"""The checks a rehearsal's `expect` names: each reads the evidence and says what it found."""

from __future__ import annotations

import email.utils
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from simulator.pytest_plugin.rehearsals.adapter import MISSING, attribute, count
from simulator.pytest_plugin.rehearsals.evidence import Check, Entry, Evidence, excerpt
from simulator.pytest_plugin.rehearsals.files import Rehearsal
from simulator.pytest_plugin.rehearsals.guidance import SOCKET_KIND

EPSILON = 1e-3  # clock seconds: float noise between `advance(7)` and a 7 s Retry-After
REFUSED_DOWNLOAD = frozenset({401, 403, 404, 410})  # how object stores and APIs refuse an expired link


def _seconds(values: Iterable[float], shown: int = 8) -> str:
    values = [round(v, 2) for v in values]
    text = ", ".join(f"{v:g}" for v in values[:shown])
    return f"[{text}{', …' if len(values) > shown else ''}]"


def _bounds(spec: Mapping[str, Any]) -> str:
    if "count" in spec:
        return f"exactly {spec['count']}"
    parts = [f"at least {spec['at_least']}" if "at_least" in spec else "",
             f"at most {spec['at_most']}" if "at_most" in spec else ""]
    return " and ".join(p for p in parts if p) or "any number"


def _within(n: int, spec: Mapping[str, Any]) -> bool:
    return (
        ("count" not in spec or n == spec["count"])
        and ("at_least" not in spec or n >= spec["at_least"])
        and ("at_most" not in spec or n <= spec["at_most"])
    )


def _retry_after(entry: Mapping[str, Any]) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date measured against the answer's own `Date`."""
    headers = {k.lower(): v for k, v in (entry.get("response_headers") or {}).items()}
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
        now = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, when - now)


def _retry_hint(ev: Evidence, entry: Mapping[str, Any]) -> tuple[float, str] | None:
    """How long a 429/503 asked the client to wait, and how it said so: Retry-After, else the place in the body
    the guidance names. A WebSocket frame has no headers (the journal may still hold the ones the HTTP rendering
    made; the client never saw them), so there the guidance stands in: `socket.retryWithoutHint` seconds."""
    if int(entry.get("status") or 0) not in (429, 503):
        return None
    g = ev.guidance
    if entry.get("kind") == SOCKET_KIND:
        if g.socket_retry is None:
            return None
        return g.socket_retry, f"no Retry-After on a WebSocket frame; guidance ≥ {g.socket_retry:g} s"
    hint = _retry_after(entry)
    if hint is not None:
        return hint, f"Retry-After {hint:g} s"
    asked = g.asked_wait(entry)  # where a provider writes the wait in the body (Google: RetryInfo.retryDelay)
    return None if asked is None else (asked, f"{g.wait_label} {asked:g} s")


def check_outcome(ev: Evidence, want: str) -> Check:
    outcome = ev.outcome
    described = outcome.describe()
    if want == "result" and outcome.error is not None:
        return Check("outcome", False, f"the adapter {described}; this rehearsal should end in a result",
                     excerpt(ev, ev.entries))
    if want == "error" and outcome.error is None:
        return Check("outcome", False, f"the adapter {described}; this rehearsal cannot succeed, a clear "
                     "error was expected", excerpt(ev, ev.entries))
    return Check("outcome", True, f"the adapter {described}")


def check_submits(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    submits = ev.submits
    n = len(submits)
    if _within(n, spec):
        return Check("submits", True, f"{n} submit{'s' if n != 1 else ''}")
    statuses = sorted({int(e.get("status") or 0) for e in submits})
    return Check("submits", False, f"{n} submits (answered {statuses}); expected {_bounds(spec)}",
                 excerpt(ev, submits))


def check_generations(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    ids = ev.generations()
    n = len(ids)
    if _within(n, spec):
        return Check("generations", True, f"{n} generation{'s' if n != 1 else ''} created")
    keys = [ev.guidance.key_of(e) for e in ev.submits] if ev.guidance.idempotency_key else []
    why = f"; the submits carried {ev.guidance.key_label} {keys}" if keys else ""
    return Check("generations", False, f"{n} generations ({', '.join(ids)}) from one call to the adapter; "
                 f"expected {_bounds(spec)}{why}", excerpt(ev, ev.submits))


def check_idempotency_key(ev: Evidence, _: Any) -> Check:
    g = ev.guidance
    if g.idempotency_key is None:
        return Check("idempotency_key", True, f"n/a: {g.notes['idempotency']}")
    submits = ev.submits
    keys = [g.key_of(e) for e in submits]
    if len(submits) <= 1:
        return Check("idempotency_key", True, f"not resent ({g.key_label} {keys[0] if keys else None!r})")
    if any(key in (None, "") for key in keys):
        return Check("idempotency_key", False, f"resent the submit without {g.key_label} ({keys})",
                     excerpt(ev, submits))
    if len(set(map(str, keys))) > 1:
        return Check("idempotency_key", False, f"resent the submit with a new {g.key_label} each time ({keys})",
                     excerpt(ev, submits))
    return Check("idempotency_key", True, f"resent {len(submits) - 1} time(s) with the same {g.key_label}")


def check_retry_after(ev: Evidence, _: Any) -> Check:
    early, honoured = [], []
    label = ev.guidance.wait_label  # Retry-After, or where the provider writes the wait (Google: RetryInfo)
    for index, entry in enumerate(ev.entries):
        found = _retry_hint(ev, entry)
        if found is None:
            continue
        hint, said = found
        following = ev.entries[index + 1] if index + 1 < len(ev.entries) else None
        if following is None:
            honoured.append(f"{entry['status']} ({said}), not retried")
            continue
        gap = ev.gap(entry, following)
        if gap + EPSILON < hint:
            early.append((entry, following, gap, said))
        else:
            honoured.append(f"{entry['status']} ({said}), next request {gap:.2f} s later")
    if early:
        entry, following, gap, said = early[0]
        socket = entry.get("kind") == SOCKET_KIND
        asked = f"({said})" if socket else f"that asked for {said}"
        doc = f"; {ev.guidance.slug}: {ev.guidance.socket_retry_doc}" if socket else ""
        return Check("retry_after", False, f"sent the next request {gap:.2f} s after a {entry['status']} {asked} "
                     f"({len(early)} early retr{'ies' if len(early) > 1 else 'y'}){doc}",
                     excerpt(ev, [e for pair in early for e in pair[:2]]))
    if not honoured:
        return Check("retry_after", False, f"inconclusive: no answer with {label} reached the client "
                     "(did the adapter submit?)", excerpt(ev, ev.entries))
    return Check("retry_after", True, "; ".join(honoured[:3]))


def check_backoff(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    min_gap, max_attempts = float(spec.get("min_gap", 0)), int(spec.get("max_attempts", 10))
    within = float(spec.get("within", math.inf))
    submits = ev.submits
    gaps = [ev.gap(a, b) for a, b in itertools.pairwise(submits)]
    problems = []
    if len(submits) > max_attempts:
        problems.append(f"{len(submits)} attempts; a client gives up after at most {max_attempts}")
    short = [gap for gap in gaps if gap + EPSILON < min_gap]
    if short:
        problems.append(f"{len(short)} retr{'ies' if len(short) > 1 else 'y'} less than {min_gap:g} s after the "
                        f"refusal (waits {_seconds(gaps)} s)")
    elif gaps and any(gap + EPSILON < gaps[0] for gap in gaps[1:]):
        problems.append(f"waits shrank below the first one ({_seconds(gaps)} s): not a backoff")
    if ev.outcome.elapsed > within:
        problems.append(f"returned after {ev.outcome.elapsed:.0f} clock seconds; expected within {within:g} s")
    if problems:
        return Check("backoff", False, "; ".join(problems), excerpt(ev, submits))
    return Check("backoff", True, f"{len(submits)} attempts, waits {_seconds(gaps)} s, "
                 f"done after {ev.outcome.elapsed:.1f} clock seconds")


def _observations(ev: Evidence) -> dict[str, list[Entry]]:
    """Per generation, the accepted submit and the polls that asked about it, oldest first."""
    by_task: dict[str, list[Entry]] = {}
    for entry in ev.entries:
        if not entry.get("task_id"):
            continue
        accepted_submit = ev.guidance.is_submit(entry) and 200 <= int(entry.get("status") or 0) < 300
        if accepted_submit or ev.guidance.is_poll(entry):
            by_task.setdefault(str(entry["task_id"]), []).append(entry)
    return by_task


def check_poll_pace(ev: Evidence, _: Any) -> Check:
    g = ev.guidance
    fast: list[tuple[Entry, Entry, float]] = []
    gaps: list[float] = []
    for task_id, seen in _observations(ev).items():
        terminal = ev.terminal_at(task_id)
        for before, poll in itertools.pairwise(seen):
            # Only the wait after a successful answer that showed the task still running is the poll pace; a
            # retry after an error is the backoff's business.
            ok = 200 <= int(before.get("status") or 0) < 300
            if not g.is_poll(poll) or not ok or float(before["finished_at"]) >= terminal:
                continue
            gap = ev.gap(before, poll)
            gaps.append(gap)
            if gap + EPSILON < g.min_poll:
                fast.append((before, poll, gap))
    if fast:
        shortest = min(gap for _, _, gap in fast)
        return Check("poll_pace", False, f"{len(fast)} of {len(gaps)} polls came sooner than {g.min_poll:g} s after "
                     f"the previous answer (shortest {shortest:.2f} s); {g.slug}: {g.poll_doc}",
                     excerpt(ev, [poll for _, poll, _ in fast]))
    if not gaps:
        return Check("poll_pace", True, "no polls: the client waited server-side")
    return Check("poll_pace", True, f"{len(gaps)} polls, {min(gaps):.2f} s apart at least "
                 f"(guidance ≥ {g.min_poll:g} s)")


def check_stops_at_terminal(ev: Evidence, _: Any) -> Check:
    g = ev.guidance
    extra: list[Entry] = []
    for task_id, seen in _observations(ev).items():
        terminal = ev.terminal_at(task_id)
        saw = next((i for i, e in enumerate(seen) if float(e["finished_at"]) >= terminal), None)
        if saw is not None:
            extra += [e for e in seen[saw + 1:] if g.is_poll(e)]
    if extra:
        return Check("stops_at_terminal", False, f"{len(extra)} poll{'s' if len(extra) > 1 else ''} after the answer "
                     "that showed the terminal state", excerpt(ev, extra))
    return Check("stops_at_terminal", True, "no poll after the terminal state")


def _delivered(ev: Evidence) -> int:
    return sum(1 for t in ev.tasks if t.get("phase") == "succeeded" for o in t.get("outputs") or []
               if not o.get("blocked"))


def check_downloads(ev: Evidence, _: Any) -> Check:
    downloads = [e for e in ev.entries if ev.guidance.is_download(e)]
    fetched = [e for e in downloads if int(e.get("status") or 0) == 200]
    delivered = _delivered(ev)
    if delivered == 0:
        return Check("downloads", False, "inconclusive: the provider delivered no image", excerpt(ev, ev.entries))
    if len(fetched) < delivered:
        refused = [e for e in downloads if int(e.get("status") or 0) != 200]
        why = f" ({len(refused)} download{'s' if len(refused) != 1 else ''} refused)" if refused else ""
        return Check("downloads", False, f"downloaded {len(fetched)} of the {delivered} images the provider "
                     f"delivered{why}", excerpt(ev, downloads or ev.entries))
    return Check("downloads", True, f"all {delivered} delivered image{'s' if delivered != 1 else ''} downloaded")


def check_refresh(ev: Evidence, _: Any) -> Check:
    g = ev.guidance
    entries = ev.entries
    refused = [i for i, e in enumerate(entries) if g.is_download(e) and int(e.get("status") or 0) in REFUSED_DOWNLOAD]
    if not refused:
        return Check("refresh", False, "inconclusive: no download was refused (did the client download the images?)",
                     excerpt(ev, entries))
    wanted = " or ".join(g.refresh_ops)
    for index in refused:
        later = entries[index + 1:]
        fetched = next((j for j, e in enumerate(later) if g.is_download(e) and int(e.get("status") or 0) == 200), None)
        window = later if fetched is None else later[:fetched]
        if not any(g.is_refresh(e) for e in window):
            what = ("did not ask for a fresh URL ({}): the image was lost" if fetched is None
                    else "downloaded it again without asking for a fresh URL ({})").format(wanted)
            return Check("refresh", False, f"a download was refused ({entries[index]['status']}) and the client "
                         f"{what}",
                         excerpt(ev, entries[index:index + 1 + (fetched or 0) + 1]))
    return Check("refresh", True, f"{len(refused)} refused download(s), each followed by {wanted} for a fresh URL")


def check_reports_blocked(ev: Evidence, _: Any) -> Check:
    withheld = sum(1 for t in ev.tasks for o in t.get("outputs") or [] if o.get("blocked"))
    delivered = _delivered(ev)
    if withheld == 0:
        return Check("reports_blocked", False, "inconclusive: no image was blocked (did the adapter ask for "
                     "images=2?)", excerpt(ev, ev.submits))
    if ev.outcome.error is not None:
        return Check("reports_blocked", False, f"the adapter {ev.outcome.describe()}; a partial batch should "
                     f"return its {delivered} delivered image(s) and report the {withheld} blocked")
    images, blocked = count(ev.outcome.value, "images"), count(ev.outcome.value, "blocked")
    if images is None or blocked is None:
        return Check("reports_blocked", False, f"the adapter returned a {type(ev.outcome.value).__name__} without "
                     "`images` and `blocked`: return an AdapterResult(images=…, blocked=…)")
    if (images, blocked) != (delivered, withheld):
        return Check("reports_blocked", False, f"the result reports {images} image(s) and {blocked} blocked; the "
                     f"provider delivered {delivered} and withheld {withheld}")
    return Check("reports_blocked", True, f"{images} image(s) delivered, {blocked} reported blocked")


def check_webhook_duplicates(ev: Evidence, _: Any) -> Check:
    hooks = excerpt(ev, ev.webhooks)
    if not ev.deliveries:
        return Check("webhook_duplicates", False, "no callback reached the receiver: did the adapter pass "
                     "callback_url on to the provider?", hooks or excerpt(ev, ev.submits))
    if attribute(ev.outcome.value, "on_callback") in (MISSING, None):
        return Check("webhook_duplicates", False, f"{len(ev.deliveries)} callbacks arrived but the adapter gave no "
                     "handler: return AdapterResult(…, on_callback=handler) (True = acted on, False = duplicate)")
    seen: dict[bytes, int] = {}
    wrong = []
    for number, (body, answer) in enumerate(zip(ev.deliveries, ev.handled, strict=True), 1):
        first = seen.setdefault(body, number)
        if isinstance(answer, BaseException):
            wrong.append(f"delivery {number}: on_callback raised {type(answer).__name__}: {answer}")
        elif not isinstance(answer, bool):
            wrong.append(f"delivery {number}: on_callback returned {answer!r}; it must say True (acted on) or False")
        elif first != number and answer:
            wrong.append(f"delivery {number}: acted on a duplicate of delivery {first}")
        elif first == number and not answer:
            wrong.append(f"delivery {number}: ignored the first delivery of an event")
    duplicates = len(ev.deliveries) - len(seen)
    if wrong:
        return Check("webhook_duplicates", False, "; ".join(wrong[:3]) + (f"; … {len(wrong) - 3} more"
                     if len(wrong) > 3 else ""), hooks)
    if duplicates == 0:
        return Check("webhook_duplicates", False, "inconclusive: no delivery was duplicated", hooks)
    return Check("webhook_duplicates", True, f"{len(ev.deliveries)} deliveries ({duplicates} duplicated): each of "
                 f"the {len(seen)} event{'s' if len(seen) != 1 else ''} acted on once")


CHECKS: dict[str, Callable[[Evidence, Any], Check]] = {
    "outcome": check_outcome,
    "submits": check_submits,
    "generations": check_generations,
    "idempotency_key": check_idempotency_key,
    "retry_after": check_retry_after,
    "backoff": check_backoff,
    "poll_pace": check_poll_pace,
    "stops_at_terminal": check_stops_at_terminal,
    "downloads": check_downloads,
    "refresh": check_refresh,
    "reports_blocked": check_reports_blocked,
    "webhook_duplicates": check_webhook_duplicates,
}


def judge(rehearsal: Rehearsal, evidence: Evidence) -> list[Check]:
    checks = [CHECKS[name](evidence, spec) for name, spec in rehearsal.expect.items() if spec is not False]
    if evidence.findings:
        # A client that copes with a failure by sending requests the provider's contract forbids has not
        # passed: the real provider would have answered those differently.
        from simulator.pytest_plugin import request_report

        first = evidence.findings[0].problems[0]
        checks.append(Check("contract", False, f"{len(evidence.findings)} request(s) broke the provider's contract "
                            f"(first: {first.path} [{first.rule}] {first.message})",
                            request_report.render(evidence.findings).splitlines()[2:14]))
    return checks

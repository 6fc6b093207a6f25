"""Client rehearsals: run a user's client through each failure in `contracts/rehearsals/` and score it.

The user provides one fixture, `nanobanana_adapter`, returning a callable that runs one generation through
their client:

    @pytest.fixture
    def nanobanana_adapter():
        def adapter(sim, prompt, **options):          # options: images=N, callback_url=URL (when asked)
            client = MyClient(sim.api_key(), base_url=sim.base_url(), sleep=sim.sleep)
            return client.generate(prompt, **options)  # or AdapterResult(images=…, blocked=…, on_callback=…)
        return adapter

and `pytest --nanobanana-rehearse=PROVIDER` replaces the collected tests with one item per rehearsal. Each
item puts the rehearsal's scenario and fault rules in force on a freshly reset simulator, calls the adapter
once (an exception it raises is an outcome, not a crash), then judges what the client did from the journal
(requests, statuses, clock times, task IDs) and from the adapter's return value where the behaviour lives
only there (a partial batch's blocked image, which webhook deliveries were acted on). The end of the run
prints a scorecard: each rehearsal passed, failed (why, with a journal excerpt) or did not apply.

Expectations are provider-neutral: what a "submit", a "poll", a "download" or a "fresh URL" is for each
provider, its minimum poll interval and its idempotency key come from `submitOperations` and
`clientGuidance` in `schemas/<slug>/provider.json`. A rehearsal file:

    # <header comment: what happens, and when a client passes>
    name: retry-after-429
    title: retries a 429 no sooner than Retry-After         # the scorecard's line
    requires: [batch]                                       # batch / callbacks / idempotency, else n/a
    scenario: expired-urls                                  # shipped scenario(s) to load
    options: {civitai: {url_ttl_seconds: 15}}               # provider options
    faults: [{match: {operation: $submit}, when: {times: 1}, do: {error: rate_limited, retry_after: 7}}]
    adapter: {images: 2, callback_url: $receiver}           # options the adapter is called with
    tick: 0.5                                               # clock seconds before every provider request
    expect: {outcome: result, retry_after: true}            # names in CHECKS, with their parameters

`$submit`, `$poll` and `$download` stand for the provider's own operations (and Runware's task type);
`$receiver` is the URL of a webhook receiver the rehearsal runs.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.faults.plan import lookup
from simulator.faults.scenario import header, read_mapping
from simulator.options import provider_data
from simulator.pytest_plugin.settings import MARKER, Settings, SettingsError
from simulator.resources import contracts_dir

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

Entry = dict[str, Any]
Adapter = Callable[..., Any]

ADAPTER_FIXTURE = "nanobanana_adapter"
PROMPT = "a banana astronaut"
# The clock moves this much before every provider request, so a client that never sleeps (and so never moves
# the virtual clock) still sees its task progress and ends. Gaps are measured from an answer (journaled after
# the tick) to the next request (journaled before it), so the tick never counts as the client's own pause.
DEFAULT_TICK = 0.5
EPSILON = 1e-3  # clock seconds: float noise between `advance(7)` and a 7 s Retry-After
REFUSED_DOWNLOAD = frozenset({401, 403, 404, 410})  # how object stores and APIs refuse an expired link
OUTCOME_SHOWN = 90  # characters of a passing rehearsal's outcome on its scorecard line
EXCERPT_HEAD, EXCERPT_TAIL = 3, 1  # a long run of requests is shown by its first and last few

REHEARSAL_KEYS = frozenset({"name", "title", "requires", "scenario", "options", "faults", "adapter", "tick",
                            "expect"})
REQUIREMENTS = frozenset({"batch", "callbacks", "idempotency"})
OUTCOMES = ("result", "error", "any")
ALIASES = ("$submit", "$poll", "$download")
RECEIVER = "$receiver"

_SCORECARD: pytest.StashKey[Scorecard] = pytest.StashKey()
_REHEARSAL: pytest.StashKey[tuple[Rehearsal, str]] = pytest.StashKey()
_MODULES: pytest.StashKey[list[pytest.Module]] = pytest.StashKey()


class RehearsalError(ValueError):
    """A rehearsal file the runner cannot use (unknown key, expectation or alias)."""


# -- what the adapter returns ---------------------------------------------------------------------------


@dataclass
class AdapterResult:
    """What an adapter may return when its client's own result does not say it in these words.

    `images` and `blocked` are counts or sequences (the delivered images; the images the provider withheld),
    `on_callback(body: bytes) -> bool` is the client's webhook handler (True: it acted on the event; False: it
    recognised a duplicate). Any object with these attributes will do, e.g. the example clients' `Result`.
    """

    images: int | Sized = 0
    blocked: int | Sized = 0
    on_callback: Callable[[bytes], Any] | None = None
    value: Any = None  # the client's own result, for the adapter's convenience


_MISSING = object()


def _attribute(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, _MISSING)
    return getattr(value, name, _MISSING)


def _count(value: Any, name: str) -> int | None:
    found = _attribute(value, name)
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    if isinstance(found, Sized) and not isinstance(found, (str, bytes)):
        return len(found)
    return None


# -- rehearsal files --------------------------------------------------------------------------------------


def rehearsals_dir() -> Path:
    return contracts_dir() / "rehearsals"


@dataclass(frozen=True)
class Rehearsal:
    name: str
    title: str
    description: str
    requires: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    faults: tuple[Mapping[str, Any], ...] = ()
    adapter: Mapping[str, Any] = field(default_factory=dict)
    tick: float = DEFAULT_TICK
    expect: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str) -> Rehearsal:
        document = read_mapping(text, source, REHEARSAL_KEYS, "rehearsal", RehearsalError)
        name = str(document.get("name") or source)
        requires = tuple(document.get("requires") or ())
        if set(requires) - REQUIREMENTS:
            raise RehearsalError(f"{name}: requires must be among {sorted(REQUIREMENTS)}")
        scenario = document.get("scenario")
        scenarios = () if scenario is None else (scenario,) if isinstance(scenario, str) else tuple(scenario)
        expect = dict(document.get("expect") or {})
        unknown = set(expect) - set(CHECKS)
        if unknown or not expect:
            raise RehearsalError(f"{name}: expect needs some of {sorted(CHECKS)} (unknown: {sorted(unknown)})")
        if expect.get("outcome", "any") not in OUTCOMES:
            raise RehearsalError(f"{name}: expect.outcome must be one of {OUTCOMES}")
        faults = tuple(document.get("faults") or ())
        for rule in faults:
            operation = (rule.get("match") or {}).get("operation")
            if isinstance(operation, str) and operation.startswith("$") and operation not in ALIASES:
                raise RehearsalError(f"{name}: unknown operation alias {operation!r}; use one of {ALIASES}")
        tick = document.get("tick", DEFAULT_TICK)
        if isinstance(tick, bool) or not isinstance(tick, (int, float)) or tick < 0:
            raise RehearsalError(f"{name}: tick must be a number of seconds ≥ 0")
        return cls(
            name=name, title=str(document.get("title") or name), description=header(text), requires=requires,
            scenarios=scenarios, options=dict(document.get("options") or {}), faults=faults,
            adapter=dict(document.get("adapter") or {}), tick=float(tick), expect=expect,
        )

    @classmethod
    def load(cls, path: Path) -> Rehearsal:
        return cls.parse(path.read_text(encoding="utf-8"), path.stem)


def shipped() -> list[Rehearsal]:
    return [Rehearsal.load(path) for path in sorted(rehearsals_dir().glob("*.yaml"))]


# -- a provider's guidance ---------------------------------------------------------------------------------


def _body_holds(body: Any, wanted: Mapping[str, Any]) -> bool:
    return all(lookup(body, path) == value for path, value in wanted.items())


@dataclass(frozen=True)
class Guidance:
    """`submitOperations` and `clientGuidance` of one provider.json: what each role's requests look like."""

    slug: str
    submit_ops: tuple[str, ...]
    submit_body: Mapping[str, Any]
    poll_ops: tuple[str, ...]
    poll_body: Mapping[str, Any]
    min_poll: float
    poll_doc: str
    download_ops: tuple[str, ...]
    refresh_ops: tuple[str, ...]
    refresh_body: Mapping[str, Any]
    idempotency_key: str | None
    callbacks: bool
    batch: bool
    notes: Mapping[str, str]  # why a capability is missing, for the scorecard

    @classmethod
    def load(cls, slug: str) -> Guidance:
        data = provider_data(slug)
        guide = data.get("clientGuidance")
        if not isinstance(guide, Mapping):
            raise RehearsalError(f"schemas/{slug}/provider.json has no clientGuidance: it cannot be rehearsed")
        poll, refresh = guide.get("poll") or {}, guide.get("refreshUrl") or {}
        idempotency = guide.get("idempotency")
        return cls(
            slug=slug,
            submit_ops=tuple(data["submitOperations"]),
            submit_body=(guide.get("submit") or {}).get("body", {}),
            poll_ops=tuple(poll.get("operations", ())),
            poll_body=poll.get("body", {}),
            min_poll=float(poll.get("minSeconds", 0)),
            poll_doc=str(poll.get("doc", "")),
            download_ops=tuple((guide.get("download") or {}).get("operations", ())),
            refresh_ops=tuple(refresh.get("operations", ())),
            refresh_body=refresh.get("body", {}),
            idempotency_key=idempotency.get("key") if isinstance(idempotency, Mapping) else None,
            callbacks=bool(guide.get("callbacks")),
            batch=bool(guide.get("batch")),
            notes={
                "idempotency": str(guide.get("idempotencyDoc", "no idempotency mechanism")),
                "callbacks": str(guide.get("callbacksDoc", "no callbacks")),
                "batch": str(guide.get("batchDoc", "no batches")),
            },
        )

    def lacks(self, requirement: str) -> str | None:
        has = {"batch": self.batch, "callbacks": self.callbacks, "idempotency": self.idempotency_key is not None}
        return None if has[requirement] else self.notes[requirement]

    # Journal entries by role. A request is only one role, but Runware's one route carries all of them, told
    # apart by the task type in the body.
    def is_submit(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.submit_ops and _body_holds(entry.get("request_body"), self.submit_body)

    def is_poll(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.poll_ops and _body_holds(entry.get("request_body"), self.poll_body)

    def is_download(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.download_ops

    def is_refresh(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") in self.refresh_ops and _body_holds(entry.get("request_body"),
                                                                          self.refresh_body)

    def expand(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """A rehearsal's fault rule for this provider: `$submit`/`$poll`/`$download` become its operations (and
        body discriminators), and the rule is scoped to the provider."""
        match = dict(rule.get("match") or {})
        alias = match.get("operation")
        if alias in ALIASES:
            operations, body = {
                "$submit": (self.submit_ops, self.submit_body),
                "$poll": (self.poll_ops, self.poll_body),
                "$download": (self.download_ops, {}),
            }[alias]
            match["operation"] = list(operations)
            if body:
                match["body"] = {**body, **(match.get("body") or {})}
        match.setdefault("provider", self.slug)
        return {**rule, "match": match}

    def key_of(self, entry: Mapping[str, Any]) -> Any:
        """The idempotency key a submit carried (`body.x.y`, `header.name`, `query.name`), or None."""
        if self.idempotency_key is None:
            return None
        source, _, name = self.idempotency_key.partition(".")
        if source == "header":
            headers = {k.lower(): v for k, v in (entry.get("request_headers") or {}).items()}
            return headers.get(name.lower())
        if source == "query":
            values = (entry.get("query") or {}).get(name)
            return values[0] if values else None
        found = lookup(entry.get("request_body"), name)
        return found if isinstance(found, (str, int, float)) else None

    @property
    def key_label(self) -> str:
        return (self.idempotency_key or "").partition(".")[2] or "an idempotency key"


# -- what happened ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0  # clock seconds the adapter took

    def describe(self, limit: int = 160) -> str:
        if self.error is not None:
            text = f"raised {type(self.error).__name__}: {self.error}"
        else:
            images, blocked = _count(self.value, "images"), _count(self.value, "blocked")
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
    entries: list[Entry]  # HTTP exchanges with the rehearsed provider, oldest first
    webhooks: list[Entry]
    tasks: list[Entry]
    outcome: Outcome
    line: Callable[[Mapping[str, Any]], str]  # a journal entry as the scorecard shows it (clock offset …)
    deliveries: list[bytes] = field(default_factory=list)
    handled: list[Any] = field(default_factory=list)  # what on_callback answered per delivery (or raised)
    findings: Sequence[Any] = ()  # contract-check findings

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


def _fault_note(entry: Mapping[str, Any]) -> str:
    """What the rehearsal did to this exchange, so an excerpt shows why e.g. a 202 never reached the client."""
    actions = []
    for fired in entry.get("faults") or []:
        do = fired.get("do") or {}
        kind = next((key for key in ("error", "network", "task", "webhook") if key in do), None)
        if kind is not None:
            actions.append(" ".join(str(part) for part in (kind, do[kind], do.get("status")) if part is not None))
    return f"  ⚡ {', '.join(actions)}" if actions else ""


def _excerpt(evidence: Evidence, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    # A signed result URL's query (signature, expiry) is long and says nothing about the client's behaviour.
    shown = [{**entry, "query": {}} if evidence.guidance.is_download(entry) else entry for entry in entries]
    lines = [evidence.line(entry) + _fault_note(entry) for entry in shown]
    if len(lines) > EXCERPT_HEAD + EXCERPT_TAIL + 1:
        hidden = len(lines) - EXCERPT_HEAD - EXCERPT_TAIL
        lines = [*lines[:EXCERPT_HEAD], f"  … {hidden} more", *lines[-EXCERPT_TAIL:]]
    return lines


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


# -- the checks: each reads the evidence and says what it found ----------------------------------------------


def check_outcome(ev: Evidence, want: str) -> Check:
    outcome = ev.outcome
    described = outcome.describe()
    if want == "result" and outcome.error is not None:
        return Check("outcome", False, f"the adapter {described}; this rehearsal should end in a result",
                     _excerpt(ev, ev.entries))
    if want == "error" and outcome.error is None:
        return Check("outcome", False, f"the adapter {described}; this rehearsal cannot succeed, a clear "
                     "error was expected", _excerpt(ev, ev.entries))
    return Check("outcome", True, f"the adapter {described}")


def check_submits(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    submits = ev.submits
    n = len(submits)
    if _within(n, spec):
        return Check("submits", True, f"{n} submit{'s' if n != 1 else ''}")
    statuses = sorted({int(e.get("status") or 0) for e in submits})
    return Check("submits", False, f"{n} submits (answered {statuses}); expected {_bounds(spec)}",
                 _excerpt(ev, submits))


def check_generations(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    ids = ev.generations()
    n = len(ids)
    if _within(n, spec):
        return Check("generations", True, f"{n} generation{'s' if n != 1 else ''} created")
    keys = [ev.guidance.key_of(e) for e in ev.submits] if ev.guidance.idempotency_key else []
    why = f"; the submits carried {ev.guidance.key_label} {keys}" if keys else ""
    return Check("generations", False, f"{n} generations ({', '.join(ids)}) from one call to the adapter; "
                 f"expected {_bounds(spec)}{why}", _excerpt(ev, ev.submits))


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
                     _excerpt(ev, submits))
    if len(set(map(str, keys))) > 1:
        return Check("idempotency_key", False, f"resent the submit with a new {g.key_label} each time ({keys})",
                     _excerpt(ev, submits))
    return Check("idempotency_key", True, f"resent {len(submits) - 1} time(s) with the same {g.key_label}")


def check_retry_after(ev: Evidence, _: Any) -> Check:
    early, honoured = [], []
    for index, entry in enumerate(ev.entries):
        hint = _retry_after(entry)
        if hint is None or int(entry.get("status") or 0) not in (429, 503):
            continue
        following = ev.entries[index + 1] if index + 1 < len(ev.entries) else None
        if following is None:
            honoured.append(f"{entry['status']} (Retry-After {hint:g} s), not retried")
            continue
        gap = float(following["at"]) - float(entry["finished_at"])
        if gap + EPSILON < hint:
            early.append((entry, following, gap, hint))
        else:
            honoured.append(f"{entry['status']} (Retry-After {hint:g} s), next request {gap:.2f} s later")
    if early:
        entry, following, gap, hint = early[0]
        return Check("retry_after", False, f"sent the next request {gap:.2f} s after a {entry['status']} that "
                     f"asked for Retry-After {hint:g} s ({len(early)} early retr{'ies' if len(early) > 1 else 'y'})",
                     _excerpt(ev, [e for pair in early for e in pair[:2]]))
    if not honoured:
        return Check("retry_after", False, "inconclusive: no answer with Retry-After reached the client "
                     "(did the adapter submit?)", _excerpt(ev, ev.entries))
    return Check("retry_after", True, "; ".join(honoured[:3]))


def check_backoff(ev: Evidence, spec: Mapping[str, Any]) -> Check:
    min_gap, max_attempts = float(spec.get("min_gap", 0)), int(spec.get("max_attempts", 10))
    within = float(spec.get("within", math.inf))
    submits = ev.submits
    gaps = [float(b["at"]) - float(a["finished_at"]) for a, b in itertools.pairwise(submits)]
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
        return Check("backoff", False, "; ".join(problems), _excerpt(ev, submits))
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
            gap = float(poll["at"]) - float(before["finished_at"])
            gaps.append(gap)
            if gap + EPSILON < g.min_poll:
                fast.append((before, poll, gap))
    if fast:
        shortest = min(gap for _, _, gap in fast)
        return Check("poll_pace", False, f"{len(fast)} of {len(gaps)} polls came sooner than {g.min_poll:g} s after "
                     f"the previous answer (shortest {shortest:.2f} s); {g.slug}: {g.poll_doc}",
                     _excerpt(ev, [poll for _, poll, _ in fast]))
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
                     "that showed the terminal state", _excerpt(ev, extra))
    return Check("stops_at_terminal", True, "no poll after the terminal state")


def _delivered(ev: Evidence) -> int:
    return sum(1 for t in ev.tasks if t.get("phase") == "succeeded" for o in t.get("outputs") or []
               if not o.get("blocked"))


def check_downloads(ev: Evidence, _: Any) -> Check:
    downloads = [e for e in ev.entries if ev.guidance.is_download(e)]
    fetched = [e for e in downloads if int(e.get("status") or 0) == 200]
    delivered = _delivered(ev)
    if delivered == 0:
        return Check("downloads", False, "inconclusive: the provider delivered no image", _excerpt(ev, ev.entries))
    if len(fetched) < delivered:
        refused = [e for e in downloads if int(e.get("status") or 0) != 200]
        why = f" ({len(refused)} download{'s' if len(refused) != 1 else ''} refused)" if refused else ""
        return Check("downloads", False, f"downloaded {len(fetched)} of the {delivered} images the provider "
                     f"delivered{why}", _excerpt(ev, downloads or ev.entries))
    return Check("downloads", True, f"all {delivered} delivered image{'s' if delivered != 1 else ''} downloaded")


def check_refresh(ev: Evidence, _: Any) -> Check:
    g = ev.guidance
    entries = ev.entries
    refused = [i for i, e in enumerate(entries) if g.is_download(e) and int(e.get("status") or 0) in REFUSED_DOWNLOAD]
    if not refused:
        return Check("refresh", False, "inconclusive: no download was refused (did the client download the images?)",
                     _excerpt(ev, entries))
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
                         _excerpt(ev, entries[index:index + 1 + (fetched or 0) + 1]))
    return Check("refresh", True, f"{len(refused)} refused download(s), each followed by {wanted} for a fresh URL")


def check_reports_blocked(ev: Evidence, _: Any) -> Check:
    withheld = sum(1 for t in ev.tasks for o in t.get("outputs") or [] if o.get("blocked"))
    delivered = _delivered(ev)
    if withheld == 0:
        return Check("reports_blocked", False, "inconclusive: no image was blocked (did the adapter ask for "
                     "images=2?)", _excerpt(ev, ev.submits))
    if ev.outcome.error is not None:
        return Check("reports_blocked", False, f"the adapter {ev.outcome.describe()}; a partial batch should "
                     f"return its {delivered} delivered image(s) and report the {withheld} blocked")
    images, blocked = _count(ev.outcome.value, "images"), _count(ev.outcome.value, "blocked")
    if images is None or blocked is None:
        return Check("reports_blocked", False, f"the adapter returned a {type(ev.outcome.value).__name__} without "
                     "`images` and `blocked`: return an AdapterResult(images=…, blocked=…)")
    if (images, blocked) != (delivered, withheld):
        return Check("reports_blocked", False, f"the result reports {images} image(s) and {blocked} blocked; the "
                     f"provider delivered {delivered} and withheld {withheld}")
    return Check("reports_blocked", True, f"{images} image(s) delivered, {blocked} reported blocked")


def check_webhook_duplicates(ev: Evidence, _: Any) -> Check:
    hooks = _excerpt(ev, ev.webhooks)
    if not ev.deliveries:
        return Check("webhook_duplicates", False, "no callback reached the receiver: did the adapter pass "
                     "callback_url on to the provider?", hooks or _excerpt(ev, ev.submits))
    if _attribute(ev.outcome.value, "on_callback") in (_MISSING, None):
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


# -- the scorecard -----------------------------------------------------------------------------------------


@dataclass
class Verdict:
    rehearsal: Rehearsal
    slug: str
    where: str  # the node the rehearsal hung from: whose adapter it ran
    status: str  # passed / failed / skipped
    checks: list[Check] = field(default_factory=list)
    reason: str = ""  # why it was skipped
    seconds: float = 0.0  # real time it took

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def report(self) -> str:
        """The failing item's message: what went wrong, each with its journal excerpt."""
        lines = [f"rehearsal {self.slug}/{self.rehearsal.name} failed: {self.rehearsal.title}"]
        for check in self.failed:
            lines.append(f"  ✗ {check.name}: {check.message}")
            lines += [f"      {line}" for line in check.excerpt]
        passed = [check for check in self.checks if check.ok]
        lines += [f"  ✓ {check.name}: {check.message}" for check in passed]
        return "\n".join(lines)


@dataclass
class Scorecard:
    verdicts: list[Verdict] = field(default_factory=list)

    def render(self) -> list[str]:
        lines: list[str] = []
        groups: dict[tuple[str, str], list[Verdict]] = {}
        for verdict in self.verdicts:
            groups.setdefault((verdict.slug, verdict.where), []).append(verdict)
        width = max((len(v.rehearsal.name) for v in self.verdicts), default=0) + 2
        for (slug, where), verdicts in groups.items():
            counts = {s: sum(1 for v in verdicts if v.status == s) for s in ("passed", "failed", "skipped")}
            seconds = sum(v.seconds for v in verdicts)
            lines.append(f"{slug} · adapter in {where or '(root)'} · {counts['passed']} passed, {counts['failed']} "
                         f"failed, {counts['skipped']} not applicable or skipped · {seconds:.1f} s")
            for verdict in verdicts:
                label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[verdict.status]
                lines.append(f"  {label}  {verdict.rehearsal.name:<{width}}{verdict.rehearsal.title}")
                if verdict.status == "skipped":
                    lines.append(f"        {verdict.reason}")
                elif verdict.status == "passed":
                    seen = "; ".join(c.message for c in verdict.checks if c.name != "outcome")
                    outcome = next((c.message for c in verdict.checks if c.name == "outcome"), "")
                    outcome = outcome if len(outcome) <= OUTCOME_SHOWN else outcome[: OUTCOME_SHOWN - 1] + "…"
                    lines.append(f"        {seen} ({outcome})" if seen else f"        {outcome}")
                else:
                    for check in verdict.failed:
                        lines.append(f"        ✗ {check.name}: {check.message}")
                        lines += [f"            {line}" for line in check.excerpt]
        return lines


# -- pytest wiring -----------------------------------------------------------------------------------------


def note_module(module: pytest.Module) -> None:
    """Remember each test module as collection reaches it (items alone would miss a module that holds only
    the adapter fixture)."""
    module.config.stash.setdefault(_MODULES, []).append(module)


def _anchors(session: pytest.Session, items: Sequence[pytest.Item]) -> list[pytest.Module]:
    """The test modules to hang rehearsals from: for each distinct `nanobanana_adapter` fixture, the first
    collected module that sees it. Hanging them there gives them the user's fixture, conftest and markers,
    and node IDs that read like the user's own tests."""
    manager = session._fixturemanager  # pytest's own resolver: visibility follows conftests and overrides exactly
    modules = [*session.config.stash.get(_MODULES, []), *(item.getparent(pytest.Module) for item in items)]
    anchors: dict[int, pytest.Module] = {}
    for module in modules:
        if module is None:
            continue
        definitions = manager.getfixturedefs(ADAPTER_FIXTURE, module)
        if definitions:
            anchors.setdefault(id(definitions[-1]), module)  # the last one is the closest override
    return list(anchors.values())


def collect(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Replace the collected tests with one item per (adapter, provider, rehearsal)."""
    from simulator.providers import REGISTRY

    slugs = list(dict.fromkeys(config.option.nanobanana_rehearse))
    unknown = [slug for slug in slugs if slug not in REGISTRY]
    if unknown:
        raise pytest.UsageError(f"--nanobanana-rehearse: unknown provider {unknown}; use one of {sorted(REGISTRY)}")
    anchors = _anchors(session, items)
    if not anchors:
        raise pytest.UsageError(
            f"--nanobanana-rehearse: no collected test module sees a `{ADAPTER_FIXTURE}` fixture; define it in a "
            "test module or in a conftest.py next to one"
        )
    try:
        rehearsals = shipped()
        for slug in slugs:
            Guidance.load(slug)
    except RehearsalError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_SCORECARD] = Scorecard()
    generated: list[pytest.Item] = []
    for anchor, slug, rehearsal in itertools.product(anchors, slugs, rehearsals):
        item = pytest.Function.from_parent(anchor, name=f"rehearse[{slug}-{rehearsal.name}]", callobj=run_rehearsal)
        item.stash[_REHEARSAL] = (rehearsal, slug)
        generated.append(item)
    # The user's own tests are not what this run is for; they are reported as deselected, as with -k.
    config.hook.pytest_deselected(items=list(items))
    items[:] = generated


def _settings(item: pytest.Item, rehearsal: Rehearsal, slug: str) -> Settings:
    """The user's settings (mode, seed, strict …) with the rehearsal's provider, clock, scenario and options."""
    settings = Settings.from_config(item.config).checked().with_markers(item.iter_markers(MARKER))
    options: dict[str, dict[str, Any]] = {name: dict(values) for name, values in settings.options.items()}
    for name, values in rehearsal.options.items():
        options.setdefault(name, {}).update(values)
    # A virtual clock always: the rehearsals wait minutes of provider time, and the tick keeps clients that
    # never sleep moving. The rehearsal's own scenarios replace any the command line asked for.
    return replace(settings, provider=slug, scenarios=rehearsal.scenarios, clock="autojump", tick=rehearsal.tick,
                   options=options).checked()


def _adapter_options(rehearsal: Rehearsal, sim: Nanobanana) -> tuple[dict[str, Any], Any]:
    receiver = None
    options: dict[str, Any] = {}
    for name, value in rehearsal.adapter.items():
        if value == RECEIVER:
            receiver = receiver or sim.receiver()
            value = receiver.url
        options[name] = value
    return options, receiver


def run_rehearsal(request: pytest.FixtureRequest, nanobanana_adapter: Adapter) -> None:
    """One rehearsal against the adapter: arrange the failure, run one generation, judge the journal."""
    from simulator.control_client import ControlError
    from simulator.pytest_plugin import _collect_coverage, _pool
    from simulator.pytest_plugin.session import Nanobanana

    item = request.node
    rehearsal, slug = item.stash[_REHEARSAL]
    scorecard = item.config.stash[_SCORECARD]
    where = item.parent.nodeid if item.parent is not None else ""
    # Failed until judged: if the runner itself breaks, the scorecard must not show the rehearsal as passed.
    verdict = Verdict(rehearsal, slug, where, "failed", [Check("runner", False, "the rehearsal did not run to the "
                                                               "end (see the test's error)")])
    scorecard.verdicts.append(verdict)
    started = time.perf_counter()
    try:
        guidance = Guidance.load(slug)
        lacking = [note for need in rehearsal.requires if (note := guidance.lacks(need))]
        if lacking:
            verdict.status, verdict.reason = "skipped", f"n/a for {slug}: {lacking[0]}"
            pytest.skip(verdict.reason)
        try:
            settings = _settings(item, rehearsal, slug)
        except SettingsError as exc:
            verdict.status, verdict.checks = "failed", [Check("settings", False, str(exc))]
            pytest.fail(str(exc), pytrace=False)
        sim = Nanobanana(_pool(item.config).get(settings.mode, False), settings)
        try:
            sim.start()
            sim.control.add_faults(*(guidance.expand(rule) for rule in rehearsal.faults))
        except (KeyError, ControlError) as exc:
            sim.finish()
            message = f"nanobanana rehearsal {rehearsal.name}: {exc.args[0] if exc.args else exc}"
            verdict.status, verdict.checks = "failed", [Check("setup", False, message)]
            pytest.fail(message, pytrace=False)
        try:
            evidence = _rehearse(sim, rehearsal, guidance, nanobanana_adapter, verdict)
            _collect_coverage(item.config, sim)
        finally:
            sim.finish()
        verdict.checks = judge(rehearsal, evidence)
        verdict.status = "failed" if verdict.failed else "passed"
    finally:
        verdict.seconds = time.perf_counter() - started
    if verdict.failed:
        pytest.fail(verdict.report(), pytrace=False)


def _rehearse(sim: Nanobanana, rehearsal: Rehearsal, guidance: Guidance, adapter: Adapter,
              verdict: Verdict) -> Evidence:
    options, receiver = _adapter_options(rehearsal, sim)
    clock_start = sim.now()
    outcome = Outcome()
    try:
        outcome.value = adapter(sim, PROMPT, **options)
    except pytest.skip.Exception as exc:
        # The adapter may opt out (`pytest.skip("no callbacks")`): the scorecard says so instead of failing.
        verdict.status, verdict.reason = "skipped", f"skipped by the adapter: {exc.msg}"
        raise
    except Exception as exc:  # a clear error is a legitimate outcome of several rehearsals; it is judged
        outcome.error = exc
    outcome.elapsed = sim.now() - clock_start
    deliveries: list[bytes] = []
    handled: list[Any] = []
    if receiver is not None:
        sim.flush_webhooks()  # callbacks already under way when the generation ended
        deliveries = [request.body for request in receiver.requests]
        handler = _attribute(outcome.value, "on_callback")
        if callable(handler):
            for body in deliveries:
                try:
                    handled.append(handler(body))
                except Exception as exc:  # judged as a wrong answer to that delivery
                    handled.append(exc)
    entries = [e for e in sim.journal(kind="http") if e.get("provider") == guidance.slug]
    return Evidence(
        guidance=guidance, entries=entries, webhooks=sim.webhooks(guidance.slug),
        tasks=sim.tasks(guidance.slug), outcome=outcome, line=sim._line, deliveries=deliveries, handled=handled,
        findings=sim.findings() if sim.settings.contract else (),
    )


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    scorecard = config.stash.get(_SCORECARD, None)
    if scorecard is None or not scorecard.verdicts:
        return
    terminalreporter.write_sep("=", "nanobanana rehearsal scorecard")
    for line in scorecard.render():
        terminalreporter.write_line(line)

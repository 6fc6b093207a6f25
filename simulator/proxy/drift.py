"""The drift report: per recorded exchange, the documented contract, the real answer and the simulator's answer.

For each cassette a fresh simulator (the recording's provider, its options, seed 0, a virtual clock) is asked every
recorded request at its recorded offset, with the ids the real provider minted swapped for the ones the simulator
minted (simulator.proxy.align). A poll whose task the simulator has not caught up with (it still shows a state the
real task has already left) is asked again as the simulator's clock runs on, so a queue that was quicker this time
shows as timing, not as a different body. Then, per exchange:

- the real answer against the response schemas (simulator.self_check): a broken documented type or required
  field is `schema`, a value outside a documented enum (a status word, an error code) is `enum`, a field the
  schema closes out is `undocumented-field`; on an error status, `error-shape`. The provider moved.
- the real answer against the simulator's: another status, another body shape (fields by path, arrays merged),
  other header names; `error-shape` for errors, `schema` otherwise. Where the real answer keeps the contract the
  simulator moved (or the documents leave room for both, which the note says).
- per task, the lifecycle: the state words in order (at the paths provider.json `lifecycleStates` names for each
  operation: Runware's `data[].status`, Civitai's workflow, step and job statuses, a Gemini batch's `state` and
  `done`), the words that are new or vanished, and when the last state was first seen, real vs simulated; a time
  outside half to twice the real one is a `lifecycle` timing finding;
  and the callbacks each request brought back, in order (their state words, or `error`/`result`): the simulator's
  go to a receiver of the report's own, never to the client's recorded URL.

The frames a provider sent on a WebSocket, and a download whose signed link came in one (the cassette redacted its
signature), are checked against the documented contract only: the simulator is not asked them.

Values are never compared, only statuses, shapes and state words, so ids, timestamps, signatures and seeds are
never drift; nor are answers refusing the recording's key or wallet (401, 402, 403: a `preflight` note says to
re-record). Identical findings are reported once, with every exchange that showed them. Exit status: 1 when any
finding is an error (or, with --strict, a warning), else 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jsonschema import ValidationError

from simulator import self_check
from simulator.clock import VirtualClock
from simulator.pipeline import Answer
from simulator.pipeline.answer import JSON
from simulator.proxy.align import IdMap, ids_in, same, strings
from simulator.proxy.callbacks import with_callback_urls
from simulator.proxy.cassette import Cassette, body_value, decode_body, load, recorded_answer, request_of
from simulator.proxy.redaction import REDACTED
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver
from simulator.validation import dotted_path

SEVERITIES = ("error", "warning", "info")
DRIFT_KEY = "drift-check-key"
STATE_JOINER = " / "
TIMING_BAND = (0.5, 2.0)
CALLBACK_HORIZON = 3600.0
# How long the simulator's clock may run on for a task that is behind the real one: second by second for the first
# two minutes, then doubling, up to a day.
CATCH_UP_LINEAR = 120.0
CATCH_UP_HORIZON = 86400.0
# Answers about the recording's key or wallet, not about the contract: re-record rather than report them as drift.
KEY_REFUSALS = {401: "the provider refused the key the session used: re-record with a valid key",
                403: "the provider refused the key the session used: re-record with a valid key",
                402: "the account was out of credit when recorded: re-record with a funded key"}
ENUM_RULES = frozenset({"enum", "const"})
UNDOCUMENTED_RULES = frozenset({"additionalProperties", "unevaluatedProperties"})


def report(paths: list[Path]) -> dict[str, Any]:
    """The findings of every cassette, the interactions checked, and a summary by severity and kind."""
    findings: list[dict[str, Any]] = []
    interactions: list[dict[str, Any]] = []
    for path in paths:
        cassette = load(path)
        findings.extend(asyncio.run(_cassette_findings(cassette)))
        interactions.extend({"cassette": str(path), "seq": exchange["seq"], "operation": exchange["operation"],
                             "request": f"{exchange['request']['method']} {exchange['request']['path']}"}
                            for exchange in cassette.exchanges)
        interactions.extend({"cassette": str(path), "seq": frame["seq"], "operation": frame["operation"],
                             "request": f"WebSocket frame {frame['direction']} on {frame['path']}"}
                            for frame in cassette.frames)
    return {"cassettes": [str(path) for path in paths], "interactions": interactions, "findings": findings,
            "summary": summarize(findings)}


def summarize(findings: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {severity: sum(f["severity"] == severity for f in findings) for severity in SEVERITIES}
    summary["by_kind"] = {kind: sum(f["kind"] == kind for f in findings) for kind in sorted({f["kind"] for f in
                                                                                            findings})}
    return summary


def fails(finding: dict[str, Any], *, strict: bool = False) -> bool:
    """Whether a finding fails the job: an error, or with `strict` a warning."""
    return finding["severity"] == "error" or (strict and finding["severity"] == "warning")


def exit_status(found: dict[str, Any], *, strict: bool = False) -> int:
    return 1 if any(fails(finding, strict=strict) for finding in found["findings"]) else 0


class _Findings:
    """Findings of one cassette, merged when the same drift shows in several exchanges."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self.items: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, seq: int, *, kind: str, severity: str, side: str, operation: str, location: str, fact: str,
            real: Any = None, simulator: Any = None, note: str | None = None) -> None:
        key = (kind, operation, location, json.dumps(real, sort_keys=True, default=str),
               json.dumps(simulator, sort_keys=True, default=str))
        found = self.items.get(key)
        if found is None:
            found = {"kind": kind, "severity": severity, "side": side, "provider": self.cassette.provider,
                     "operation": operation, "location": location, "fact": fact, "real": real,
                     "simulator": simulator, "exchanges": [], "cassette": str(self.cassette.path)}
            if note:
                found["note"] = note
            self.items[key] = found
        found["exchanges"].append(seq)


@dataclass
class _Task:
    """One task as both runs saw it: when it first appeared, and each poll's state word (offsets in seconds)."""

    seq: int  # the exchange it first appeared in
    real_born: float
    simulated_born: float
    real: list[tuple[float, str]] = field(default_factory=list)
    simulated: list[tuple[float, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # where its polls carry the state words


class _Run:
    """A fresh simulator asked the cassette's requests at their recorded offsets."""

    def __init__(self, cassette: Cassette, receiver: WebhookReceiver) -> None:
        self.cassette = cassette
        self.clock = VirtualClock(autojump=True)
        options = {cassette.provider: cassette.header.get("options", {})}
        self.sim = Simulator(clock=self.clock, providers=[cassette.provider], options=options, self_check="off")
        self.provider = self.sim.provider(cassette.provider)
        self.base = f"http://drift.invalid/{cassette.provider}"
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sim.app))
        self.receiver = receiver
        self.start = self.clock.now()
        self.ids = IdMap()  # real ↔ simulated
        self.links: dict[str, str] = {}  # path → query of each link the simulator handed out (signed file links)
        self.tasks: dict[str, _Task] = {}  # by the real run's id
        self.auth = {"authorization": f"Bearer {DRIFT_KEY}"}
        if self.provider.data.get("apiKeyHeader"):
            self.auth[str(self.provider.data["apiKeyHeader"]).lower()] = DRIFT_KEY

    def offset(self) -> float:
        return self.clock.now() - self.start

    async def findings(self) -> list[dict[str, Any]]:
        async with self.client:
            return await self._findings()

    async def _findings(self) -> list[dict[str, Any]]:
        findings = _Findings(self.cassette)
        for exchange in self.cassette.exchanges:
            if exchange.get("blocked"):
                continue
            real = _answer(exchange["response"], self.cassette)
            if real.status in KEY_REFUSALS:
                findings.add(exchange["seq"], kind="preflight", severity="info", side="none",
                             operation=exchange["operation"], location="status", real=real.status,
                             fact=KEY_REFUSALS[real.status])
                continue
            if self._unaskable(exchange["request"]):
                _contract(findings, self.provider, exchange, real, None)
                continue
            at = self.start + exchange["at"] / 1000
            if at > self.clock.now():
                await self.clock.advance_to(at)
            simulated = await self._in_step(exchange, await self._ask(exchange))
            _contract(findings, self.provider, exchange, real, simulated)
            paths = state_paths(self.provider, exchange["operation"])
            real_state, simulated_state = _state(_json(real), paths), _state(_json(simulated), paths)
            if real_state == simulated_state:  # another state is the lifecycle's finding, not the body's
                _compare(findings, exchange, real, simulated)
        await self.clock.advance(CALLBACK_HORIZON)  # every callback and retry the simulator still owes
        await self.sim.engine.webhooks.flush()
        await self.sim.engine.webhooks.aclose()
        _callbacks(findings, self.cassette, self.receiver, state_paths(self.provider, "callbacks"))
        _lifecycle(findings, self.tasks)
        for frame in self.cassette.frames:  # a WebSocket's frames: against the contract (the simulator is not asked)
            if frame["direction"] == "received":
                answer = _answer({"status": 200, "headers": {"content-type": JSON}, "body": frame["body"]},
                                 self.cassette)
                _contract(findings, self.provider, frame, answer, None)
        return list(findings.items.values())

    def _unaskable(self, request: dict[str, Any]) -> bool:
        """A request the simulator cannot be asked as sent: a link whose signature the cassette redacted and whose
        stand-in the simulator never handed out (it came in a WebSocket frame, which the simulator is not asked)."""
        path = self.ids.rightwards(request["path"])
        return path not in self.links and any(REDACTED in values for values in request["query"].values())

    async def _in_step(self, exchange: dict[str, Any], simulated: Answer) -> Answer:
        """The simulator's answer to a poll, once its task is no longer behind the real one: a provider whose queue
        was quicker this time is not drift, so the simulator's clock runs on until its task moves (its time to do so
        is the lifecycle's timing finding)."""
        request = exchange["request"]
        tokens = [*ids_in(request["path"]), *ids_in(body_value(request["body"]))]
        paths = state_paths(self.provider, exchange["operation"])
        real_state = _state(body_value(exchange["response"]["body"]), paths)
        task = next((self.tasks[token] for token in tokens if token in self.tasks), None)
        if task is None:
            for token in (*tokens, *ids_in(body_value(exchange["response"]["body"]))):
                self.tasks.setdefault(token, _Task(exchange["seq"], exchange["at"] / 1000, self.offset()))
            task = self.tasks.get(tokens[0]) if tokens else None
        state = _state(_json(simulated), paths)
        if task is None or real_state is None or state is None:
            return simulated
        behind = state != real_state and state in {seen for _, seen in task.real}
        waited = 0.0
        while behind and waited < CATCH_UP_HORIZON:
            step = 1.0 if waited < CATCH_UP_LINEAR else waited  # second by second at first, then doubling
            await self.clock.advance(step)
            waited += step
            simulated = await self._ask(exchange)
            behind = _state(_json(simulated), paths) == state
        task.paths = paths
        task.real.append((exchange["at"] / 1000, real_state))
        task.simulated.append((self.offset(), _state(_json(simulated), paths) or ""))
        return simulated

    async def _ask(self, exchange: dict[str, Any]) -> Answer:
        request, ids = exchange["request"], self.ids
        body = request["body"]
        callback_url = self.receiver.url_for(f"/{exchange['seq']}")
        content = (json.dumps(with_callback_urls(ids.rightwards(body["json"]), callback_url)).encode()
                   if body and "json" in body else decode_body(body, None) or b"")
        base = self.base
        path = ids.rightwards(request["path"])
        # A link the provider signed was recorded with its signature redacted: the simulator's own link stands in.
        query: Any = self.links.get(path) or [(name, ids.rightwards(value))
                                              for name, values in request["query"].items() for value in values]
        headers = {**request["headers"], **self.auth}
        response = await self.client.request(request["method"], base + path, params=query, headers=headers,
                                             content=content)
        answer = Answer(response.status_code, response.content, None,
                        {k.lower(): v for k, v in response.headers.items()
                         if k.lower() not in ("content-length", "date")})
        value = _json(answer) if "json" in response.headers.get("content-type", "") else None
        if value is not None:
            pairs, _ = same(body_value(exchange["response"]["body"]), value, ids)
            ids.bind(pairs)
            for link in strings(value):
                if link.startswith(base + "/") and "?" in link:
                    link_path, _, link_query = link[len(base):].partition("?")
                    self.links[link_path] = link_query
        return answer


async def _cassette_findings(cassette: Cassette) -> list[dict[str, Any]]:
    with WebhookReceiver() as receiver:
        return await _Run(cassette, receiver).findings()


def _answer(response: dict[str, Any], cassette: Cassette) -> Answer:
    # An image whose bytes were not kept: its status and headers still count.
    return recorded_answer(response, cassette.blobs) or Answer(response["status"], b"", None,
                                                               dict(response["headers"]))


def _closest(errors: list[ValidationError]) -> Iterator[ValidationError]:
    """The leaf errors that say what is wrong: of `anyOf`/`oneOf` alternatives, the one the value came closest to
    (fewest errors), so a new status word reads as an enum miss, not as "matches no alternative"."""
    for error in errors:
        if error.validator in ("anyOf", "oneOf") and error.context:
            branches: dict[Any, list[ValidationError]] = {}
            for sub in error.context:
                branches.setdefault(sub.schema_path[0], []).append(sub)
            yield from _closest(min(branches.values(), key=len))
        else:
            yield error


def _violations(provider: Any, finding: dict[str, Any], real: Answer) -> list[dict[str, Any]]:
    if "schema" not in finding:
        return [{"rule": "", "path": "", "fact": str(finding.get("problem")), "value": finding.get("problem")}]
    schema = str(finding["schema"])
    out = []
    for error in _closest(provider.schemas.errors(schema, _json(real))):
        path = dotted_path(list(error.absolute_path))
        documented = f"{error.validator} {json.dumps(error.validator_value, default=str)}"
        source = error.schema.get("x-doc") if isinstance(error.schema, dict) else None
        out.append({"rule": error.validator, "path": path, "value": error.instance if error.validator in ENUM_RULES
                    else error.message, "fact": f"{schema} at {path or '(root)'}: {documented}",
                    "doc": source})
    return out


def _contract(findings: _Findings, provider: Any, exchange: dict[str, Any], real: Answer,
              simulated: Answer | None) -> None:
    """The real answer against the documented contract (`simulated`: the simulator's answer to the same request, to
    tell a provider that moved from documents that are stale; None where it was not asked)."""
    operation = exchange["operation"]
    doc = str(provider.data.get("documentation", ""))
    simulated_ok = simulated is None or not self_check.check_answer(provider, operation, simulated)
    side = "provider" if simulated_ok else "documents"
    note = None if simulated_ok else "the simulator's answer breaks the same contract: the documents may be stale"
    for finding in self_check.check_answer(provider, operation, real):
        status = int(finding.get("status") or real.status)
        error = status >= 400 or status != real.status
        for violation in _violations(provider, finding, real):
            rule = violation["rule"]
            kind = ("enum" if rule in ENUM_RULES else "undocumented-field" if rule in UNDOCUMENTED_RULES
                    else "error-shape" if error else "schema")
            location = f"{finding.get('schema', operation)}#{violation['path']}"
            findings.add(exchange["seq"], kind=kind, severity="warning" if kind == "undocumented-field" else "error",
                         side=side, operation=operation, location=location,
                         fact=f"{violation['fact']} (documentation: {violation.get('doc') or doc})",
                         real=violation["value"], note=note)


def _shape(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(path, JSON type) of every node; array items merged under `[]`, so lengths never count."""
    kind = ("null" if value is None else "boolean" if isinstance(value, bool) else "number"
            if isinstance(value, (int, float)) else "string" if isinstance(value, str) else "array"
            if isinstance(value, list) else "object")
    yield path, kind
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _shape(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _shape(item, f"{path}[]")


def _json(answer: Answer) -> Any:
    try:
        return answer.parsed()
    except ValueError:
        return None


def _compare(findings: _Findings, exchange: dict[str, Any], real: Answer, simulated: Answer) -> None:
    operation, seq = exchange["operation"], exchange["seq"]
    error = real.status >= 400 or simulated.status >= 400
    kind = "error-shape" if error else "schema"
    if real.status != simulated.status:
        findings.add(seq, kind=kind, severity="error", side="simulator", operation=operation, location="status",
                     fact="the simulator answers this request as the provider did", real=real.status,
                     simulator=simulated.status)
        return  # another status: its body and headers differ as a matter of course
    real_body, simulated_body = _json(real), _json(simulated)
    if real_body is not None and simulated_body is not None:
        real_shape, simulated_shape = dict(_shape(real_body)), dict(_shape(simulated_body))
        for path in sorted(set(real_shape) | set(simulated_shape)):
            mine, theirs = simulated_shape.get(path), real_shape.get(path)
            if mine == theirs or _under_reported(path, real_shape, simulated_shape):
                continue
            findings.add(seq, kind=kind, severity="error" if error else "warning", side="simulator",
                         operation=operation, location=f"body {path}", real=theirs, simulator=mine,
                         fact="the simulator's answer has the real answer's shape")
    for name in sorted(set(_header_names(real)) ^ set(_header_names(simulated))):
        findings.add(seq, kind="error-shape" if error else "header", severity="warning", side="simulator",
                     operation=operation, location=f"header {name}", real=name in real.headers,
                     simulator=name in simulated.headers, fact="the same headers on the same answer")


def _under_reported(path: str, real: dict[str, str], simulated: dict[str, str]) -> bool:
    """A node under one already reported (a field missing on one side: its children go with it)."""
    parent = path
    while "." in parent or "[]" in parent:
        parent = parent.rsplit(".", 1)[0] if "." in parent else parent.removesuffix("[]")
        if parent in real and parent in simulated and real[parent] != simulated[parent]:
            return True
        if (parent in real) != (parent in simulated):
            return True
    return False


def _header_names(answer: Answer) -> list[str]:
    # Only those the cassette keeps (allowlisted when recorded), minus framing the two servers choose freely.
    return [name for name in answer.headers if name in ("retry-after", "location", "allow") or "ratelimit" in name]


def _words_at(value: Any, parts: list[str]) -> Iterator[str]:
    """The state words at a path of provider.json `lifecycleStates` (`a.b`, `a[]` for every item)."""
    if not parts:
        if isinstance(value, bool):
            yield "true" if value else "false"
        elif isinstance(value, str):
            yield value
        return
    name, every = parts[0].removesuffix("[]"), parts[0].endswith("[]")
    child = value.get(name) if isinstance(value, dict) else None
    for item in (child if isinstance(child, list) else []) if every else [child]:
        yield from _words_at(item, parts[1:])


def _state(value: Any, paths: Sequence[str]) -> str | None:
    """An answer's lifecycle state: the words at its state paths, in order (None where it carries none)."""
    words = [word for path in paths for word in _words_at(value, path.split("."))]
    return STATE_JOINER.join(words) if words else None


def state_paths(provider: Any, operation: str) -> list[str]:
    """Where `operation`'s answers (or, for `callbacks`, the callback payloads) carry lifecycle words."""
    return list(provider.data.get("lifecycleStates", {}).get(operation, []))


def _changes(seen: list[tuple[float, str]]) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for at, state in seen:
        if not out or out[-1][1] != state:
            out.append((at, state))
    return out


def _lifecycle(findings: _Findings, tasks: dict[str, _Task]) -> None:
    reported: set[int] = set()
    for task in tasks.values():
        if not task.real or id(task) in reported:
            continue
        reported.add(id(task))  # one task is known by several ids (its own, its images')
        real, simulated = _changes(task.real), _changes(task.simulated)
        seq = task.seq
        if [s for _, s in real] != [s for _, s in simulated]:
            findings.add(seq, kind="lifecycle", severity="error", side="simulator", operation="(task)",
                         location=f"states: {', '.join(task.paths)}",
                         fact="a task passes through the provider's documented states in order",
                         real=[s for _, s in real], simulator=[s for _, s in simulated],
                         note=_new_and_vanished(real, simulated))
            continue
        real_done, simulated_done = real[-1][0] - task.real_born, simulated[-1][0] - task.simulated_born
        low, high = TIMING_BAND
        if len(real) > 1 and not low * real_done <= simulated_done <= high * real_done:
            findings.add(seq, kind="lifecycle", severity="warning", side="provider", operation="(task)",
                         location=f"timing: {real[-1][1]}",
                         fact=f"the simulator's queue time is within {low:g}-{high:g}x of the provider's",
                         real=round(real_done, 3), simulator=round(simulated_done, 3),
                         note="seconds from submit to the first poll showing the last state, at poll resolution")


def _new_and_vanished(real: list[tuple[float, str]], simulated: list[tuple[float, str]]) -> str:
    def words(states: list[tuple[float, str]]) -> set[str]:
        return {word for _, state in states for word in state.split(STATE_JOINER)}

    new, vanished = sorted(words(real) - words(simulated)), sorted(words(simulated) - words(real))
    return f"new state words: {new or 'none'}; vanished: {vanished or 'none'}"


def _callback_kind(payload: Any, paths: Sequence[str]) -> str:
    state = _state(payload, paths)
    if state is not None:
        return state
    return "error" if isinstance(payload, dict) and ("code" in payload or "error" in payload) else "result"


def _callbacks(findings: _Findings, cassette: Cassette, receiver: WebhookReceiver, paths: Sequence[str]) -> None:
    real: dict[int, list[str]] = {}
    for callback in cassette.webhooks:
        request = request_of(cassette, callback)
        if request is not None:
            real.setdefault(request["seq"], []).append(_callback_kind(body_value(callback["request"]["body"]), paths))
    for seq, kinds in real.items():
        simulated = [_callback_kind(body, paths) for body in receiver.bodies(path=f"/{seq}")]
        if simulated != kinds:
            findings.add(seq, kind="lifecycle", severity="error", side="simulator", operation="(callbacks)",
                         location="callbacks", real=kinds, simulator=simulated,
                         fact="the provider calls back once per documented event, in order")


def text_report(found: dict[str, Any]) -> str:
    findings = found["findings"]
    baseline = found.get("baseline")
    known = f" ({baseline['known']} known from {baseline['report']}, not shown)" if baseline else ""
    if not findings:
        return f"no {'new ' if baseline else ''}drift in {len(found['cassettes'])} cassette(s){known}"
    lines = []
    for finding in sorted(findings, key=lambda f: (SEVERITIES.index(f["severity"]), f["kind"], f["location"])):
        lines.append(f"{finding['severity'].upper():7} {finding['kind']:18} {finding['provider']} "
                     f"{finding['operation']} {finding['location']}  (moved: {finding['side']})")
        lines.append(f"        documented: {finding['fact']}")
        lines.append(f"        real: {json.dumps(finding['real'], default=str)}  simulator: "
                     f"{json.dumps(finding['simulator'], default=str)}  exchanges: {finding['exchanges']}")
        if finding.get("note"):
            lines.append(f"        note: {finding['note']}")
    summary = found["summary"]
    lines.append(f"{summary['error']} error(s), {summary['warning']} warning(s), {summary['info']} info{known}")
    return "\n".join(lines)

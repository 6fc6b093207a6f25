"""Running conformance cases against a simulator, as a client would see it.

`run_case(case, target)` runs one case against a running simulator and returns an `Outcome` (passed, and
why not). A `Target` is built from the pytest plugin's `nanobanana` fixture (`Target.from_session`) or from
any simulator's base URL (`Target.from_url`, a `ControlClient` and httpx); the runner never reaches into
the simulator's internals, so it checks exactly what a client would see.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as connect_websocket

from simulator.conformance.cases import Case, CaseFileError
from simulator.conformance.matchers import (
    MISSING,
    Json,
    excerpt,
    image_problems,
    lookup,
    match,
    schema_problems,
)
from simulator.control_client import ControlClient, ControlError
from simulator.examples import load_example
from simulator.options import provider_data
from simulator.resources import schemas_dir
from simulator.testing import WebhookReceiver

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# `method: WS` in a request: a frame on a WebSocket (simulator.transports.websocket), not an HTTP request.
WEBSOCKET = "WS"
WS_TIMEOUT = 30


class CaseFailed(Exception):
    """A step could not go on (a saved value is missing, the simulator refused a control action)."""


def auth_headers(slug: str, api_key: str) -> dict[str, str]:
    """The provider's documented authentication header (CRun `x-api-key`, the others Bearer)."""
    header = provider_data(slug).get("apiKeyHeader")
    return {header: api_key} if header else {"Authorization": f"Bearer {api_key}"}


@dataclass
class Target:
    """A running simulator as the runner sees it: where each provider is, a key it accepts, its control plane.

    `reset`: reset the simulator (and drop loaded scenarios) before each case; the plugin's fixture already
    does so for each test. `expect_violations` tells a contract-checking harness that a case sends an invalid
    request on purpose (the plugin's `nanobanana.expect_violations`).
    """

    control: ControlClient
    base_url: Callable[[str], str]
    api_key: Callable[[str], str]
    expect_violations: Callable[..., None] = field(default=lambda *paths: None)
    reset: bool = False

    @classmethod
    def from_session(cls, nanobanana: Nanobanana) -> Target:
        """The pytest plugin's fixture object, in either mode (live or in-process)."""
        return cls(nanobanana.control, nanobanana.base_url, nanobanana.api_key, nanobanana.expect_violations)

    @classmethod
    def from_url(cls, url: str, *, api_key: str = "contract-key", control: ControlClient | None = None) -> Target:
        """A simulator served at `url` (`nanobanana-sim serve --virtual-clock --autojump`, or a LiveServer)."""
        root = url.rstrip("/")
        return cls(control or ControlClient(root), lambda slug: f"{root}/{slug}", lambda slug: api_key, reset=True)


# -- outcomes --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    reasons: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)  # one line per exchange and control action

    @property
    def passed(self) -> bool:
        return not self.reasons

    def report(self) -> str:
        head = f"{self.case.id} ({self.case.doc}) " + ("passed" if self.passed else "FAILED")
        lines = [head, *(f"  ✗ {reason}" for reason in self.reasons)]
        if self.transcript:
            lines += ["  transcript:", *(f"    {line}" for line in self.transcript)]
        lines.append(f"  case file: {self.case.source}")
        return "\n".join(lines)


def run_case(case: Case, target: Target, *, http: httpx.Client | None = None) -> Outcome:
    """Run one case against `target`; never raises for a broken expectation (see `Outcome.reasons`)."""
    outcome = Outcome(case)
    with ExitStack() as stack:
        client = http or stack.enter_context(httpx.Client(timeout=30))
        run = _Run(case, target, client, outcome, stack)
        try:
            if target.reset:
                target.control.clear_scenarios()
                target.control.reset()
            run.setup(case.spec.get("setup") or {})
            for index, step in enumerate(case.steps(), 1):
                run.step(step, index)
                if outcome.reasons:  # later steps build on this one: their failures would only echo it
                    break
        except CaseFailed as exc:
            outcome.reasons.append(str(exc))
        except ControlError as exc:  # the simulator refused a setup action (an unknown option, a bad rule)
            outcome.reasons.append(f"control plane: {exc}")
        except (httpx.HTTPError, OSError, WebSocketException) as exc:
            outcome.reasons.append(f"transport error: {exc!r}")
    return outcome


def run_cases(cases: Iterable[Case], target: Target) -> list[Outcome]:
    """Every case in turn against one target (which must reset between cases: `Target.from_url` does)."""
    with httpx.Client(timeout=30) as http:
        return [run_case(case, target, http=http) for case in cases]


# -- the run of one case -------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    body: Json  # parsed JSON, else the text, else None
    content: bytes
    entry: Mapping[str, Any] | None  # the journal's record of the exchange (None for a non-provider URL)


class _Run:
    def __init__(self, case: Case, target: Target, http: httpx.Client, outcome: Outcome, stack: ExitStack) -> None:
        self.case, self.target, self.http, self.outcome, self.stack = case, target, http, outcome, stack
        self.slug = case.provider
        self.key = target.api_key(self.slug)
        self.saved: dict[str, Any] = {"api_key": self.key}
        self._receiver: WebhookReceiver | None = None

    # -- templates

    @property
    def receiver(self) -> WebhookReceiver:
        if self._receiver is None:
            self._receiver = self.stack.enter_context(WebhookReceiver())
        return self._receiver

    def value(self, name: str) -> Any:
        if name == "receiver":
            return self.receiver.url
        if name == "base_url":
            return self.target.base_url(self.slug)
        if name not in self.saved:
            raise CaseFailed(f"{{{name}}} is used before any step saved it (saved: {sorted(self.saved)})")
        return self.saved[name]

    def fill(self, value: Any) -> Any:
        """`{name}` in strings becomes a saved value; a string that is exactly `{name}` keeps the value's type."""
        if isinstance(value, str):
            whole = TEMPLATE.fullmatch(value)
            if whole:
                return self.value(whole.group(1))
            return TEMPLATE.sub(lambda m: str(self.value(m.group(1))), value)
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            if set(value) == {"$example"}:
                return self.fill(example(self.slug, str(value["$example"])))
            return {key: self.fill(item) for key, item in value.items()}
        return value

    # -- setup through the control plane

    def setup(self, setup: Mapping[str, Any]) -> None:
        if not setup:
            return
        setup = self.fill(dict(setup))
        control, slug = self.target.control, self.slug
        if "tokens" in setup:
            control.set_tokens(slug, setup["tokens"])
        if "options" in setup:
            control.set_options(slug, **setup["options"])
        if "balance" in setup:
            control.set_balance(slug, self.key, float(setup["balance"]))
        if "moderation" in setup:
            control.set_moderation(list(setup["moderation"]))
        if "limits" in setup:
            control.set_limits(*[{"provider": slug, **limit} for limit in setup["limits"]])
        if "faults" in setup:
            rules = [self._rule(rule) for rule in setup["faults"]]
            control.add_faults(*rules)
        if "autojump" in setup:
            control.set_autojump(bool(setup["autojump"]))
        if "advance" in setup:
            control.advance(float(setup["advance"]))
        self.outcome.transcript.append(f"setup {json.dumps(setup, sort_keys=True, default=str)}")

    def _rule(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        rule = dict(rule)
        rule["match"] = {"provider": self.slug, **(rule.get("match") or {})}
        return rule

    # -- steps

    def step(self, step: Mapping[str, Any], index: int) -> None:
        where = f"step {index}" if "steps" in self.case.spec else "response"
        if "setup" in step:
            self.setup(step["setup"])
        elif "advance" in step:
            self.target.control.advance(float(self.fill(step["advance"])))
            self.outcome.transcript.append(f"advance {step['advance']} s")
        elif "callbacks" in step:
            self.callbacks(step["callbacks"], where)
        elif "poll" in step:
            response, seen = self.poll(step["poll"], where)
            self.check(response, step.get("expect") or {}, where, seen)
            self.save(response, step.get("save") or {}, where)
        else:
            response = self.send(step["request"])
            self.check(response, step.get("expect") or {}, where)
            self.save(response, step.get("save") or {}, where)

    def send(self, request: Mapping[str, Any]) -> _Response:
        request = self.fill(dict(request))
        method = str(request.get("method", "GET")).upper()
        base = self.target.base_url(self.slug)
        # A `url` may be absolute (an image link) or host-relative (a redirect's Location).
        url = str(httpx.URL(base).join(request["url"])) if "url" in request else base + request["path"]
        if method == WEBSOCKET:
            return self.frames(request, url)
        headers = self._headers(request)
        kwargs: dict[str, Any] = {"params": request.get("query"), "headers": headers}
        if "body" in request:
            kwargs["content"] = json.dumps(request["body"], ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "raw" in request:
            kwargs["content"] = str(request["raw"]).encode()
        before = self._last_seq()
        answer = self.http.request(method, url, **kwargs)
        entries = self.target.control.journal(kind="http", after=before)
        entry = entries[0] if entries else None
        body: Json = None
        if answer.content:
            try:
                body = answer.json()
            except ValueError:
                body = answer.text if answer.headers.get("content-type", "").startswith(("text/", "application/x"))\
                    else None
        line = f"{method} {answer.request.url.path} → {answer.status_code}"
        if entry is not None:
            line += f"  [{entry.get('operation')}]"
        self.outcome.transcript.append(line)
        return _Response(answer.status_code, answer.headers, body, answer.content, entry)

    def frames(self, request: Mapping[str, Any], url: str) -> _Response:
        """`method: WS`: a WebSocket to the path; the authentication frame first (with the case's key, a literal
        one, or none for `auth: none`), then `body` (or `raw`) as one frame. The answer is the next frame, or the
        next `frames` frames merged into one `data` / `errors` envelope (results that come one frame each); its
        status is the journal's for the last of them."""
        before = self._last_seq()
        auth = request.get("auth", "default")
        with connect_websocket("ws" + url.removeprefix("http"), open_timeout=WS_TIMEOUT) as socket:
            if auth not in (None, "none"):
                key = self.key if auth == "default" else str(auth)
                socket.send(json.dumps([{"taskType": "authentication", "apiKey": key}]))
                socket.recv(timeout=WS_TIMEOUT)
            socket.send(json.dumps(request["body"], ensure_ascii=False) if "body" in request else str(request["raw"]))
            received = [json.loads(socket.recv(timeout=WS_TIMEOUT)) for _ in range(int(request.get("frames", 1)))]
        entries = self.target.control.journal(kind="ws", after=before)
        entry = entries[-1] if entries else None
        body: dict[str, Any] = received[0]
        if len(received) > 1:
            merged = {key: [item for frame in received for item in frame.get(key, [])] for key in ("data", "errors")}
            body = {key: items for key, items in merged.items() if items}
        status = int(entry["status"]) if entry is not None else 0
        self.outcome.transcript.append(f"WS {request.get('path', url)} → {len(received)} frame(s), {status}")
        return _Response(status, httpx.Headers(), body, json.dumps(body).encode(), entry)

    def _headers(self, request: Mapping[str, Any]) -> dict[str, str]:
        auth = request.get("auth", "default")
        headers: dict[str, str] = {}
        if auth == "default":
            headers.update(auth_headers(self.slug, self.key))
        elif auth not in (None, "none"):
            headers.update(auth_headers(self.slug, str(auth)))  # a literal key, e.g. one the provider refuses
        for name, value in (request.get("headers") or {}).items():
            if value is None:  # `Authorization: null` removes a default header
                headers = {key: item for key, item in headers.items() if key.lower() != name.lower()}
            else:
                headers[name] = str(value)
        return headers

    def _last_seq(self) -> int:
        last = self.target.control.journal(limit=1)
        return int(last[-1]["seq"]) if last else 0

    def poll(self, poll: Mapping[str, Any], where: str) -> tuple[_Response, list[Any]]:
        """Send `request` every `every` clock seconds until the `until` path shows one of its values."""
        [(path, values)] = poll["until"].items()
        stops = values if isinstance(values, list) else [values]
        every = float(poll.get("every", 1))
        within = float(poll.get("within", 600))
        seen: list[Any] = []
        waited = 0.0
        while True:
            response = self.send(poll["request"])
            current = lookup(response.body, path)
            if current is not MISSING and (not seen or seen[-1] != current):
                seen.append(current)
            if current in stops:
                return response, seen
            if response.status >= 400 or waited >= within:
                raise CaseFailed(f"{where}: {path} never reached {stops} within {within:g} s (seen {seen}, "
                                 f"last status {response.status})")
            self.target.control.advance(every)
            waited += every

    def callbacks(self, spec: Mapping[str, Any], where: str) -> None:
        """What the receiver got: after `after` clock seconds and the simulator's pending deliveries."""
        control = self.target.control
        control.advance(float(spec.get("after", 60)))
        control.flush_webhooks()
        bodies = []
        for request in self.receiver.requests:
            try:
                bodies.append(json.loads(request.body) if request.body else None)
            except ValueError:
                bodies.append(request.body.decode(errors="replace"))
        self.outcome.transcript.append(f"callbacks received: {len(bodies)}")
        reasons = self.outcome.reasons
        if "count" in spec and len(bodies) != spec["count"]:
            reasons.append(f"{where}: expected {spec['count']} callback(s), got {len(bodies)}")
        if "at_least" in spec and len(bodies) < spec["at_least"]:
            reasons.append(f"{where}: expected at least {spec['at_least']} callback(s), got {len(bodies)}")
        if not bodies:
            if "count" not in spec or spec["count"]:
                reasons.append(f"{where}: no callback arrived")
            return
        if "events" in spec:
            [(path, expected)] = spec["events"].items()
            got = [lookup(body, path) for body in bodies]
            if got != self.fill(expected):
                reasons.append(f"{where}: callbacks' {path} were {got}, expected {expected}")
        if "schema" in spec:
            for number, body in enumerate(bodies, 1):
                reasons += [f"{where} callback {number}: {problem}"
                            for problem in schema_problems(self.slug, spec["schema"], body)]
        for path, matcher in (spec.get("fields") or {}).items():
            reasons += [f"{where} last callback: {problem}"
                        for problem in match(lookup(bodies[-1], path), self.fill(matcher), path)]

    # -- expectations

    def check(self, response: _Response, expect: Mapping[str, Any], where: str, seen: list[Any] | None = None) -> None:
        reasons = self.outcome.reasons
        expected_status = expect.get("status")
        if expected_status is not None:
            allowed = expected_status if isinstance(expected_status, list) else [expected_status]
            if response.status not in allowed:
                reasons.append(f"{where}: status {response.status}, expected {expected_status}; body: "
                               f"{excerpt(response.body if response.body is not None else response.content)}")
        if "operation" in expect:
            got = (response.entry or {}).get("operation")
            if got != expect["operation"]:
                reasons.append(f"{where}: the simulator routed it to {got!r}, expected {expect['operation']!r}")
        if "schema" in expect:
            problems = schema_problems(self.slug, expect["schema"], response.body)
            reasons += [f"{where}: {problem}" for problem in problems]
        for path, matcher in (expect.get("fields") or {}).items():
            problems = match(lookup(response.body, path), self.fill(matcher), path)
            reasons += [f"{where}: {problem}" for problem in problems]
        for name, matcher in (expect.get("headers") or {}).items():
            value = response.headers.get(name, MISSING)
            reasons += [f"{where}: {problem}" for problem in match(value, self.fill(matcher), f"header {name}")]
        if "content_type" in expect:
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith(expect["content_type"]):
                reasons.append(f"{where}: content-type {content_type!r}, expected {expect['content_type']!r}")
        if "image" in expect:
            reasons += [f"{where}: {problem}" for problem in image_problems(response.content, expect["image"])]
        if "violations" in expect:
            reasons += [f"{where}: {problem}" for problem in self.violations(response, expect["violations"])]
        if "seen" in expect and seen is not None and seen != expect["seen"]:
            reasons.append(f"{where}: the poll saw {seen}, expected {expect['seen']}")

    def violations(self, response: _Response, paths: Sequence[str]) -> list[str]:
        """The request was refused for the documented field(s): the journal names each path."""
        found = [violation.get("path") for violation in (response.entry or {}).get("violations") or []]
        self.target.expect_violations(*paths)
        missing = [path for path in paths if path not in found]
        return [f"no violation at {path!r} was journaled (found {found})" for path in missing]

    def save(self, response: _Response, save: Mapping[str, Any], where: str) -> None:
        """`name: dotted.path` of the body, or `name: {header: Name}`."""
        for name, path in save.items():
            if isinstance(path, dict):
                value: Any = response.headers.get(str(path.get("header")), MISSING)
            else:
                value = lookup(response.body, path)
            if value is MISSING:
                raise CaseFailed(f"{where}: cannot save {name!r}: no {path!r} in {excerpt(response.body)}")
            self.saved[name] = value


def example(slug: str, reference: str) -> Json:
    """`requests/x.json` or `invalid/x.json#/body` under `schemas/<slug>/examples/` (long strings expanded)."""
    file, _, pointer = reference.partition("#")
    path = schemas_dir() / slug / "examples" / file
    if not path.is_file():
        raise CaseFileError(f"no example {file!r} for {slug} (looked in {path.parent})")
    document = copy.deepcopy(load_example(path))
    for part in [part for part in pointer.split("/") if part]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document

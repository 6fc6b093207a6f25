"""Provider contract cases: what each simulated provider must answer, as data, and the runner that checks them.

A case file (`contracts/providers/<slug>.yaml`) lists the documented requests and behaviours one provider
must show: each case names its doc reference, sets the simulator up through the control plane (wallet,
faults, options, clock), sends one request or a sequence of steps (submit → advance → poll → terminal), and
says what must come back: the status, a response JSON Schema of `schemas/<slug>/response/`, key fields by
dotted path, headers, the route the journal resolved, and for refused requests the violated fields. The
format is described in `contracts/README.md`.

`run_case(case, target)` runs one case against a running simulator and returns an `Outcome` (passed, and
why not). A `Target` is built from the pytest plugin's `nanobanana` fixture (`Target.from_session`) or from
any simulator's base URL (`Target.from_url`, a `ControlClient` and httpx); the runner never reaches into
the simulator's internals, so it checks exactly what a client would see.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from simulator.control_client import ControlClient, ControlError
from simulator.examples import load_example
from simulator.options import provider_data
from simulator.resources import contracts_dir, schemas_dir
from simulator.testing import WebhookReceiver
from simulator.validation import dotted_path, schema_set

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

Json = Any

CASE_KEYS = frozenset({"name", "doc", "setup", "request", "expect", "save", "steps"})
STEP_ACTIONS = ("request", "poll", "advance", "setup", "callbacks")
STEP_KEYS = frozenset({*STEP_ACTIONS, "expect", "save", "note"})
REQUEST_KEYS = frozenset({"method", "path", "url", "query", "headers", "auth", "body", "raw"})
EXPECT_KEYS = frozenset({"status", "schema", "operation", "fields", "headers", "violations", "content_type",
                         "image", "seen"})
SETUP_KEYS = frozenset({"balance", "tokens", "options", "faults", "limits", "moderation", "advance", "autojump"})
POLL_KEYS = frozenset({"request", "every", "until", "within"})
CALLBACK_KEYS = frozenset({"count", "at_least", "schema", "fields", "events", "after"})
MATCHERS = frozenset({"$type", "$in", "$absent", "$present", "$matches", "$contains", "$length", "$gte", "$lte",
                      "$not"})
TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
    "null": type(None),
}
_MISSING = object()


class ContractError(ValueError):
    """A case file that does not follow the format (a typo in a key, a missing request): a bug in the data."""


class CaseFailed(Exception):
    """A step could not go on (a saved value is missing, the simulator refused a control action)."""


# -- cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    provider: str
    name: str
    doc: str
    spec: Mapping[str, Any]
    source: Path

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.name}"

    def steps(self) -> list[Mapping[str, Any]]:
        """The case as steps: a single-request case is one `request` step."""
        if "steps" in self.spec:
            return list(self.spec["steps"])
        return [{key: self.spec[key] for key in ("request", "expect", "save") if key in self.spec}]

    def operations(self) -> set[str]:
        """The routes this case asserts it reached (`expect.operation` of its steps)."""
        found = set()
        for step in self.steps():
            expected = (step.get("expect") or {}).get("operation")
            if isinstance(expected, str):
                found.add(expected)
        return found


def providers_dir() -> Path:
    return contracts_dir() / "providers"


def load_cases(providers: Iterable[str] | None = None, folder: Path | None = None) -> list[Case]:
    """Every case of `contracts/providers/<slug>.yaml` (or of `folder`), in file order."""
    folder = folder or providers_dir()
    wanted = set(providers) if providers is not None else None
    cases: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        if wanted is not None and path.stem not in wanted:
            continue
        cases += load_file(path)
    return cases


def load_file(path: Path) -> list[Case]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        raise ContractError(f"{path}: expected a mapping with `provider` and a list of `cases`")
    slug = document.get("provider") or path.stem
    if slug != path.stem:
        raise ContractError(f"{path}: provider {slug!r} does not match the file name")
    cases, names = [], set()
    for number, spec in enumerate(document["cases"], 1):
        case = _case(slug, spec, path, number)
        if case.name in names:
            raise ContractError(f"{path}: two cases are named {case.name!r}")
        names.add(case.name)
        cases.append(case)
    return cases


def _case(slug: str, spec: Any, path: Path, number: int) -> Case:
    where = f"{path.name} case {number}"
    if not isinstance(spec, dict):
        raise ContractError(f"{where}: a case is a mapping")
    _keys(spec, CASE_KEYS, where)
    for required in ("name", "doc"):
        if not isinstance(spec.get(required), str) or not spec[required].strip():
            raise ContractError(f"{where}: `{required}` is required")
    where = f"{path.name} case {spec['name']!r}"
    if ("steps" in spec) == ("request" in spec):
        raise ContractError(f"{where}: give either `request` (+ `expect`) or `steps`")
    if "steps" in spec and ({"expect", "save"} & set(spec)):
        raise ContractError(f"{where}: `expect` and `save` belong to its steps")
    case = Case(slug, spec["name"], spec["doc"], spec, path)
    if "setup" in spec:
        _keys(spec["setup"], SETUP_KEYS, f"{where} setup")
    for index, step in enumerate(case.steps()):
        _check_step(step, f"{where} step {index + 1}")
    return case


def _check_step(step: Any, where: str) -> None:
    if not isinstance(step, dict):
        raise ContractError(f"{where}: a step is a mapping")
    _keys(step, STEP_KEYS, where)
    actions = [action for action in STEP_ACTIONS if action in step]
    if len(actions) != 1:
        raise ContractError(f"{where}: a step does exactly one of {', '.join(STEP_ACTIONS)}")
    action = actions[0]
    if action == "request":
        _check_request(step["request"], where)
    elif action == "poll":
        _keys(step["poll"], POLL_KEYS, f"{where} poll")
        if not isinstance(step["poll"].get("until"), dict):
            raise ContractError(f"{where}: a poll needs `until: {{path: [values]}}`")
        _check_request(step["poll"].get("request"), where)
    elif action == "setup":
        _keys(step["setup"], SETUP_KEYS, f"{where} setup")
    elif action == "callbacks":
        _keys(step["callbacks"], CALLBACK_KEYS, f"{where} callbacks")
    if "expect" in step:
        _keys(step["expect"], EXPECT_KEYS, f"{where} expect")
        if "seen" in step["expect"] and action != "poll":
            raise ContractError(f"{where}: `seen` is the sequence a `poll` observed")
    if ("expect" in step or "save" in step) and action not in ("request", "poll"):
        raise ContractError(f"{where}: only a request or a poll has `expect` and `save`")


def _check_request(request: Any, where: str) -> None:
    if not isinstance(request, dict):
        raise ContractError(f"{where}: `request` is a mapping")
    _keys(request, REQUEST_KEYS, f"{where} request")
    if ("path" in request) == ("url" in request):
        raise ContractError(f"{where}: a request has a `path` (under the provider) or a `url` (absolute)")
    if "body" in request and "raw" in request:
        raise ContractError(f"{where}: `body` (JSON) or `raw` (text), not both")


def _keys(value: Any, allowed: frozenset[str], where: str) -> None:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: expected a mapping")
    unknown = set(value) - allowed
    if unknown:
        raise ContractError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


# -- where the cases run -----------------------------------------------------------------------------------


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
        except (httpx.HTTPError, OSError) as exc:
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
            if current is not _MISSING and (not seen or seen[-1] != current):
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
                               f"{_excerpt(response.body if response.body is not None else response.content)}")
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
            value = response.headers.get(name, _MISSING)
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
                value: Any = response.headers.get(str(path.get("header")), _MISSING)
            else:
                value = lookup(response.body, path)
            if value is _MISSING:
                raise CaseFailed(f"{where}: cannot save {name!r}: no {path!r} in {_excerpt(response.body)}")
            self.saved[name] = value


# -- helpers shared with tests ----------------------------------------------------------------------------------


def example(slug: str, reference: str) -> Json:
    """`requests/x.json` or `invalid/x.json#/body` under `schemas/<slug>/examples/` (long strings expanded)."""
    file, _, pointer = reference.partition("#")
    path = schemas_dir() / slug / "examples" / file
    if not path.is_file():
        raise ContractError(f"no example {file!r} for {slug} (looked in {path.parent})")
    document = copy.deepcopy(load_example(path))
    for part in [part for part in pointer.split("/") if part]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def split_path(path: str) -> list[str]:
    """`a.b.0.c`, with `["key.with.dots"]` for keys that contain dots; `$` is the whole document."""
    if path in ("", "$"):
        return []
    parts: list[str] = []
    for token in re.finditer(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)', path):
        parts.append(token.group(1).replace('\\"', '"') if token.group(1) is not None else token.group(2))
    return parts


def lookup(document: Json, path: str) -> Any:
    current = document
    for part in split_path(path):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part) and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def match(value: Any, expected: Any, path: str) -> list[str]:
    """Why `value` (at `path`) does not meet `expected`: a literal, or a mapping of `$` matchers."""
    if isinstance(expected, dict) and expected and set(expected) <= MATCHERS:
        return [problem for name, argument in expected.items() for problem in _matcher(value, name, argument, path)]
    if value is _MISSING:
        return [f"{path}: missing (expected {_excerpt(expected)})"]
    if not _equal(value, expected):
        return [f"{path}: {_excerpt(value)}, expected {_excerpt(expected)}"]
    return []


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return bool(value == expected)


def _matcher(value: Any, name: str, argument: Any, path: str) -> list[str]:
    present = value is not _MISSING
    shown = _excerpt(value) if present else "missing"
    if name == "$absent":
        return [f"{path}: {shown}, expected it absent"] if present == bool(argument) else []
    if name == "$present":
        return [f"{path}: {shown}, expected it present"] if present != bool(argument) else []
    if not present:
        return [f"{path}: missing (expected {name} {_excerpt(argument)})"]
    if name == "$type":
        kinds = argument if isinstance(argument, list) else [argument]
        ok = any(isinstance(value, JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
                 for kind in kinds)
        return [] if ok else [f"{path}: {shown} is not of type {argument}"]
    if name == "$in":
        return [] if any(_equal(value, item) for item in argument) else [f"{path}: {shown}, expected one of {argument}"]
    if name == "$not":
        return [f"{path}: {shown}, expected anything else"] if _equal(value, argument) else []
    if name == "$matches":
        return [] if isinstance(value, str) and re.search(argument, value) else [f"{path}: {shown} !~ /{argument}/"]
    if name == "$contains":
        if isinstance(value, str | list) and argument in value:
            return []
        return [f"{path}: {shown} does not contain {_excerpt(argument)}"]
    if name == "$length":
        ok = isinstance(value, str | list | dict) and len(value) == argument
        return [] if ok else [f"{path}: {shown} does not have length {argument}"]
    if name in ("$gte", "$lte"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and (
            value >= argument if name == "$gte" else value <= argument)
        return [] if ok else [f"{path}: {shown}, expected {'≥' if name == '$gte' else '≤'} {argument}"]
    raise ContractError(f"unknown matcher {name}")


def schema_problems(slug: str, name: str, body: Json) -> list[str]:
    """Violations of `schemas/<slug>/response/<name>.json` by a body (a bad name is a bug in the data)."""
    report = schema_set(slug).validate(f"response/{name}", body)
    return [f"schema {name}: {dotted_path(v.path) or '$'}: {v.message}" for v in report.violations[:5]]


def image_problems(content: bytes, expected: Mapping[str, Any]) -> list[str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            size, kind = image.size, (image.format or "").lower()
    except (UnidentifiedImageError, OSError):
        return [f"not an image ({len(content)} bytes)"]
    problems = []
    wanted = (expected.get("width", size[0]), expected.get("height", size[1]))
    if size != wanted:
        problems.append(f"image is {size[0]}x{size[1]}, expected {expected.get('width')}x{expected.get('height')}")
    if "format" in expected and kind != str(expected["format"]).lower():
        problems.append(f"image format {kind!r}, expected {expected['format']!r}")
    return problems


def _excerpt(value: Any, limit: int = 300) -> str:
    if isinstance(value, bytes):
        value = value[:limit].decode(errors="replace")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def iter_operations(cases: Iterable[Case]) -> Iterator[tuple[str, str]]:
    """(provider, operation) for every route a case asserts it reached."""
    for case in cases:
        for operation in case.operations():
            yield case.provider, operation

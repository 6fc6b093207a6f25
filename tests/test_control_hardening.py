"""The control plane under hostile input: every call is taken whole or refused whole with a 400 naming the field,
and nothing it stores can later break an answer.

Each case of the table is sent as raw bytes (NaN, Infinity and 1e400 are what a client's JSON encoder can put on
the wire), and judged by what a user sees: the status, the JSON body and its `field`, the simulator's state read
back over the control plane (unchanged), and the health of every `GET /_sim/…` route and of a provider route after.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import TOKEN, nb2_body, server_fixture

from simulator.clock import DEFAULT_VIRTUAL_EPOCH, HORIZON
from simulator.control_client import ControlClient
from simulator.live import LiveServer

server = server_fixture()

GOOD_RULE = {"name": "kept", "match": {"operation": "NoSuchOperation"}, "do": {"error": "server_error"}}
STATE_ROUTES = ["/clock", "/faults", "/limits", "/moderation", "/credits", "/options/civitai", "/options/qingbo",
                "/auth/civitai", "/scenarios", "/self-check"]
HEALTH_ROUTES = ["/", "/clock", "/journal", "/tasks", "/credits", "/faults", "/limits", "/moderation", "/scenarios",
                 "/self-check", "/options/civitai", "/auth/civitai", "/openapi/civitai", "/credits/civitai/k"]


def rules(*dos: Any) -> bytes:
    """A faults body whose first rule is good and whose later ones are as given (Python's encoder writes NaN and
    Infinity literals, as many clients' encoders do)."""
    return json.dumps({"rules": [GOOD_RULE, *({"do": do} for do in dos)]}).encode()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# YAML aliases that multiply: ten to the eighth leaves from a few hundred bytes ("billion laughs").
BOMB = "faults: [{do: {error: server_error}, match: {body: {a: &a [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]" for prev, name in zip("abcdefg", "bcdefgh", strict=True)
) + "}}}]\n"

CASES: list[tuple[str, str, str, bytes, int, str]] = [
    # found 7: clock moves
    ("clock-1e12", "POST", "/clock/advance", b'{"seconds": 1e12}', 400, "seconds"),
    ("clock-infinity", "POST", "/clock/advance", b'{"seconds": Infinity}', 400, "seconds"),
    ("clock-nan", "POST", "/clock/advance", b'{"seconds": NaN}', 400, "seconds"),
    ("clock-1e400", "POST", "/clock/advance", b'{"seconds": 1e400}', 400, "seconds"),
    ("clock-backwards", "POST", "/clock/advance", b'{"seconds": -1}', 400, "seconds"),
    ("clock-text", "POST", "/clock/advance", b'{"seconds": "5"}', 400, "seconds"),
    ("clock-bool", "POST", "/clock/advance", b'{"seconds": true}', 400, "seconds"),
    ("clock-to-1e300", "POST", "/clock/advance", b'{"to": 1e300}', 400, "to"),
    ("clock-to-minus-infinity", "POST", "/clock/advance", b'{"to": -Infinity}', 400, "to"),
    ("clock-to-the-past", "POST", "/clock/advance", b'{"to": 1000}', 400, "to"),
    ("clock-both", "POST", "/clock/advance", b'{"to": 1767225700, "seconds": 1}', 400, "to"),
    ("clock-typo", "POST", "/clock/advance", b'{"sekonds": 5}', 400, "sekonds"),
    ("tick-nan", "PUT", "/clock", b'{"tick": NaN}', 400, "tick"),
    ("tick-huge-with-autojump", "PUT", "/clock", b'{"autojump": true, "tick": 1e9}', 400, "tick"),
    ("autojump-text", "PUT", "/clock", b'{"autojump": "yes"}', 400, "autojump"),
    # found 8: fault rules
    ("fault-unknown-kind", "POST", "/faults", rules({"error": "nope"}), 400, "rules[1].do.error"),
    ("fault-status-99", "POST", "/faults", rules({"error": "http", "status": 99}), 400, "rules[1].do.status"),
    ("fault-status-1000", "POST", "/faults", rules({"error": "http", "status": 1000}), 400, "rules[1].do.status"),
    ("fault-status-204", "POST", "/faults", rules({"error": "http", "status": 204}), 400, "rules[1].do.status"),
    ("fault-status-text", "POST", "/faults", rules({"error": "http", "status": "500"}), 400, "rules[1].do.status"),
    ("fault-http-no-status", "POST", "/faults", rules({"error": "http"}), 400, "rules[1].do.status"),
    ("fault-header-crlf", "POST", "/faults", rules({"error": "server_error", "headers": {"X-A": "a\r\nSet-Cookie: b"}}),
     400, "rules[1].do.headers.X-A"),
    ("fault-header-nul", "POST", "/faults", rules({"error": "server_error", "headers": {"X-A": "a\u0000"}}), 400,
     "rules[1].do.headers.X-A"),
    ("fault-header-name", "POST", "/faults", rules({"error": "server_error", "headers": {"X A": "1"}}), 400,
     "rules[1].do.headers"),
    ("fault-header-framing", "POST", "/faults", rules({"error": "server_error", "headers": {"Content-Length": "0"}}),
     400, "rules[1].do.headers.Content-Length"),
    ("fault-header-placeholder", "POST", "/faults", rules({"error": "rate_limited", "headers": {"X-A": "{nope}"}}),
     400, "rules[1].do.headers.X-A"),
    ("fault-header-brace", "POST", "/faults", rules({"error": "rate_limited", "headers": {"X-A": "{"}}), 400,
     "rules[1].do.headers.X-A"),
    ("fault-retry-negative", "POST", "/faults", rules({"error": "rate_limited", "retry_after": -5}), 400,
     "rules[1].do.retry_after"),
    ("fault-retry-text", "POST", "/faults", rules({"error": "rate_limited", "retry_after": "soon"}), 400,
     "rules[1].do.retry_after"),
    ("fault-retry-nan", "POST", "/faults", rules({"error": "rate_limited", "retry_after": float("nan")}), 400,
     "rules[1].do.retry_after"),
    ("fault-retry-infinity", "POST", "/faults", rules({"error": "rate_limited", "retry_after": float("inf")}), 400,
     "rules[1].do.retry_after"),
    ("fault-unknown-key", "POST", "/faults", rules({"error": "rate_limited", "retry_afer": 2}), 400,
     "rules[1].do.retry_afer"),
    ("fault-kind-of-one-provider", "POST", "/faults", rules({"error": "conflict"}), 400, "rules[1].do.error"),
    ("fault-message-type", "POST", "/faults", rules({"error": "server_error", "message": {"a": 1}}), 400,
     "rules[1].do.message"),
    ("fault-task-at", "POST", "/faults", rules({"task": "fail", "at": 2}), 400, "rules[1].do.at"),
    ("fault-task-queue", "POST", "/faults", rules({"task": "slow", "queue": {"distribution": "fixed",
                                                                           "seconds": 1e300}}), 400,
     "rules[1].do.queue.seconds"),
    ("fault-task-images", "POST", "/faults", rules({"task": "partial_block", "images": [-1]}), 400,
     "rules[1].do.images[0]"),
    ("fault-task-expire", "POST", "/faults", rules({"task": "expire", "after": float("nan")}), 400,
     "rules[1].do.after"),
    ("fault-task-unknown-key", "POST", "/faults", rules({"task": "block", "images": [0]}), 400, "rules[1].do.images"),
    ("fault-latency", "POST", "/faults", rules({"network": "latency", "seconds": 1e9}), 400, "rules[1].do.seconds"),
    ("fault-network-kind", "POST", "/faults", rules({"network": "explode"}), 400, "rules[1].do.network"),
    ("fault-trickle", "POST", "/faults", rules({"network": "trickle", "chunk": 0}), 400, "rules[1].do.chunk"),
    ("fault-webhook-delay", "POST", "/faults", rules({"webhook": "delay", "seconds": -1}), 400, "rules[1].do.seconds"),
    ("fault-no-action", "POST", "/faults", rules({"status": 500}), 400, "rules[1].do"),
    ("fault-unknown-provider", "POST", "/faults",
     body({"rules": [GOOD_RULE, {"match": {"provider": "nope"}, "do": {"error": "server_error"}}]}), 400,
     "rules[1].match.provider"),
    ("fault-when-nan", "POST", "/faults", body({"rules": [GOOD_RULE, {"when": {"probability": float("nan")},
                                                                    "do": {"error": "server_error"}}]}), 400,
     "rules[1].when.probability"),
    ("fault-rules-not-a-list", "POST", "/faults", b'{"rules": {"do": {"error": "server_error"}}}', 400, "rules"),
    ("limit-per-nan", "PUT", "/limits", b'{"limits": [{"requests": 5, "per": NaN}]}', 400, "limits[0].per"),
    ("limit-negative", "PUT", "/limits", b'{"limits": [{"requests": -1}]}', 400, "limits[0].requests"),
    ("limit-fraction", "PUT", "/limits", b'{"limits": [{"concurrent": 1.5}]}', 400, "limits[0].concurrent"),
    ("limit-empty", "PUT", "/limits", b'{"limits": [{"per": 5}]}', 400, "limits[0]"),
    ("limit-provider", "PUT", "/limits", b'{"limits": [{"requests": 1, "provider": "nope"}]}', 400,
     "limits[0].provider"),
    # found 9: wallets
    ("credits-nan", "PUT", "/credits/civitai/k", b'{"balance": NaN}', 400, "balance"),
    ("credits-infinity", "PUT", "/credits/civitai/k", b'{"balance": Infinity}', 400, "balance"),
    ("credits-minus-infinity", "PUT", "/credits/civitai/k", b'{"balance": -Infinity}', 400, "balance"),
    ("credits-1e400", "PUT", "/credits/civitai/k", b'{"balance": 1e400}', 400, "balance"),
    ("credits-negative", "PUT", "/credits/civitai/k", b'{"balance": -1}', 400, "balance"),
    ("credits-huge", "PUT", "/credits/civitai/k", b'{"balance": 1e13}', 400, "balance"),
    ("credits-text", "PUT", "/credits/civitai/k", b'{"balance": "5"}', 400, "balance"),
    ("credits-missing", "PUT", "/credits/civitai/k", b'{"balanse": 5}', 400, "balanse"),
    ("credits-unknown-provider", "PUT", "/credits/nope/k", b'{"balance": 5}', 404, "provider"),
    # found 10: moderation
    ("moderation-unclosed", "PUT", "/moderation", body({"patterns": ["fine", "(unclosed"]}), 400, "patterns[1]"),
    ("moderation-backreference", "PUT", "/moderation", body({"patterns": [r"(a)\1"]}), 400, "patterns[0]"),
    ("moderation-lookbehind", "PUT", "/moderation", body({"patterns": ["(?<=a)b"]}), 400, "patterns[0]"),
    ("moderation-empty", "PUT", "/moderation", body({"patterns": [""]}), 400, "patterns[0]"),
    ("moderation-long", "PUT", "/moderation", body({"patterns": ["x" * 3000]}), 400, "patterns[0]"),
    ("moderation-number", "PUT", "/moderation", body({"patterns": [5]}), 400, "patterns[0]"),
    ("moderation-too-many", "PUT", "/moderation", body({"patterns": ["x"] * 201}), 400, "patterns"),
    ("moderation-not-a-list", "PUT", "/moderation", body({"patterns": "x"}), 400, "patterns"),
    # found 11: options
    ("option-negative-ttl", "PUT", "/options/civitai", b'{"wait_cap_seconds": 50, "url_ttl_seconds": -5}', 400,
     "url_ttl_seconds"),
    ("option-nan", "PUT", "/options/civitai", b'{"url_ttl_seconds": NaN}', 400, "url_ttl_seconds"),
    ("option-huge", "PUT", "/options/civitai", b'{"url_ttl_seconds": 1e12}', 400, "url_ttl_seconds"),
    ("option-type", "PUT", "/options/civitai", b'{"url_ttl_seconds": true}', 400, "url_ttl_seconds"),
    ("option-list-item", "PUT", "/options/civitai", b'{"callback_retry_delays": [1, -1]}', 400,
     "callback_retry_delays"),
    ("option-choice", "PUT", "/options/civitai", b'{"blob_redirect_status": 303}', 400, "blob_redirect_status"),
    ("option-unknown", "PUT", "/options/civitai", b'{"url_tl_seconds": 5}', 400, "url_tl_seconds"),
    ("option-depth", "PUT", "/options/civitai", b'{"max_json_depth": 100000}', 400, "max_json_depth"),
    ("option-events", "PUT", "/options/qingbo", b'{"callback_default_events": ["succeeded"]}', 400,
     "callback_default_events"),
    ("option-unknown-provider", "PUT", "/options/nope", b'{}', 404, "provider"),
    # the rest of the plane
    ("auth-empty-token", "PUT", "/auth/civitai", b'{"tokens": ["a", ""]}', 400, "tokens[1]"),
    ("auth-not-a-list", "PUT", "/auth/civitai", b'{"tokens": "a"}', 400, "tokens"),
    ("reset-fraction", "POST", "/reset", b'{"seed": 1.5}', 400, "seed"),
    ("reset-huge-seed", "POST", "/reset", body({"seed": 2**70}), 400, "seed"),
    ("reset-typo", "POST", "/reset", b'{"sead": 1}', 400, "sead"),
    ("self-check-mode", "PUT", "/self-check", b'{"mode": "loud"}', 400, "mode"),
    ("scenario-path", "POST", "/scenarios", b'{"name": "/etc/passwd"}', 400, "name"),
    ("scenario-relative-path", "POST", "/scenarios", b'{"name": "../scenarios/chaos"}', 400, "name"),
    ("scenario-both", "POST", "/scenarios", b'{"name": "chaos", "yaml": "faults: []"}', 400, "name"),
    ("scenario-date", "POST", "/scenarios", body({"yaml": "name: 2024-01-01\n"}), 400, "posted.name"),
    ("scenario-bad-rule", "POST", "/scenarios", body({"yaml": "faults: [{do: {error: nope}}]\n"}), 400,
     "posted.faults[0].do.error"),
    ("scenario-bad-pattern", "POST", "/scenarios", body({"yaml": "moderation: {patterns: ['(x']}\n"}), 400,
     "posted.moderation.patterns[0]"),
    ("scenario-bad-option", "POST", "/scenarios",
     body({"yaml": "options: {civitai: {wait_cap_seconds: 5, url_ttl_seconds: -5}}\n"}), 400,
     "posted.options.civitai.url_ttl_seconds"),
    ("scenario-bad-wallet", "POST", "/scenarios", body({"yaml": "wallets: [{provider: civitai, balance: .nan}]\n"}),
     400, "posted.wallets[0].balance"),
    ("scenario-alias-bomb", "POST", "/scenarios", body({"yaml": BOMB}), 400, "posted"),
    ("scenario-deep-yaml", "POST", "/scenarios", body({"yaml": "faults: " + "[" * 5000}), 400, "posted"),
    # bodies and routes
    ("body-array", "POST", "/reset", b"[1]", 400, "body"),
    ("body-broken", "POST", "/faults", b'{"rules": [', 400, "body"),
    ("body-giant-integer", "POST", "/reset", b'{"seed": 1' + b"0" * 5000 + b"}", 400, "body"),
    ("body-surrogate-key", "PUT", "/options/civitai", b'{"\\udc00": 1}', 400, "body"),
    ("body-surrogate-value", "PUT", "/moderation", b'{"patterns": ["\\ud800"]}', 400, "patterns[0]"),
    ("body-deep", "POST", "/faults", b'{"a":' * 40 + b"1" + b"}" * 40, 400, ".".join(["a"] * 33)),
    ("body-not-utf8", "POST", "/reset", b'{"seed": "\xff"}', 400, "body"),
    ("body-too-large", "PUT", "/moderation", b'{"patterns": ["' + b"x" * (5 * 1024 * 1024) + b'"]}', 413, "body"),
    ("journal-after", "GET", "/journal?after=x", b"", 400, "after"),
    ("journal-limit", "GET", "/journal?limit=-1", b"", 400, "limit"),
    ("journal-since-nan", "GET", "/journal?since=nan", b"", 400, "since"),
    ("journal-status", "GET", "/journal?status=abc", b"", 400, "status"),
    ("journal-typo", "GET", "/journal?operaton=GetWorkflow", b"", 400, "operaton"),
    ("journal-flag", "GET", "/journal?faulted=maybe", b"", 400, "faulted"),
]


def state(http: httpx.Client, base: str) -> dict[str, Any]:
    """What the control plane says the simulator holds (what a refused call must leave as it was)."""
    return {route: http.get(f"{base}/_sim{route}").json() for route in STATE_ROUTES}


def assert_healthy(http: httpx.Client, live: LiveServer) -> None:
    """Every GET /_sim route answers 200 with JSON, and a provider still takes a submit."""
    for route in HEALTH_ROUTES:
        response = http.get(f"{live.url}/_sim{route}")
        assert response.status_code == 200, (route, response.text[:300])
        response.json()
    submitted = http.post(f"{live.provider_url('civitai')}/v2/consumer/workflows", json=nb2_body(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert submitted.status_code == 202, submitted.text[:300]


@pytest.fixture
def seeded(control: ControlClient) -> ControlClient:
    """A simulator holding something of everything a refused call could disturb."""
    control.add_faults(GOOD_RULE)
    control.set_limits({"requests": 1000, "per": 60})
    control.set_balance("civitai", "k", 42)
    control.set_moderation(["(?i)forbidden"])
    control.set_options("civitai", url_ttl_seconds=120, wait_cap_seconds=30)
    control.set_tokens("civitai", [TOKEN, "other"])
    control.advance(5)
    return control


@pytest.mark.parametrize("method, route, raw, status, field", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_a_refused_call_changes_nothing_and_breaks_nothing(
    seeded: ControlClient, server: LiveServer, http: httpx.Client,
    method: str, route: str, raw: bytes, status: int, field: str,
) -> None:
    before = state(http, server.url)
    response = http.request(method, f"{server.url}/_sim{route}", content=raw,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["field"] == field, answer
    assert answer["error"].startswith(f"{field}: "), answer
    assert len(answer["error"]) < 2000  # a huge value is never echoed back whole
    assert state(http, server.url) == before
    assert_healthy(http, server)


def test_the_table_covers_every_found_class() -> None:
    names = [case[0] for case in CASES]
    assert len(names) == len(set(names)) and len(names) >= 80
    for prefix in ("clock-", "tick-", "fault-", "limit-", "credits-", "moderation-", "option-", "scenario-", "body-"):
        assert any(name.startswith(prefix) for name in names), prefix


def test_unknown_routes_and_methods_answer_in_json(server: LiveServer, http: httpx.Client) -> None:
    missing = http.get(f"{server.url}/_sim/no-such-route")
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/json")
    assert "no control route /_sim/no-such-route" in missing.json()["error"]
    wrong = http.delete(f"{server.url}/_sim/clock")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD, PUT")
    assert wrong.json()["error"] == "DELETE is not served on /_sim/clock; allowed: GET, HEAD, PUT"


def test_cross_site_calls_are_refused(control: ControlClient, server: LiveServer, http: httpx.Client) -> None:
    refused = http.post(f"{server.url}/_sim/moderation", json={"patterns": []},
                        headers={"Origin": "https://attacker.example"})
    assert (refused.status_code, refused.json()["field"]) == (403, "Origin")
    assert control.faults()["rules"] == [] and http.get(f"{server.url}/_sim/moderation").json()["patterns"]
    same = http.put(f"{server.url}/_sim/moderation", json={"patterns": ["x"]},
                    headers={"Origin": server.url})
    assert same.status_code == 200


# -- the clock's end ---------------------------------------------------------------------------------------------


def test_the_clock_runs_to_its_horizon_and_every_route_still_answers(
    control: ControlClient, server: LiveServer, http: httpx.Client
) -> None:
    assert control.advance_to(HORIZON) == HORIZON
    assert control.info()["clock"]["iso"] == "3000-01-01T00:00:00Z"
    assert_healthy(http, server)
    refused = http.post(f"{server.url}/_sim/clock/advance", json={"seconds": 1})
    assert refused.status_code == 400
    assert refused.json()["error"] == ("seconds: the clock ends at 3000-01-01T00:00:00Z, 0 seconds from now, and "
                                       "cannot move 1 seconds")
    control.set_tick(86400)  # a tick at the end of time leaves the clock there
    assert_healthy(http, server)
    assert control.now() == HORIZON
    control.reset()
    assert control.now() == DEFAULT_VIRTUAL_EPOCH


def test_nan_never_moves_the_clock_in_python_either() -> None:
    import asyncio

    from simulator.clock import ClockError, VirtualClock

    clock = VirtualClock()
    for bad in (float("nan"), -1.0):
        with pytest.raises(ClockError):
            asyncio.run(clock.advance(bad))
    assert asyncio.run(clock.advance(1e300)) == HORIZON  # a waiter or tick past the end leaves it at the end
    with pytest.raises(ClockError, match="tick"):
        VirtualClock(tick=float("inf"))


# -- fault rules that pass can be carried out everywhere -------------------------------------------------------

PROBES = {  # one request per provider that any provider-wide rule matches
    "civitai": ("GET", "/v2/consumer/workflows/wf-none", None, {"Authorization": f"Bearer {TOKEN}"}),
    "qingbo": ("GET", "/v1/tasks/task-none", None, {"Authorization": f"Bearer {TOKEN}"}),
    "runware": ("POST", "/v1", [{"taskType": "ping"}], {"Authorization": f"Bearer {TOKEN}"}),
    "crun": ("GET", "/api/v1/client/account/balance", None, {"x-api-key": TOKEN}),
    "foxapi": ("GET", "/v1/account/credits", None, {"Authorization": f"Bearer {TOKEN}"}),
    "evolink": ("GET", "/v1/credits", None, {"Authorization": f"Bearer {TOKEN}"}),
}


def _probe(http: httpx.Client, live: LiveServer, slug: str) -> httpx.Response:
    method, path, payload, headers = PROBES[slug]
    return http.request(method, live.provider_url(slug) + path, json=payload, headers=headers)


@pytest.mark.parametrize("slug", sorted(PROBES))
def test_every_error_kind_a_rule_may_name_renders_on_its_provider(
    slug: str, control: ControlClient, server: LiveServer, http: httpx.Client
) -> None:
    from simulator.faults.actions import error_kinds

    forced = [{"error": kind, "retry_after": 3, "headers": {"X-Sim-Limit": "{limit}", "X-Sim-Reset": "{reset}"}}
              for kind in sorted(error_kinds(slug))]
    forced += [{"error": "http", "status": status, "message": "chosen", "code": "chosen_code"}
               for status in (200, 301, 418, 455, 599)]
    for do in forced:
        control.reset()
        control.add_faults({"match": {"provider": slug}, "when": {"times": 1}, "do": do})
        response = _probe(http, server, slug)
        [entry] = control.journal(provider=slug)
        assert entry["note"] is None, (do, entry["note"])  # no internal error rendering it
        assert entry["faults"] and response.status_code == entry["status"]
        if do["error"] == "http":
            assert response.status_code == do["status"]
    control.reset()
    assert _probe(http, server, slug).status_code < 500


def test_a_provider_only_kind_is_taken_when_the_rule_names_that_provider(control: ControlClient) -> None:
    [rule] = control.add_faults({"match": {"provider": "civitai"}, "do": {"error": "conflict"}})
    assert rule["do"] == {"error": "conflict"}
    with pytest.raises(Exception, match="not an error kind of qingbo"):
        control.add_faults({"match": {"provider": ["civitai", "qingbo"]}, "do": {"error": "conflict"}})
    assert len(control.faults()["rules"]) == 1


# -- moderation on RE2 -----------------------------------------------------------------------------------------


def test_a_backtracking_pattern_cannot_hang_the_server(control: ControlClient, server: LiveServer,
                                                       http: httpx.Client) -> None:
    """`(a+)+$` against 41 characters hung Python's `re`; RE2 reads a 40,000-character prompt once."""
    control.set_moderation(["(a+)+$", "(?i)FORBIDDEN words"])
    url = f"{server.provider_url('civitai')}/v2/consumer/workflows"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for prompt in ("a" * 40_000 + "!", "a banana split", "some forbidden WORDS", "a" * 41):
        assert http.post(url, json=nb2_body(prompt=prompt), headers=auth).status_code == 202
    blocked = [all(image["blocked"] for image in task["outputs"]) for task in control.tasks("civitai")]
    assert blocked == [False, False, True, True]
    assert_healthy(http, server)

"""What a rule may `do`, checked in full when the rule is added, so a rule in force can always be carried out.

Every key of `do` is known and every value in range: an error kind that some provider the rule reaches would
not know, a status no HTTP answer can carry, a header that would break the response, or a delay of NaN is
refused with the field it sits in, before any rule of the call is put in force.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache
from typing import Any

from simulator import checks
from simulator.clock import HORIZON
from simulator.faults.errors import DEFAULT_ERRORS, check_code
from simulator.faults.network import check_network_action
from simulator.faults.plan import PlanError
from simulator.faults.task_actions import TASK_KEYS, check_task_action
from simulator.options import known_provider, provider_data, provider_slugs

ACTION_KEYS = ("error", "network", "task", "webhook")
# Keys an error action may carry: the status and wording, extra headers, and the quota members some
# providers show beside a 429 (qingbo's window / used / cap / reset_at; `limit` fills a `{limit}` header).
ERROR_KEYS = frozenset({"status", "message", "code", "headers", "retry_after", "reset_at", "limit", "window", "cap",
                        "used"})
NETWORK_KEYS = {"latency": {"seconds"}, "trickle": {"chunk", "interval"}, "reset": set(), "empty": set(),
                "truncate": {"fraction"}, "malformed": set(), "close": {"close_code", "reason"}}
WEBHOOK_KEYS = {"drop": set(), "duplicate": set(), "delay": {"seconds"}, "reorder": {"seconds"}}
WEBHOOK_ACTIONS = frozenset(WEBHOOK_KEYS)

# Clock seconds a rule may name (delays, retry hints): a year is past any rehearsal.
MAX_CLOCK_SECONDS = 365 * 86400.0
# Network faults hold a real socket for real seconds.
MAX_REAL_SECONDS = 600.0
MAX_TEXT = 10_000
MAX_HEADERS = 50
# Statuses an error answer can carry: 1xx are not final answers, and 204, 205 and 304 cannot carry the body
# every provider's error envelope has (the connection would break on it).
BODILESS_STATUSES = frozenset({204, 205, 304})
# Headers that frame the answer or the connection are the server's to set, not a rule's.
RESERVED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                              "trailer", "proxy-connection", "date", "content-type"})
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,4096}")
HEADER_PLACEHOLDERS = frozenset({"retry_after", "limit", "reset"})


def check_action(
    do: Mapping[str, Any], field: str = "do", match: Mapping[str, Any] | None = None,
    providers: list[str] | None = None,
) -> None:
    """Refuse a `do` that could not be carried out on every provider the rule reaches: those its `match` names,
    else `providers` (the served ones; None: every known provider)."""
    present = [key for key in ACTION_KEYS if key in do]
    if not present:
        raise PlanError(f"{field}: `do` needs one of {list(ACTION_KEYS)}", field)
    allowed = set(present)
    if "error" in do:
        _check_error(do, field, reached(match or {}, f"{field.removesuffix('.do')}.match", providers))
        allowed |= ERROR_KEYS
    if "network" in do:
        try:
            check_network_action(do, field)
        except PlanError as exc:  # its message names the `do`; the field is the `network` key in it
            where = checks.join(field, "network")
            raise PlanError(f"{where}: {str(exc).removeprefix(f'{field}: ')}", where) from None
        allowed |= NETWORK_KEYS[do["network"]]
        if "close_code" in do:  # what a server may send in a close frame (RFC 6455 §7.4)
            checks.number(do["close_code"], checks.join(field, "close_code"), low=1000, high=4999, integer=True)
    if "task" in do:
        check_task_action(do, field)
        allowed |= TASK_KEYS[do["task"]]
    if "webhook" in do:
        if do["webhook"] not in WEBHOOK_ACTIONS:
            where = checks.join(field, "webhook")
            raise PlanError(f"{where}: webhook action must be one of {sorted(WEBHOOK_ACTIONS)}, "
                            f"not {checks.quote(do['webhook'])}", where)
        allowed |= WEBHOOK_KEYS[do["webhook"]]
    checks.mapping(do, field, allowed, f"this `do` ({', '.join(present)})")
    for key, low, high, integer in (("seconds", 0, MAX_REAL_SECONDS if "network" in do else MAX_CLOCK_SECONDS, False),
                                    ("interval", 0, 60, False), ("chunk", 1, 1024 * 1024, True),
                                    ("fraction", 0, 1, False)):
        if key in do:
            checks.number(do[key], checks.join(field, key), low=low, high=high, integer=integer)


def reached(match: Mapping[str, Any], field: str, providers: list[str] | None = None) -> list[str]:
    """The providers a rule can reach: those its `match.provider` names (each must exist), else `providers`."""
    wanted = match.get("provider")
    if wanted is None:
        return provider_slugs() if providers is None else providers
    if not isinstance(wanted, list):
        return [known_provider(wanted, checks.join(field, "provider"))]
    return [known_provider(slug, f"{field}.provider[{i}]") for i, slug in enumerate(wanted)]


@cache
def error_kinds(slug: str) -> frozenset[str]:
    """The error kinds a provider renders: the generic ones and those its provider.json `faults` adds."""
    table = provider_data(slug).get("faults", {})
    return frozenset(DEFAULT_ERRORS) | {kind for kind in table if not kind.startswith("$")}


def _check_error(do: Mapping[str, Any], field: str, providers: list[str]) -> None:
    kind = do["error"]
    where = checks.join(field, "error")
    if not isinstance(kind, str):
        raise PlanError(f"{where}: names a kind, e.g. rate_limited (or 'http' with a status), "
                        f"not {checks.quote(kind)}", where)
    if kind == "http" and "status" not in do:
        raise PlanError(f"{checks.join(field, 'status')}: error 'http' needs a status (e.g. 418)",
                        checks.join(field, "status"))
    lacking = [slug for slug in providers if kind != "http" and kind not in error_kinds(slug)]
    if lacking:
        everywhere = sorted(frozenset.intersection(*(error_kinds(slug) for slug in providers)) | {"http"})
        some = sorted(set().union(*(error_kinds(slug) for slug in providers)) - set(everywhere))
        hint = f"; {', '.join(some)} only with match.provider set to a provider that has it" if some else ""
        raise PlanError(f"{where}: {checks.quote(kind)} is not an error kind of {', '.join(lacking)}; use one of "
                        f"{', '.join(everywhere)}{hint}", where)
    if "status" in do:
        status = checks.number(do["status"], checks.join(field, "status"), low=200, high=599, integer=True)
        if status in BODILESS_STATUSES:
            raise PlanError(f"{checks.join(field, 'status')}: {status} cannot carry an error body; "
                            "use a status from 200 to 599 other than 204, 205 and 304", checks.join(field, "status"))
    if "message" in do:
        checks.text(do["message"], checks.join(field, "message"), max_length=MAX_TEXT)
    if "code" in do:
        check_code(do["code"], checks.join(field, "code"))
    if "retry_after" in do:
        checks.number(do["retry_after"], checks.join(field, "retry_after"), low=0, high=MAX_CLOCK_SECONDS,
                      unit="seconds")
    if "reset_at" in do:
        checks.number(do["reset_at"], checks.join(field, "reset_at"), low=0, high=HORIZON, unit="POSIX seconds")
    for key in ("limit", "cap", "used"):
        if key in do:
            checks.number(do[key], checks.join(field, key), low=0, high=1_000_000_000, integer=True)
    if "window" in do:
        if isinstance(do["window"], str):
            checks.text(do["window"], checks.join(field, "window"), max_length=32, empty=False)
        else:
            checks.number(do["window"], checks.join(field, "window"), low=0, high=MAX_CLOCK_SECONDS, above=True,
                          unit="seconds (or a text such as 1h)")
    if "headers" in do:
        _check_headers(do["headers"], checks.join(field, "headers"))


def _check_headers(headers: Any, field: str) -> None:
    checks.mapping(headers, field, None, "an object of header names to values")
    if len(headers) > MAX_HEADERS:
        raise PlanError(f"{field}: at most {MAX_HEADERS} headers, not {len(headers)}", field)
    for name, value in headers.items():
        where = checks.join(field, name)
        if HEADER_NAME.fullmatch(name) is None:
            raise PlanError(f"{field}: {checks.quote(name)} is not an HTTP header name (letters, digits and "
                            "!#$%&'*+-.^_`|~, at most 100)", field)
        if name.lower() in RESERVED_HEADERS:
            raise PlanError(f"{where}: {name} frames the answer and is the server's to set", where)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PlanError(f"{where}: a header value is a string or a number, not {checks.quote(value)}", where)
        shown = value if isinstance(value, str) else str(checks.number(value, where, low=-1e15, high=1e15))
        if HEADER_VALUE.fullmatch(shown) is None:
            raise PlanError(f"{where}: a header value is printable ASCII (tabs allowed, no CR, LF or NUL), at most "
                            f"4096 characters, not {checks.quote(shown)}", where)
        _check_placeholders(shown, where)


def _check_placeholders(value: str, field: str) -> None:
    """`{retry_after}`, `{limit}` and `{reset}` are filled in when the header goes out; nothing else may be."""
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise PlanError(f"{field}: {exc} (write a literal brace as {{{{ or }}}})", field) from None
    for _, name, spec, conversion in parts:
        if name is not None and (name not in HEADER_PLACEHOLDERS or spec or conversion):
            raise PlanError(f"{field}: {{{name}}} is not a placeholder; use {{retry_after}}, {{limit}} or {{reset}}",
                            field)

"""The control plane under /_sim: drive the simulator from tests in any language.

Every call is taken whole or refused whole: the body is read (at most MAX_BODY bytes) and every value in it is
checked before anything changes, and a refusal is a 400 whose JSON names the field (`{"error": …, "field":
"rules[0].do.status"}`). What a call stores is plain JSON within range, so no later `GET /_sim/…` can fail on it.
With a control token set, every route needs `Authorization: Bearer <token>` (a 401 otherwise); a call a
browser makes from another site's page (its `Origin` is not this server) is refused, token or not.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from simulator import checks
from simulator.checks import Invalid
from simulator.clock import HORIZON, VirtualClock, check_moment, check_tick, to_datetime
from simulator.engine.wallets import check_balance
from simulator.faults import scenario
from simulator.http.context import public_base
from simulator.inspector import records
from simulator.inspector.masking import masked_entry
from simulator.inspector.routes import inspector_table, ui_routes
from simulator.openapi import openapi_document
from simulator.security import bearer_matches
from simulator.self_check import Mode as SelfCheckMode

if TYPE_CHECKING:
    from simulator.sim import Simulator

log = logging.getLogger("nanobanana_sim")

Handler = Callable[[Request], Awaitable[Response]]

# A control body is a handful of rules, patterns or a scenario's YAML; more is a mistake or an attack.
MAX_BODY = 4 * 1024 * 1024
MAX_BODY_VALUES = 200_000
MAX_TOKENS = 10_000
# Seeds are hashed into every stream; beyond 64 bits they stop meaning anything.
MAX_SEED = 2**64
JOURNAL_PARAMS = frozenset({"kind", "provider", "operation", "status", "owner", "task_id", "since", "until", "after",
                            "faulted", "self_check", "limit", "search", "rejected", "masked", "summary"})
# How many characters a journal search may be: it is matched against every entry's JSON text.
MAX_SEARCH = 1000


class ControlError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _refusal(status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def _read(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ControlError(413, f"body: a control body is at most {MAX_BODY} bytes, not {declared}", "body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ControlError(413, f"body: a control body is at most {MAX_BODY} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """The JSON object a call sends (empty for no body): plain JSON, only `allowed` keys when given."""
    raw = await _read(request)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(400, f"body: not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "body") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, an integer past Python's digit limit, deep nesting
        raise ControlError(400, f"body: not JSON this simulator can take: {str(exc)[:200]}", "body") from None
    if not isinstance(value, dict):
        raise ControlError(400, f"body: must be a JSON object, not {checks.quote(value)}", "body")
    checks.plain(value, "", max_nodes=MAX_BODY_VALUES)
    if allowed is not None:
        checks.mapping(value, "", allowed, "this body")
    return value


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on every cross-site call that could change state; other clients send none."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def _guard(sim: Simulator, handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        token = sim.control_token
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            return _refusal(401, "the control plane needs Authorization: Bearer <token>: this simulator was started "
                                 "with a control token (--control-token or NANOBANANA_CONTROL_TOKEN)",
                            "Authorization", {"WWW-Authenticate": 'Bearer realm="nanobanana-sim control"'})
        if not _same_origin(request):
            return _refusal(403, "cross-origin calls to the control plane are refused (the request's Origin is not "
                                 "this server)", "Origin")
        try:
            return await handler(request)
        except ControlError as exc:
            return _refusal(exc.status, exc.message, exc.field)
        except Invalid as exc:
            return _refusal(400, str(exc), exc.field)
        except Exception as exc:  # a bug: say so in JSON, and log it, rather than answer 400 for it
            log.exception("control %s %s failed", request.method, request.url.path)
            return _refusal(500, f"the simulator hit an internal error: {type(exc).__name__}: {str(exc)[:500]}")

    return guarded


def control_routes(sim: Simulator) -> list[Route]:
    engine = sim.engine

    def provider_or_404(request: Request) -> Any:
        slug = request.path_params["provider"]
        if slug not in sim.providers:
            raise ControlError(404, f"provider: {checks.quote(slug)} is not served; serving {sorted(sim.providers)}",
                               "provider")
        return sim.providers[slug]

    def virtual_clock(what: str) -> VirtualClock:
        if not isinstance(engine.clock, VirtualClock):
            raise ControlError(409, f"the clock is real; start with a virtual clock to {what} it")
        return engine.clock

    async def info(request: Request) -> Response:
        return JSONResponse({
            "seed": engine.seed,
            "clock": engine.clock.describe(),
            "providers": {slug: {"prefix": f"/{slug}", "hosts": p.hosts} for slug, p in sim.providers.items()},
            "default_provider": sim.default_provider,
            "tasks": len(engine.tasks),
            "tasks_retention": {"capacity": engine.tasks.capacity, "retired": engine.tasks.retired},
            "journal": {"entries": len(engine.journal), "dropped": engine.journal.dropped,
                        "bytes": engine.journal.bytes},
            "self_check": sim.self_check.value,
            "control_token": sim.control_token is not None,
        })

    async def reset(request: Request) -> Response:
        body = await _body(request, frozenset({"seed"}))
        seed = body.get("seed")
        if seed is not None:
            seed = int(checks.number(seed, "seed", low=-MAX_SEED, high=MAX_SEED, integer=True))
        sim.reset(seed)
        return JSONResponse({"reset": True, "seed": engine.seed, "clock": engine.clock.describe()})

    async def clock(request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request, frozenset({"autojump", "tick"}))
            target = virtual_clock("change")
            autojump = body.get("autojump", target.autojump)
            if not isinstance(autojump, bool):
                raise ControlError(400, f"autojump: must be true or false, not {checks.quote(autojump)}", "autojump")
            tick = check_tick(body.get("tick", target.tick))
            target.autojump, target.tick = autojump, tick
        return JSONResponse(engine.clock.describe())

    async def advance(request: Request) -> Response:
        body = await _body(request, frozenset({"seconds", "to"}))
        target = virtual_clock("advance")
        now = target.now()
        if "to" in body and "seconds" in body:
            raise ControlError(400, "to: give either seconds or to, not both", "to")
        end = to_datetime(HORIZON).isoformat().replace("+00:00", "Z")
        if "to" in body:
            to = check_moment(body["to"], "to")
            if to < now:
                raise ControlError(400, f"to: the clock cannot go backwards; it shows {now} now", "to")
        else:
            seconds = checks.number(body.get("seconds", 0), "seconds", low=0, high=HORIZON, unit="seconds")
            if now + seconds > HORIZON:
                raise ControlError(400, f"seconds: the clock ends at {end}, {HORIZON - now:.0f} seconds from now, "
                                        f"and cannot move {seconds:g} seconds", "seconds")
            to = now + seconds
        await engine.advance(max(0.0, to - target.now()))
        return JSONResponse(engine.clock.describe())

    async def journal(request: Request) -> Response:
        filters = _journal_filters(request)
        view = {name: filters.pop(name) for name in ("search", "rejected", "masked", "summary", "limit")}
        entries = engine.journal.entries(**filters)
        if view["rejected"] is not None:
            entries = [e for e in entries if records.rejected(e) == view["rejected"]]
        if view["search"]:
            entries = [e for e in entries if records.matches_text(engine.journal.serialized(e), view["search"])]
        if view["limit"]:
            entries = entries[-view["limit"]:]
        if view["summary"]:
            items = [json.dumps(records.summary(e)) for e in entries]
        elif view["masked"]:
            items = [json.dumps(masked_entry(json.loads(engine.journal.serialized(e))), ensure_ascii=False)
                     for e in entries]
        else:
            items = [engine.journal.serialized(e) for e in entries]
        return Response(f'{{"entries":[{",".join(items)}],"dropped":{engine.journal.dropped}}}',
                        media_type="application/json")

    async def journal_entry(request: Request) -> Response:
        _only_params(request, frozenset({"masked"}))
        seq = request.path_params["seq"]
        found = engine.journal.entries(after_seq=seq - 1, limit=None)
        if not found or found[0].seq != seq:
            raise ControlError(404, f"seq: no journal entry {seq} (the journal keeps the latest "
                                    f"{engine.journal.capacity}; {engine.journal.dropped} dropped)", "seq")
        text = engine.journal.serialized(found[0])
        if request.query_params.get("masked", "false").lower() == "true":
            text = json.dumps(masked_entry(json.loads(text)), ensure_ascii=False)
        return Response(text, media_type="application/json")

    async def clear_journal(request: Request) -> Response:
        engine.journal.clear()
        return Response(status_code=204)

    async def tasks(request: Request) -> Response:
        _only_params(request, frozenset({"provider"}))
        provider = request.query_params.get("provider")
        now = engine.clock.now()
        return JSONResponse({"tasks": [_task_summary(t, now) for t in engine.tasks.all(provider)]})

    async def task(request: Request) -> Response:
        found = engine.tasks.get(request.path_params["task_id"])
        if found is None:
            raise ControlError(404, "task_id: no such task", "task_id")
        return JSONResponse(_task_summary(found, engine.clock.now()))

    async def credits(request: Request) -> Response:
        return JSONResponse({"wallets": engine.wallets.snapshot()})

    async def wallet(request: Request) -> Response:
        provider = provider_or_404(request)
        owner = request.path_params["owner"]
        if request.method == "PUT":
            body = await _body(request, frozenset({"balance"}))
            if "balance" not in body:
                raise ControlError(400, "balance: required, e.g. {\"balance\": 0}", "balance")
            engine.wallets.set_balance(provider.slug, owner, check_balance(body["balance"]))
        return JSONResponse({
            "provider": provider.slug, "owner": owner, "balance": engine.wallets.balance(provider.slug, owner),
        })

    async def auth(request: Request) -> Response:
        provider = provider_or_404(request)
        if request.method == "PUT":
            body = await _body(request, frozenset({"tokens"}))
            tokens = body.get("tokens")
            if tokens is not None:
                checks.items(tokens, "tokens", max_items=MAX_TOKENS,
                             what="a list of strings, or null for any non-empty token")
                for i, token in enumerate(tokens):
                    checks.text(token, checks.join("tokens", i), max_length=4096, empty=False)
            provider.valid_tokens = set(tokens) if tokens is not None else None
        valid = sorted(provider.valid_tokens) if provider.valid_tokens is not None else None
        return JSONResponse({"provider": provider.slug, "tokens": valid})

    async def options(request: Request) -> Response:
        provider = provider_or_404(request)
        if request.method == "PUT":
            provider.options.update(await _body(request))
        return JSONResponse({"provider": provider.slug, "options": provider.options.describe()})

    async def moderation(request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request, frozenset({"patterns"}))
            engine.moderation.set(body.get("patterns"), "patterns")
        return JSONResponse({"patterns": engine.moderation.patterns})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request, frozenset({"rules"}))
            rules = checks.items(body.get("rules"), "rules", max_items=1000,
                                 what='a list of rules: {"rules": [{match, when, do}, …]}')
            engine.faults.add(rules, source="control", now=engine.now(), field="rules", providers=list(sim.providers))
        elif request.method == "DELETE":
            engine.faults.clear()
            engine.limits.clear()
        return JSONResponse({"rules": engine.faults.describe(), "limits": engine.limits.describe()})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request, frozenset({"limits"}))
            raw = checks.items(body.get("limits"), "limits", max_items=1000,
                               what='a list of limits: {"limits": [{requests, per, concurrent, …}, …]}')
            engine.limits.set(raw, "limits")
        return JSONResponse({"limits": engine.limits.describe()})

    async def scenarios(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request, frozenset({"name", "yaml", "source"}))
            if "name" in body and "yaml" not in body:
                loaded = scenario.load_shipped(checks.text(body["name"], "name", max_length=200))
            elif "yaml" in body and "name" not in body:
                source = checks.text(body.get("source", "posted"), "source", max_length=200, empty=False)
                loaded = scenario.parse(checks.text(body["yaml"], "yaml", max_length=MAX_BODY), source)
            else:
                raise ControlError(
                    400, 'name: name a shipped scenario ({"name": …}) or send one ({"yaml": …}), not both', "name")
            sim.load_scenario(loaded)
        elif request.method == "DELETE":
            sim.clear_scenarios()
        return JSONResponse({
            "loaded": [s.get("name") for s in sim.scenarios],
            "shipped": scenario.shipped(),
        })

    async def openapi(request: Request) -> Response:
        provider = provider_or_404(request)
        # Where this simulator serves the provider, as the caller addressed it, so the document drives it as is.
        document = openapi_document(provider.slug, server_url=f"{public_base(request)}/{provider.slug}",
                                    provider=provider)
        return JSONResponse(document)

    async def self_check(request: Request) -> Response:
        if request.method == "PUT":
            mode = (await _body(request, frozenset({"mode"}))).get("mode")
            choices = [m.value for m in SelfCheckMode]
            if mode not in choices:
                raise ControlError(400, f"mode: must be one of {choices}, not {checks.quote(mode)}", "mode")
            sim.self_check = SelfCheckMode(mode)
        broken = engine.journal.entries(broken=True)
        return JSONResponse({"mode": sim.self_check.value, "broken": len(broken)})

    async def flush_webhooks(request: Request) -> Response:
        await engine.webhooks.flush()
        return JSONResponse({"pending": engine.webhooks.pending()})

    table: list[tuple[str, Handler, list[str]]] = [
        ("/", info, ["GET"]),
        ("/reset", reset, ["POST"]),
        ("/clock", clock, ["GET", "PUT"]),
        ("/clock/advance", advance, ["POST"]),
        ("/journal", journal, ["GET"]),
        ("/journal", clear_journal, ["DELETE"]),
        ("/journal/{seq:int}", journal_entry, ["GET"]),
        ("/tasks", tasks, ["GET"]),
        ("/tasks/{task_id}", task, ["GET"]),
        ("/credits", credits, ["GET"]),
        ("/credits/{provider}/{owner}", wallet, ["GET", "PUT"]),
        ("/auth/{provider}", auth, ["GET", "PUT"]),
        ("/options/{provider}", options, ["GET", "PUT"]),
        ("/moderation", moderation, ["GET", "PUT"]),
        ("/webhooks/flush", flush_webhooks, ["POST"]),
        ("/faults", faults, ["GET", "POST", "DELETE"]),
        ("/limits", limits, ["GET", "PUT"]),
        ("/scenarios", scenarios, ["GET", "POST", "DELETE"]),
        ("/openapi/{provider}", openapi, ["GET"]),
        ("/self-check", self_check, ["GET", "PUT"]),
        *inspector_table(sim),
    ]
    routes = [Route(path, _guard(sim, handler), methods=methods) for path, handler, methods in table]
    # Every method, TRACE and `post` included, meets the JSON refusal rather than Starlette's text: Starlette lets
    # a route take any method only when its endpoint is an ASGI app, not a request handler.
    return [*routes, *ui_routes(), Route("/{path:path}", _AnyMethod(_guard(sim, _unknown(routes))), methods=None)]


class _AnyMethod:
    def __init__(self, handler: Handler) -> None:
        self.app = request_response(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _unknown(routes: list[Route]) -> Handler:
    """A JSON 404 for a path the control plane does not have, and a JSON 405 (with Allow) for a method it does not
    serve on a path it has, instead of Starlette's plain-text ones."""

    async def unknown(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        allowed = sorted({method for route in routes if route.path_regex.match(path) for method in route.methods or ()})
        if allowed:
            return _refusal(405, f"{request.method} is not served on /_sim{path}; allowed: {', '.join(allowed)}",
                            None, {"Allow": ", ".join(allowed)})
        return _refusal(404, f"no control route /_sim{path}; see GET /_sim/ and the README's control plane table")

    return unknown


def _only_params(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ControlError(400, f"{unknown[0]}: unknown query parameter; this route takes {', '.join(sorted(allowed))}",
                           unknown[0])


def _journal_filters(request: Request) -> dict[str, Any]:
    """The journal's filters from the query, each checked (a typo in a name is refused, not ignored)."""
    _only_params(request, JOURNAL_PARAMS)
    q = request.query_params

    def integer(name: str, low: int, high: int) -> int | None:
        if name not in q:
            return None
        text = q[name]
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise ControlError(400, f"{name}: must be a whole number, not {checks.quote(text)}", name)
        return int(checks.number(int(text), name, low=low, high=high, integer=True))

    def moment(name: str) -> float | None:
        if name not in q:
            return None
        try:
            value = float(q[name])
        except ValueError:
            raise ControlError(400, f"{name}: must be a clock time in seconds, not {checks.quote(q[name])}",
                               name) from None
        return checks.number(value, name, low=-HORIZON, high=HORIZON, unit="seconds")

    def flag(name: str) -> bool | None:
        if name not in q:
            return None
        if q[name].lower() not in ("true", "false"):
            raise ControlError(400, f"{name}: must be true or false, not {checks.quote(q[name])}", name)
        return q[name].lower() == "true"

    statuses = []
    for text in q.getlist("status"):
        if not text.isdigit() or len(text) != 3:
            raise ControlError(400, f"status: must be an HTTP status (100 to 599), not {checks.quote(text)}", "status")
        statuses.append(int(text))
    return {
        "kind": q.get("kind"), "provider": q.get("provider"), "operation": q.get("operation"),
        "status": statuses or None, "owner": q.get("owner"), "task_id": q.get("task_id"),
        "since": moment("since"), "until": moment("until"), "after_seq": integer("after", 0, 2**62),
        "faulted": flag("faulted"), "broken": flag("self_check"), "limit": integer("limit", 0, 2**62),
        "search": checks.text(q.get("search", ""), "search", max_length=MAX_SEARCH), "rejected": flag("rejected"),
        "masked": flag("masked"), "summary": flag("summary"),
    }


def _task_summary(task: Any, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "provider": task.provider,
        "owner": task.owner,
        "model": task.model,
        "phase": task.phase(now).value,
        "progress": task.progress(now),
        "timeline": {name: (t if math.isfinite(t) else None) for name, t in asdict(task.timeline).items()},
        "outcome": task.outcome.value,
        "failure": asdict(task.failure) if task.failure else None,
        "cost": task.cost,
        "outputs": [asdict(o) for o in task.outputs],
        "canceled_at": task.canceled_at,
        "faults": task.faults,
        "deleted_at": task.deleted_at,
    }

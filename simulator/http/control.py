"""The control plane under /_sim: drive the simulator from tests in any language."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.clock import VirtualClock
from simulator.faults import scenario
from simulator.faults.plan import PlanError
from simulator.http.context import public_base
from simulator.openapi import openapi_document
from simulator.options import OptionError
from simulator.self_check import Mode as SelfCheckMode

if TYPE_CHECKING:
    from simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(400, f"body is not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ControlError(400, "body must be a JSON object")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlError(400, f"{name} must be a number")
    return float(value)


def _guard(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except (OptionError, PlanError, KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc).strip("'\"")}, status_code=400)

    return guarded


def control_routes(sim: Simulator) -> list[Route]:
    engine = sim.engine

    def provider_or_404(request: Request) -> Any:
        slug = request.path_params["provider"]
        if slug not in sim.providers:
            raise ControlError(404, f"provider {slug!r} is not served; serving {sorted(sim.providers)}")
        return sim.providers[slug]

    async def info(request: Request) -> Response:
        return JSONResponse({
            "seed": engine.seed,
            "clock": engine.clock.describe(),
            "providers": {slug: {"prefix": f"/{slug}", "hosts": p.hosts} for slug, p in sim.providers.items()},
            "default_provider": sim.default_provider,
            "tasks": len(engine.tasks),
            "journal": {"entries": len(engine.journal), "dropped": engine.journal.dropped},
            "self_check": sim.self_check.value,
        })

    async def reset(request: Request) -> Response:
        body = await _body(request)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ControlError(400, "seed must be an integer")
        sim.reset(seed)
        return JSONResponse({"reset": True, "seed": engine.seed, "clock": engine.clock.describe()})

    async def clock(request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request)
            if not isinstance(engine.clock, VirtualClock):
                raise ControlError(409, "the clock is real; start with a virtual clock to change it")
            if "autojump" in body:
                if not isinstance(body["autojump"], bool):
                    raise ControlError(400, "autojump must be true or false")
                engine.clock.autojump = body["autojump"]
            if "tick" in body:
                tick = _number(body["tick"], "tick")
                if tick < 0:
                    raise ControlError(400, "tick must be ≥ 0 seconds")
                engine.clock.tick = tick
        return JSONResponse(engine.clock.describe())

    async def advance(request: Request) -> Response:
        if not isinstance(engine.clock, VirtualClock):
            raise ControlError(409, "the clock is real; start with a virtual clock to advance it")
        body = await _body(request)
        if "to" in body:
            seconds = _number(body["to"], "to") - engine.clock.now()
        else:
            seconds = _number(body.get("seconds", 0), "seconds")
        if seconds < 0:
            raise ControlError(400, "the clock cannot go backwards")
        await engine.advance(seconds)
        return JSONResponse(engine.clock.describe())

    async def journal(request: Request) -> Response:
        q = request.query_params

        def number(name: str) -> float | None:
            return _number(float(q[name]), name) if name in q else None

        statuses = [int(s) for s in q.getlist("status")] or None
        entries = engine.journal.entries(
            kind=q.get("kind"), provider=q.get("provider"), operation=q.get("operation"),
            status=statuses, owner=q.get("owner"), task_id=q.get("task_id"),
            since=number("since"), until=number("until"),
            after_seq=int(q["after"]) if "after" in q else None,
            faulted=q["faulted"].lower() == "true" if "faulted" in q else None,
            broken=q["self_check"].lower() == "true" if "self_check" in q else None,
            limit=int(q["limit"]) if "limit" in q else None,
        )
        return JSONResponse({"entries": [e.as_dict() for e in entries], "dropped": engine.journal.dropped})

    async def clear_journal(request: Request) -> Response:
        engine.journal.clear()
        return Response(status_code=204)

    async def tasks(request: Request) -> Response:
        provider = request.query_params.get("provider")
        now = engine.clock.now()
        return JSONResponse({"tasks": [_task_summary(t, now) for t in engine.tasks.all(provider)]})

    async def task(request: Request) -> Response:
        found = engine.tasks.get(request.path_params["task_id"])
        if found is None:
            raise ControlError(404, "no such task")
        return JSONResponse(_task_summary(found, engine.clock.now()))

    async def credits(request: Request) -> Response:
        return JSONResponse({"wallets": engine.wallets.snapshot()})

    async def wallet(request: Request) -> Response:
        provider = provider_or_404(request)
        owner = request.path_params["owner"]
        if request.method == "PUT":
            body = await _body(request)
            engine.wallets.set_balance(provider.slug, owner, _number(body.get("balance"), "balance"))
        return JSONResponse({
            "provider": provider.slug, "owner": owner, "balance": engine.wallets.balance(provider.slug, owner),
        })

    async def auth(request: Request) -> Response:
        provider = provider_or_404(request)
        if request.method == "PUT":
            tokens = (await _body(request)).get("tokens")
            if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
                raise ControlError(400, "tokens must be a list of strings, or null for any non-empty token")
            provider.valid_tokens = set(tokens) if tokens is not None else None
        valid = sorted(provider.valid_tokens) if provider.valid_tokens is not None else None
        return JSONResponse({"provider": provider.slug, "tokens": valid})

    async def options(request: Request) -> Response:
        provider = provider_or_404(request)
        if request.method == "PUT":
            for name, value in (await _body(request)).items():
                provider.options.set(name, value)
        return JSONResponse({"provider": provider.slug, "options": provider.options.describe()})

    async def moderation(request: Request) -> Response:
        if request.method == "PUT":
            patterns = (await _body(request)).get("patterns")
            if not (isinstance(patterns, list) and all(isinstance(p, str) for p in patterns)):
                raise ControlError(400, "patterns must be a list of regular expressions")
            engine.moderation.patterns = list(patterns)
        return JSONResponse({"patterns": engine.moderation.patterns})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            rules = (await _body(request)).get("rules")
            if not isinstance(rules, list):
                raise ControlError(400, "body must be {\"rules\": [ {match, when, do}, … ]}")
            engine.faults.add(rules, source="control", now=engine.now())
        elif request.method == "DELETE":
            engine.faults.clear()
            engine.limits.clear()
        return JSONResponse({"rules": engine.faults.describe(), "limits": engine.limits.describe()})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            raw = (await _body(request)).get("limits")
            if not isinstance(raw, list):
                raise ControlError(400, "body must be {\"limits\": [ {requests, per, concurrent, …}, … ]}")
            engine.limits.set(raw)
        return JSONResponse({"limits": engine.limits.describe()})

    async def scenarios(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            if "name" in body:
                loaded = scenario.load(str(body["name"]))
            elif "yaml" in body:
                loaded = scenario.parse(str(body["yaml"]), str(body.get("source", "posted")))
            else:
                raise ControlError(400, "body must name a shipped scenario ({\"name\": …}) or carry {\"yaml\": …}")
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
            mode = (await _body(request)).get("mode")
            choices = [m.value for m in SelfCheckMode]
            if mode not in choices:
                raise ControlError(400, f"mode must be one of {choices}")
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
    ]
    return [Route(path, _guard(handler), methods=methods) for path, handler, methods in table]


def _task_summary(task: Any, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "provider": task.provider,
        "owner": task.owner,
        "model": task.model,
        "phase": task.phase(now).value,
        "progress": task.progress(now),
        "timeline": {name: (t if math.isfinite(t) else None) for name, t in vars(task.timeline).items()},
        "outcome": task.outcome.value,
        "failure": vars(task.failure) if task.failure else None,
        "cost": task.cost,
        "outputs": [vars(o) for o in task.outputs],
        "canceled_at": task.canceled_at,
        "faults": task.faults,
        "deleted_at": task.deleted_at,
    }

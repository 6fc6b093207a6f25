"""Assemble the ASGI app: every provider under /<slug>, the control plane under /_sim."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp

from simulator.faults.network import NetworkFaults
from simulator.http.context import context
from simulator.http.control import control_routes
from simulator.http.middleware import HostRouting, JournalRecorder, SimulatedDate
from simulator.providers.base import Provider

if TYPE_CHECKING:
    from simulator.sim import Simulator


def build_app(sim: Simulator) -> ASGIApp:
    routes: list[BaseRoute] = [Mount("/_sim", routes=control_routes(sim))]
    for slug, provider in sim.providers.items():
        served = [_spanning_lines(route) for route in provider.routes()]
        fallback = _spanning_lines(_fallback(provider, served))
        routes.append(_spanning_lines(Mount(f"/{slug}", routes=[*served, fallback])))
    routes.append(_spanning_lines(Route("/{path:path}", _unknown_provider(sim), methods=_ALL_METHODS)))
    app: ASGIApp = Starlette(routes=routes)
    hosts = {host: slug for slug, provider in sim.providers.items() for host in provider.hosts}
    app = HostRouting(app, hosts, set(sim.providers), sim.default_provider)
    app = SimulatedDate(JournalRecorder(app, sim.engine.journal, sim.engine.now), sim.engine.now)
    return NetworkFaults(app)


_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _fallback(provider: Provider, served: list[BaseRoute]) -> Route:
    async def not_found(request: Request) -> Response:
        path = context(request).get("client_path", request.url.path)
        allowed = _methods_at(served, request)
        if allowed and provider.wrong_method_status() == 405:
            response = provider.error(405, f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}.")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return provider.error(404, f"No route for {request.method} {path}.")

    return provider.route("/{path:path}", not_found, _ALL_METHODS, "UnknownRoute")


def _methods_at(served: list[BaseRoute], request: Request) -> list[str]:
    """The methods the provider's routes serve at this request's path (none: the path itself is unknown)."""
    methods: set[str] = set()
    for route in served:
        if isinstance(route, Route) and route.matches(request.scope)[0] is Match.PARTIAL:
            methods |= route.methods or set()
    return sorted(methods)


RouteT = TypeVar("RouteT", Route, Mount)


def _spanning_lines(route: RouteT) -> RouteT:
    """The route with `.` in its pattern matching a newline too. A path may carry one (`%0A`), and Starlette's
    `{name:path}` and mount patterns stop at it: such a request would miss the provider's routes and its own
    404 and get a bare text one."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def _unknown_provider(sim: Simulator) -> Callable[[Request], Awaitable[Response]]:
    async def unknown(request: Request) -> Response:
        return JSONResponse(
            {
                "error": "unknown provider route",
                "path": request.url.path,
                "providers": {slug: f"/{slug}" for slug in sim.providers},
                "control": "/_sim",
            },
            status_code=404,
        )

    return unknown

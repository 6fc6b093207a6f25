"""Assemble the ASGI app: every provider under /<slug>, the control plane under /_sim."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from simulator.faults.network import NetworkFaults
from simulator.http.context import context
from simulator.http.control import control_routes
from simulator.http.middleware import HostRouting, JournalRecorder, SimulatedDate
from simulator.providers.base import Provider

if TYPE_CHECKING:
    from simulator.sim import Simulator


def build_app(sim: Simulator) -> ASGIApp:
    routes: list[BaseRoute] = [Mount("/_sim", routes=control_routes(sim))]
    fallbacks = {slug: _fallback(provider) for slug, provider in sim.providers.items()}
    for slug, provider in sim.providers.items():
        routes.append(Mount(f"/{slug}", routes=[*provider.routes(), fallbacks[slug]]))
    unknown = _unknown_provider(sim)
    routes.append(Route("/{path:path}", unknown, methods=_ALL_METHODS))
    starlette = Starlette(routes=routes)
    starlette.router.default = _unmatched(fallbacks, unknown)
    app: ASGIApp = starlette
    hosts = {host: slug for slug, provider in sim.providers.items() for host in provider.hosts}
    app = HostRouting(app, hosts, set(sim.providers), sim.default_provider)
    app = SimulatedDate(JournalRecorder(app, sim.engine.journal, sim.engine.now), sim.engine.now)
    return NetworkFaults(app)


_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _fallback(provider: Provider) -> Route:
    async def not_found(request: Request) -> Response:
        path = context(request).get("client_path", request.url.path)
        return provider.error(404, f"No route for {request.method} {path}.")

    return provider.route("/{path:path}", not_found, _ALL_METHODS, "UnknownRoute")


def _unmatched(fallbacks: dict[str, Route], unknown: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """What answers a path no route pattern matches at all (one with a newline: patterns stop at line ends),
    so even that gets the provider's own 404 rather than a bare text one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        fallback = fallbacks.get(str(context(request).get("provider")))
        if fallback is not None:
            await fallback.handle(scope, receive, send)
            return
        response = await unknown(request)
        await response(scope, receive, send)

    return app


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

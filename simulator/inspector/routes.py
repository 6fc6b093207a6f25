"""The inspector's routes: the page and its assets under /_sim/ui, and the JSON it reads under /_sim, which the
control plane serves behind its own guard (so a script can read everything the page shows).

The page is plain ES modules over that JSON, with no build step and no new dependency: the UI dogfoods the
control plane (nothing it shows is out of a script's reach), and every asset is a file in the wheel. The page
and its assets hold no data, so they are served without the control token; every datum comes from a guarded
route, and with a token set the page asks for it and sends it as `Authorization: Bearer` on each call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from simulator.inspector import records
from simulator.inspector.stream import stream

if TYPE_CHECKING:
    from simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]
STATIC = Path(__file__).parent / "static"
ASSET_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# What the page may load: only its own files and the control plane's JSON and images; nothing from elsewhere.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def inspector_table(sim: Simulator) -> list[tuple[str, Handler, list[str]]]:
    """The guarded JSON routes (path under /_sim, handler, methods) the control plane adds to its own."""

    async def timelines(request: Request) -> Response:
        return JSONResponse(records.timelines(sim))

    async def gallery(request: Request) -> Response:
        return JSONResponse(records.gallery(sim))

    async def image(request: Request) -> Response:
        blob = sim.engine.blobs.get(request.path_params["blob_id"])
        if blob is None:
            return JSONResponse({"error": "blob_id: no such image", "field": "blob_id"}, status_code=404)
        content = await sim.engine.blobs.fetch(blob)
        return Response(content, media_type=records.content_type(blob.image.format),
                        headers={"Cache-Control": "private, max-age=3600"})

    async def webhooks(request: Request) -> Response:
        return JSONResponse(records.webhooks(sim))

    async def ledger(request: Request) -> Response:
        return JSONResponse(records.ledger(sim))

    async def windows(request: Request) -> Response:
        return JSONResponse(records.windows(sim))

    async def session(request: Request) -> Response:
        return JSONResponse(records.session(sim), headers={
            "Content-Disposition": 'attachment; filename="nanobanana-sim-session.json"'})

    async def live(request: Request) -> Response:
        after = request.query_params.get("after", "")
        return await stream(sim, request, int(after) if after.isdigit() and len(after) < 19 else None)

    return [
        ("/journal/stream", live, ["GET"]),
        ("/timelines", timelines, ["GET"]),
        ("/gallery", gallery, ["GET"]),
        ("/gallery/{blob_id}", image, ["GET"]),
        ("/webhooks", webhooks, ["GET"]),
        ("/ledger", ledger, ["GET"]),
        ("/limits/windows", windows, ["GET"]),
        ("/session", session, ["GET"]),
    ]


def ui_routes() -> list[Route]:
    """/_sim/ui (the page) and /_sim/ui/<asset>: files shipped in the package, nothing else."""

    async def page(request: Request) -> Response:
        return _asset("index.html")

    async def asset(request: Request) -> Response:
        return _asset(request.path_params["name"] or "index.html")

    return [Route("/ui", page, methods=["GET", "HEAD"]), Route("/ui/{name:path}", asset, methods=["GET", "HEAD"])]


def _asset(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file() or path.suffix not in ASSET_TYPES:
        return JSONResponse({"error": f"no inspector asset {name!r}"}, status_code=404)
    return FileResponse(path, media_type=ASSET_TYPES[path.suffix], headers={
        "Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer"})

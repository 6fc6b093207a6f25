"""What the control plane reads off a starlette request (provider traffic is read by simulator.transports)."""

from __future__ import annotations

from starlette.requests import Request


def public_base(request: Request) -> str:
    """Scheme and host as the client addressed us, for URLs we hand back."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"

"""Serving output images: signature and expiry checks, bytes with CDN-like headers."""

from __future__ import annotations

import enum
import hashlib

from simulator.engine import Blob, Engine
from simulator.images import content_type, file_extension
from simulator.pipeline import Answer, Exchange


class LinkState(enum.Enum):
    VALID = "valid"
    TAMPERED = "tampered"
    EXPIRED = "expired"


def check_link(engine: Engine, path: str, expires_text: str, expires_at: float, signature: str) -> LinkState:
    """Signature first (a forged expiry is tampering), then expiry on the simulator's clock."""
    if not signature or not engine.signer.verify(path, expires_text, signature):
        return LinkState.TAMPERED
    if engine.clock.now() >= expires_at:
        return LinkState.EXPIRED
    return LinkState.VALID


def image_response(engine: Engine, blob: Blob, request: Exchange, *, download_name: str | None = None) -> Answer:
    body = engine.blobs.content(blob)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "etag": etag,
        "cache-control": "private, max-age=3600",
        "accept-ranges": "none",
    }
    if download_name is not None:
        name = download_name or f"{blob.id}.{file_extension(blob.image.format)}"
        headers["content-disposition"] = f'attachment; filename="{name}"'
    if request.headers.get("if-none-match") == etag:
        return Answer.empty(304, headers=headers)
    media_type = content_type(blob.image.format)
    if request.method == "HEAD":
        headers["content-length"] = str(len(body))
        return Answer.content(b"", media_type, headers=headers)
    return Answer.content(body, media_type, headers=headers)

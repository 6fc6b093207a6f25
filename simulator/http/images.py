"""Serving output images: signature and expiry checks, bytes with CDN-like headers.

The answer to an image URL is built before its pixels exist: the headers that do not depend on the bytes
(ETag, Content-Disposition, type) are known from the blob, a conditional request is answered 304 without
rendering at all, and the bytes are rendered in the placeholder cache's worker
thread (see simulator.images.cache), so a 4K render never holds up the event loop and two fetches of the
same image share one render.
"""

from __future__ import annotations

import enum
import unicodedata
from urllib.parse import quote

from simulator.engine import Blob, Engine
from simulator.images import content_type, file_extension
from simulator.pipeline import Answer, Exchange

# RFC 5987 attr-char: what may stand unencoded in `filename*=UTF-8''…`.
_ATTR_CHARS = "!#$&+-.^_`|~"
# In the quoted `filename=` fallback: printable ASCII but the two characters quoted-string escapes.
_UNQUOTABLE = frozenset('"\\')
# Control characters, and lone surrogates (a query string may carry one; no encoding can).
_DROPPED = frozenset({"Cc", "Cs"})


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


def content_disposition(name: str, default: str) -> str:
    """`attachment` naming the file as RFC 6266 says: an ASCII `filename=` every client reads, and the
    exact name as RFC 5987 `filename*=UTF-8''…` when the two differ.

    The name comes from a query parameter, so it is hostile input: control characters (CR, LF, NUL would
    end or break the header line) are dropped, a `"` or `\\` cannot close the quoted string, and anything
    outside ASCII reaches the header only percent-encoded. An empty name falls back to `default`.
    """
    clean = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED).strip() or default
    fallback = "".join(_ascii(ch) for ch in clean)
    header = f'attachment; filename="{fallback}"'
    if fallback != clean:
        header += "; filename*=UTF-8''" + quote(clean, safe=_ATTR_CHARS, errors="replace")
    return header


def _ascii(ch: str) -> str:
    if " " <= ch <= "~" and ch not in _UNQUOTABLE:
        return ch
    # é → e, ﬁ → fi; what has no ASCII spelling (emoji, CJK) becomes `_`.
    folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if " " <= c <= "~" and c not in _UNQUOTABLE) or "_"


async def image_response(engine: Engine, blob: Blob, request: Exchange, *,
                         download_name: str | None = None) -> Answer:
    """The image as a download: rendered off the event loop once (concurrent fetches share the render), or a
    304 without rendering when the client holds the same bytes (the ETag comes from the request, not the bytes)."""
    headers = {
        "etag": engine.blobs.etag(blob),
        "cache-control": "private, max-age=3600",
        "accept-ranges": "none",
    }
    if download_name is not None:
        headers["content-disposition"] = content_disposition(
            download_name, f"{blob.id}.{file_extension(blob.image.format)}"
        )
    if request.headers.get("if-none-match") == headers["etag"]:
        return Answer.empty(304, headers=headers)
    body = await engine.blobs.fetch(blob)
    media_type = content_type(blob.image.format)
    if request.method == "HEAD":
        headers["content-length"] = str(len(body))
        return Answer.content(b"", media_type, headers=headers)
    return Answer.content(body, media_type, headers=headers)

"""Signed, expiring download links for providers whose results are plain file URLs on a CDN.

The link is `{base}{prefix}/{blob_id}?expires=<unix>&signature=<hmac>`. An expired or altered link
is refused the way object stores refuse presigned URLs: 403 with an XML `AccessDenied` body, so a
client's "download before the URL expires" logic meets what it will meet in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from simulator.engine import Blob
from simulator.faults.errors import error_spec, fault_headers
from simulator.http.images import LinkState, check_link, image_response
from simulator.pipeline import Answer, Endpoint, Exchange

if TYPE_CHECKING:
    from simulator.providers.base import Provider

STORE_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message></Error>"
)
# S3-style codes, and their wording, for the statuses a forced error on a result link can take.
STORE_CODES = {400: "InvalidRequest", 403: "AccessDenied", 404: "NoSuchKey", 429: "SlowDown", 503: "SlowDown"}
STORE_MESSAGES = {
    "InvalidRequest": "Invalid Request",
    "AccessDenied": "Access Denied",
    "NoSuchKey": "The specified key does not exist.",
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
}


class SignedFiles:
    def __init__(self, provider: Provider, prefix: str = "/files") -> None:
        self.provider = provider
        self.prefix = prefix

    def path(self, blob_id: str) -> str:
        return f"{self.prefix}/{blob_id}"

    def url(self, base_url: str, blob_id: str, expires_at: float) -> str:
        expires = str(int(expires_at))
        signature = self.provider.engine.signer.signature(self.path(blob_id), expires)
        return f"{base_url}{self.path(blob_id)}?expires={expires}&signature={signature}"

    def route(self) -> Endpoint:
        return self.provider.route(self.prefix + "/{blob_id}", self._serve, ["GET", "HEAD"], "DownloadImage",
                                   refuse=self._refuse)

    def _refuse(self, exchange: Exchange, do: dict[str, Any]) -> Answer:
        """A forced error on a result link, in the object store's XML (the API's envelope never reaches a CDN)."""
        spec = error_spec(self.provider.data.get("faults", {}), do)
        status = int(spec["status"])
        code = STORE_CODES.get(status, "InternalError" if status >= 500 else "AccessDenied")
        # The API's wording would not come from a CDN; a rule's own message still wins.
        return _store_error(code, str(do.get("message") or STORE_MESSAGES[code]), status).with_headers(
            fault_headers(spec, do))

    async def _serve(self, exchange: Exchange) -> Answer:
        engine = self.provider.engine
        blob_id, expires = exchange.params["blob_id"], exchange.params["expires"] or ""
        try:
            expires_at = float(expires)
        except ValueError:
            expires_at = 0.0
        state = check_link(engine, self.path(blob_id), expires, expires_at, exchange.params["signature"] or "")
        if state is LinkState.TAMPERED:
            return _store_error("AccessDenied", "The request signature we calculated does not match the signature "
                                                "you provided.")
        if state is LinkState.EXPIRED:
            return _store_error("AccessDenied", "Request has expired")
        blob: Blob | None = engine.blobs.get(blob_id)
        if blob is None or blob.task.provider != self.provider.slug or blob.image.blocked:
            return _store_error("NoSuchKey", STORE_MESSAGES["NoSuchKey"], 404)
        exchange.task_id = blob.task.id
        return await image_response(engine, blob, exchange)


def _store_error(code: str, message: str, status: int = 403) -> Answer:
    return Answer.content(STORE_ERROR.format(code=code, message=escape(message)), "application/xml", status)

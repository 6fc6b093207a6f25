"""The Files API: resumable uploads, File resources that expire on the clock, generated files to download.

An upload starts at `POST /upload/{v}/files` and answers an absolute session URL on the simulator's own host
(the SDKs follow it exactly as given); the bytes go to that URL, whose `upload_id` is the credential. A File
is a key's own (its project's), kept `file_ttl_seconds`; a generated file (a Batch's results) is the only
kind that can be downloaded, as on the real API.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.engine.rng import random_token
from simulator.formats import iso_utc
from simulator.images import InvalidImageReference, decode_image_reference
from simulator.pipeline import Answer, Exchange, Handler
from simulator.providers.gemini.proto import normalise

if TYPE_CHECKING:
    from simulator.providers.gemini.provider import GeminiProvider

FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9-]+)$")
UPLOADED, GENERATED = "UPLOADED", "GENERATED"


@dataclass
class StoredFile:
    id: str
    owner: str
    mime_type: str
    data: bytes
    created: float
    expires: float
    source: str = UPLOADED
    display_name: str | None = None
    image_size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"files/{self.id}"


@dataclass
class Session:
    id: str
    owner: str
    size: int | None
    mime_type: str
    display_name: str | None
    received: bytearray = field(default_factory=bytearray)


class Files:
    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider
        self.engine = provider.engine
        self.stored: dict[str, StoredFile] = {}
        self.sessions: dict[str, Session] = {}

    def reset(self) -> None:
        self.stored.clear()
        self.sessions.clear()

    def handlers(self) -> dict[str, Handler]:
        return {"CreateFile": self.start, "UploadFileChunk": self.chunk, "GetFile": self.get,
                "ListFiles": self.list_files,
                "DeleteFile": self.delete, "DownloadFile": self.download}

    # -- the store -------------------------------------------------------------------------------------

    def find(self, file_id: str, owner: str | None = None) -> StoredFile | None:
        """A live file (expired ones are gone, as on the real API), the owner's own when one is given."""
        found = self.stored.get(file_id)
        if found is None or self.engine.now() >= found.expires or (owner is not None and found.owner != owner):
            return None
        return found

    def add(self, owner: str, file_id: str, data: bytes, mime_type: str, *, source: str = UPLOADED,
            display_name: str | None = None) -> StoredFile:
        now = self.engine.now()
        ttl = float(self.provider.options["file_ttl_seconds"])
        stored = StoredFile(file_id, owner, mime_type, bytes(data), now, now + ttl, source, display_name,
                            _image_size(data) if mime_type.startswith("image/") else None)
        self.stored[file_id] = stored
        return stored

    def image_size(self, uri: str) -> tuple[int, int] | None:
        """The pixel size of the file a `fileData.fileUri` names; refused when it is gone or unknown."""
        matched = FILE_URI.search(uri)
        found = self.find(matched.group(1)) if matched else None
        if found is None:
            raise self.provider.wording.refusal("file_not_found", file=matched.group(1) if matched else uri)
        if self.engine.now() < found.created + float(self.provider.options["file_processing_seconds"]):
            raise self.provider.wording.refusal("file_not_active", file=found.id)
        return found.image_size

    def resource(self, stored: StoredFile, exchange: Exchange) -> dict[str, Any]:
        base = self._base(exchange)
        version = exchange.path_params.get("v", "v1beta")
        ready = stored.created + float(self.provider.options["file_processing_seconds"])
        digest = base64.b64encode(hashlib.sha256(stored.data).hexdigest().encode()).decode()
        body: dict[str, Any] = {"name": stored.name}
        if stored.display_name:
            body["displayName"] = stored.display_name
        body |= {
            "mimeType": stored.mime_type, "sizeBytes": str(len(stored.data)), "createTime": timestamp(stored.created),
            "updateTime": timestamp(max(stored.created, min(ready, self.engine.now()))),
            "expirationTime": timestamp(stored.expires), "sha256Hash": digest,
            "uri": f"{base}/{version}/{stored.name}",
            "state": "ACTIVE" if self.engine.now() >= ready else "PROCESSING", "source": stored.source,
        }
        if stored.source == GENERATED:
            body["downloadUri"] = f"{base}/download/{version}/{stored.name}:download?alt=media"
        return body

    @staticmethod
    def _base(exchange: Exchange) -> str:
        """This simulator as the client addressed it, with the client's own path prefix (absolute URLs)."""
        return exchange.base_url + exchange.path_params.get("prefix", "")

    # -- the resumable upload --------------------------------------------------------------------------------

    async def start(self, exchange: Exchange) -> Answer:
        headers = exchange.headers
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable" or \
                headers.get("x-goog-upload-command", "").lower() != "start":
            raise self.provider.wording.refusal("upload_protocol")
        described: dict[str, Any] = {}
        if exchange.body is not None:
            described = normalise(self.provider.schemas, "request/create-file", exchange.body, vertex=False).value
        file = described.get("file") or {}
        length = headers.get("x-goog-upload-header-content-length") or file.get("sizeBytes")
        ids = self.provider.data["ids"]["uploadId"]
        _, rng = self.engine.next_rng("gemini")
        session = Session(random_token(rng, ids["length"], ids["alphabet"]), exchange.caller,
                          int(length) if length is not None else None,
                          headers.get("x-goog-upload-header-content-type") or file.get("mimeType")
                          or "application/octet-stream", file.get("displayName"))
        self.sessions[session.id] = session
        version = exchange.path_params["v"]
        url = f"{self._base(exchange)}/upload/{version}/files?upload_id={session.id}&upload_protocol=resumable"
        return Answer.empty(200, headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-URL": url,
                                          "X-Goog-Upload-Chunk-Granularity":
                                          str(self.provider.data["files"]["uploadChunkGranularity"])})

    async def chunk(self, exchange: Exchange) -> Answer:
        upload_id = exchange.params.get("upload_id") or ""
        session = self.sessions.get(upload_id)
        wording = self.provider.wording
        if session is None:
            raise wording.refusal("upload_session_unknown", upload_id=upload_id)
        exchange.owner = session.owner
        command = {word.strip() for word in exchange.headers.get("x-goog-upload-command", "").lower().split(",")}
        if "cancel" in command:
            del self.sessions[upload_id]
            return Answer.empty(200, headers={"X-Goog-Upload-Status": "cancelled"})
        if "query" in command:
            return Answer.empty(200, headers={"X-Goog-Upload-Status": "active",
                                              "X-Goog-Upload-Size-Received": str(len(session.received))})
        if not command & {"upload", "finalize"}:
            raise wording.refusal("upload_protocol")
        offset = exchange.headers.get("x-goog-upload-offset", str(len(session.received)))
        if not offset.isdigit() or int(offset) != len(session.received):
            raise wording.refusal("upload_offset_mismatch", offset=offset, received=len(session.received))
        session.received += exchange.raw_body
        if "finalize" not in command:
            return Answer.empty(200, headers={"X-Goog-Upload-Status": "active"})
        if session.size is not None and session.size != len(session.received):
            raise wording.refusal("upload_size_mismatch", received=len(session.received), size=session.size)
        del self.sessions[upload_id]
        ids = self.provider.data["ids"]["file"]
        _, rng = self.engine.next_rng("gemini")
        stored = self.add(session.owner, random_token(rng, ids["length"], ids["alphabet"]), bytes(session.received),
                          session.mime_type, display_name=session.display_name)
        return Answer.json({"file": self.resource(stored, exchange)}, headers={"X-Goog-Upload-Status": "final"})

    # -- File resources ----------------------------------------------------------------------------------

    def _owned(self, exchange: Exchange) -> StoredFile:
        file_id = exchange.params["file"]
        found = self.find(file_id, exchange.caller)
        if found is None:
            raise self.provider.wording.refusal("file_not_found", file=file_id)
        return found

    async def get(self, exchange: Exchange) -> Answer:
        return Answer.json(self.resource(self._owned(exchange), exchange))

    async def list_files(self, exchange: Exchange) -> Answer:
        owned = sorted((f for f in self.stored.values() if self.find(f.id, exchange.caller)),
                       key=lambda f: f.created, reverse=True)
        chosen, following = self.provider.page(exchange, owned)
        body: dict[str, Any] = {"files": [self.resource(f, exchange) for f in chosen]} if chosen else {}
        if following:
            body["nextPageToken"] = following
        return Answer.json(body)

    async def delete(self, exchange: Exchange) -> Answer:
        del self.stored[self._owned(exchange).id]
        return Answer.json({})

    async def download(self, exchange: Exchange) -> Answer:
        stored = self._owned(exchange)
        if stored.source != GENERATED:
            raise self.provider.wording.refusal("file_not_downloadable")
        return Answer.content(stored.data, stored.mime_type)


def timestamp(t: float) -> str:
    """google.protobuf.Timestamp as the live API writes it: nine fractional digits."""
    return iso_utc(t, 9) or ""


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        image = decode_image_reference(base64.b64encode(data).decode())
    except InvalidImageReference:
        return None
    return (image.width, image.height) if image.width and image.height else None


"""Output images as blobs behind signed, expiring URLs."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass

from simulator.engine.tasks import OutputImage, Task
from simulator.images import PlaceholderCache, PlaceholderSpec, spec_etag


class URLSigner:
    """HMAC-SHA256 over the path and the expiry text, compared in constant time."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, path: str, expires: str) -> str:
        digest = hmac.digest(self._secret, f"{path}\n{expires}".encode(), "sha256")  # one C call, as hmac.new
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, path: str, expires: str, signature: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters, and a forged link may carry any.
        expected = self.signature(path, expires).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))


@dataclass(frozen=True, slots=True)
class Blob:
    id: str
    task: Task
    image: OutputImage

    def spec(self, label: str = "") -> PlaceholderSpec:
        image = self.image
        return PlaceholderSpec(
            width=image.width, height=image.height, format=image.format, seed=image.seed,
            model=self.task.model, prompt=self.task.prompt, index=image.index, label=label, quality=image.quality,
        )


class BlobStore:
    def __init__(self, cache: PlaceholderCache) -> None:
        self.cache = cache
        self._blobs: dict[str, Blob] = {}

    def register(self, task: Task) -> None:
        for image in task.outputs:
            self._blobs[image.blob_id] = Blob(image.blob_id, task, image)

    def forget(self, task: Task) -> None:
        for image in task.outputs:
            self._blobs.pop(image.blob_id, None)

    def get(self, blob_id: str) -> Blob | None:
        return self._blobs.get(blob_id)

    def content(self, blob: Blob) -> bytes:
        return self.cache.get(self._spec(blob))

    async def fetch(self, blob: Blob) -> bytes:
        """The bytes, rendered off the event loop when they are not cached yet (see PlaceholderCache.fetch)."""
        return await self.cache.fetch(self._spec(blob))

    def etag(self, blob: Blob) -> str:
        """A strong validator known before rendering: the pixels are a function of the spec."""
        return spec_etag(self._spec(blob))

    @staticmethod
    def _spec(blob: Blob) -> PlaceholderSpec:
        return blob.spec(label=blob.task.provider)

    def clear(self) -> None:
        self._blobs.clear()

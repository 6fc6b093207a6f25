"""Validation of user-supplied input images (edit mode): http(s) URLs, data URLs and raw Base64.

URLs are accepted as they are and never fetched: the simulator must work offline and must not become a
request forwarder. Inline images are decoded and checked with Pillow so that clients sending broken
payloads get the kind of 400 a real provider would give them.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

ReferenceKind = Literal["url", "data_url", "base64"]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Well above any real input (a 4K frame is about 17 MP) yet low enough that decoding stays cheap.
DEFAULT_MAX_PIXELS = 50_000_000
# The input formats the Gemini API documents that Pillow can read (HEIC/HEIF need a plugin).
DEFAULT_FORMATS = frozenset({"png", "jpeg", "webp"})
MAX_URL_LENGTH = 8192

_EXPECTED = "expected an http(s) URL, a data URL or Base64-encoded image data"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WHITESPACE = re.compile(r"\s+")


class InvalidImageReference(ValueError):
    """The value cannot be used as an input image; ``message`` is fit for an API error body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageReference:
    kind: ReferenceKind
    url: str | None = None  # only for kind "url"
    # Sniffed from the bytes; a data URL's own label is kept apart because clients often get it wrong.
    mime_type: str | None = None
    declared_mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    # Pillow's format name in lower case: "png", "jpeg", "webp".
    format: str | None = None
    data: bytes | None = field(default=None, repr=False)

    @property
    def byte_size(self) -> int | None:
        return None if self.data is None else len(self.data)


def decode_image_reference(
    value: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_formats: frozenset[str] = DEFAULT_FORMATS,
) -> ImageReference:
    """Classify ``value`` and, for inline images, decode and verify it.

    Raises InvalidImageReference with a short, specific message for anything unusable.
    """
    if not isinstance(value, str):
        raise InvalidImageReference(f"The image must be a string; {_EXPECTED}.")
    text = value.strip()
    if not text:
        raise InvalidImageReference(f"The image value is empty; {_EXPECTED}.")

    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        data = _b64decode(text, max_bytes, "The value is not a valid URL, data URL or Base64-encoded image")
        return _inspect(data, "base64", None, max_pixels, allowed_formats)

    scheme = scheme_match.group(1).lower()
    if scheme in ("http", "https"):
        return ImageReference(kind="url", url=_check_url(text))
    if scheme == "data":
        mime_type, payload = _split_data_url(text)
        data = _b64decode(payload, max_bytes, "The data URL payload is not valid Base64")
        return _inspect(data, "data_url", mime_type, max_pixels, allowed_formats)
    raise InvalidImageReference(f"Unsupported URL scheme '{scheme}:'; {_EXPECTED}.")


def _check_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidImageReference(f"The image URL is longer than {MAX_URL_LENGTH} characters.")
    if _WHITESPACE.search(url):
        raise InvalidImageReference("The image URL contains whitespace; encode it as %20.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # read only because it raises on a malformed port
    except ValueError as exc:
        raise InvalidImageReference(f"The image URL is malformed: {exc}.") from None
    if not parts.hostname:
        raise InvalidImageReference("The image URL has no host name.")
    return url


def _split_data_url(text: str) -> tuple[str | None, str]:
    header, comma, payload = text[len("data:") :].partition(",")
    if not comma:
        raise InvalidImageReference("The data URL is malformed: there is no ',' before the data.")
    params = [part.strip() for part in header.split(";")]
    if params[-1].lower() != "base64":
        raise InvalidImageReference("The data URL must be Base64-encoded (data:image/png;base64,...).")
    # "data:;base64," and "data:base64," both leave the media type out.
    mime_type = (params[0].lower() if len(params) > 1 else "") or None
    # Clients often label every image image/png; the bytes decide the real format, so only a
    # non-image media type counts as a mistake.
    if mime_type is not None and not mime_type.startswith("image/"):
        raise InvalidImageReference(f"The data URL media type '{mime_type}' is not an image type.")
    return mime_type, payload


def _b64decode(text: str, max_bytes: int, invalid: str) -> bytes:
    compact = _WHITESPACE.sub("", text)
    if not compact:
        raise InvalidImageReference(f"{invalid}: there is no data.")
    # Refuse oversize input before decoding it: 4 Base64 characters carry 3 bytes.
    if len(compact) // 4 * 3 > max_bytes + 3:
        raise InvalidImageReference(f"The image is larger than the {_mib(max_bytes)} limit.")
    if "-" in compact or "_" in compact:
        compact = compact.translate(str.maketrans("-_", "+/"))  # URL-safe alphabet
    if len(compact) % 4 == 1:
        raise InvalidImageReference(f"{invalid}: its length is not possible for Base64.")
    compact += "=" * (-len(compact) % 4)  # tolerate stripped padding, as most decoders do
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageReference(
            f"{invalid}: it contains characters outside the Base64 alphabet or misplaced padding."
        ) from None
    if len(data) > max_bytes:
        raise InvalidImageReference(f"The image is larger than the {_mib(max_bytes)} limit.")
    return data


def _inspect(
    data: bytes,
    kind: ReferenceKind,
    declared_mime_type: str | None,
    max_pixels: int,
    allowed_formats: frozenset[str],
) -> ImageReference:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImageReference("The decoded data is not a recognised image.") from None
    except Image.DecompressionBombError:
        raise InvalidImageReference("The image has too many pixels to be decoded safely.") from None
    except Exception:
        # Pillow's parsers raise a whole zoo of exception types on hostile bytes.
        raise InvalidImageReference("The image data is corrupt or truncated.") from None
    with image:
        fmt = (image.format or "").lower()
        width, height = image.size
        # Checked from the header, before verify() reads the body, so a decompression bomb costs nothing.
        if width * height > max_pixels:
            raise InvalidImageReference(
                f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixel limit."
            )
        if fmt not in allowed_formats:
            allowed = ", ".join(sorted(name.upper() for name in allowed_formats))
            raise InvalidImageReference(f"Image format {fmt.upper()} is not supported; use {allowed}.")
        try:
            image.verify()
        except Exception:
            raise InvalidImageReference("The image data is corrupt or truncated.") from None
    return ImageReference(
        kind=kind,
        mime_type=Image.MIME.get(fmt.upper()),
        declared_mime_type=declared_mime_type,
        width=width,
        height=height,
        format=fmt,
        data=data,
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"

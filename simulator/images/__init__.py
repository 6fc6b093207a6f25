"""Image helpers shared by every provider: output sizes, placeholder rendering, input validation."""

from simulator.images.cache import PlaceholderCache
from simulator.images.decode import (
    DEFAULT_MAX_BYTES,
    ImageReference,
    InvalidImageReference,
    ReferenceKind,
    decode_image_reference,
)
from simulator.images.render import (
    FORMATS,
    ImageFormat,
    PlaceholderSpec,
    content_type,
    file_extension,
    normalize_format,
    render_placeholder,
    spec_etag,
)
from simulator.images.sizes import (
    UnknownSize,
    aspect_ratios,
    families,
    nearest_ratio,
    pixel_size,
    tiers,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "ImageFormat",
    "ImageReference",
    "InvalidImageReference",
    "PlaceholderCache",
    "PlaceholderSpec",
    "ReferenceKind",
    "UnknownSize",
    "aspect_ratios",
    "content_type",
    "decode_image_reference",
    "families",
    "file_extension",
    "nearest_ratio",
    "normalize_format",
    "pixel_size",
    "render_placeholder",
    "spec_etag",
    "tiers",
]

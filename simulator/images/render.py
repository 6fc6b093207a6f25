"""Deterministic placeholder pictures standing in for generated images, encoded without paying for their size.

Each picture is a card (simulator.images.design): seeded flat colours on a 16-pixel grid and a panel that
shows what was asked for (model, size, provider, seed and image index, prompt). The design makes every
format cheap at any size: JPEG is assembled from pre-encoded MCUs (simulator.images.jpeg), PNG is a 4-bit
palette image whose repeated rows are hand-made deflate back-references (simulator.images.png), WebP is
lossless VP8L written the same way (simulator.images.webp): crisp caption, exact colours. The bytes are a
function of the spec alone.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import astuple, dataclass
from functools import lru_cache
from typing import Literal, get_args

from PIL import Image

from simulator.images import jpeg, png, webp
from simulator.images.design import Card, ink_levels, ink_palette, layout

ImageFormat = Literal["jpeg", "png", "webp"]
FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)

_CONTENT_TYPES: dict[ImageFormat, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_EXTENSIONS: dict[ImageFormat, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}

# WebP cannot encode a side longer than this; holding every format to it keeps behaviour uniform.
MAX_SIDE = 16383
# Comfortably above the largest published size (about 19 MP) while refusing absurd requests.
MAX_PIXELS = 64_000_000

DEFAULT_JPEG_QUALITY = 85
# Changes whenever the same spec would give other bytes: ETags derived from the spec must change with it.
DESIGN_VERSION = "card-2"


def normalize_format(value: str) -> ImageFormat:
    """Map the spellings providers accept ('JPG', 'jpeg', 'image/png', ...) onto an ImageFormat."""
    name = value.strip().lower().removeprefix("image/")
    if name == "jpg":
        name = "jpeg"
    for fmt in FORMATS:
        if fmt == name:
            return fmt
    raise ValueError(f"unsupported image format {value!r}; expected one of {', '.join(FORMATS)}")


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES[normalize_format(fmt)]


def file_extension(fmt: str) -> str:
    """Conventional extension without the dot ('jpg' for JPEG)."""
    return _EXTENSIONS[normalize_format(fmt)]


@dataclass(frozen=True, slots=True)
class PlaceholderSpec:
    width: int
    height: int
    format: ImageFormat
    seed: int
    model: str
    prompt: str
    index: int = 0
    label: str = ""
    quality: int | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise ValueError(f"image size {self.width}x{self.height} is outside 1..{MAX_SIDE} per side")
        if self.width * self.height > MAX_PIXELS:
            raise ValueError(f"image size {self.width}x{self.height} exceeds {MAX_PIXELS} pixels")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be between 1 and 100, got {self.quality}")


def render_placeholder(spec: PlaceholderSpec) -> bytes:
    """Encode the placeholder picture for `spec`; identical specs give identical bytes."""
    card = layout(spec.width, spec.height, spec.seed, spec.index, spec.model, spec.prompt, spec.label)
    if spec.format == "jpeg":
        return jpeg.assemble(card, spec.quality or DEFAULT_JPEG_QUALITY)
    rows, counts, strips = _distinct_rows(card)
    palette = [*ink_palette(), *card.colours]
    if spec.format == "png":
        depth = 4 if len(palette) <= 16 else 8
        packed = rows.tobytes("raw", f"P;{depth}") if depth < 8 else rows.tobytes()
        stride = len(packed) // rows.height
        return png.encode(card.width, palette, [packed[n * stride: (n + 1) * stride] for n in range(rows.height)],
                          list(enumerate(counts)), depth)
    raw = rows.tobytes()
    return webp.encode(card.width, card.height, palette,
                       [raw[n * card.width: (n + 1) * card.width] for n in range(rows.height)], counts, strips)


# What a render costs on one core of the 2-core VM the benchmarks run on, new seed, caption lines seen before:
# (ms, ms per megapixel). Only the order of magnitude matters: it decides where a render runs
# (simulator.images.cache).
_COSTS: dict[ImageFormat, tuple[float, float]] = {"jpeg": (1.2, 0.15), "png": (3.5, 0.8), "webp": (5.0, 1.2)}


def estimated_ms(spec: PlaceholderSpec) -> float:
    fixed, per_megapixel = _COSTS[spec.format]
    return fixed + per_megapixel * spec.width * spec.height / 1e6


@lru_cache(maxsize=4096)  # asked on every fetch of an image, repeated or not
def spec_etag(spec: PlaceholderSpec) -> str:
    """A strong ETag for the bytes `spec` renders to, known without rendering them."""
    text = "\x1f".join(map(repr, (DESIGN_VERSION, *astuple(spec))))
    return '"' + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32] + '"'


def _palette_canvas(card: Card) -> Image.Image:
    """The card as a full-size palette image: the reference the encoders' output is checked against."""
    rows, counts, _ = _distinct_rows(card)
    canvas = Image.new("P", (card.width, card.height), 0)
    canvas.putpalette(rows.getpalette() or [])
    y = 0
    for n, count in enumerate(counts):
        row = rows.crop((0, n, card.width, n + 1))
        for copy in range(count):
            canvas.paste(row, (0, y + copy))
        y += count
    return canvas


def _distinct_rows(card: Card) -> tuple[Image.Image, list[int], list[webp.StripRow | None]]:
    """The card's distinct rows, top down, as a palette image; how many image rows each stands for; and for
    each row inside a caption strip, which strip and where (WebP reuses a strip's encoding by its content).

    Rows change only at the edges of blocks and panel, and within caption strips, so a 4096-row card has
    a few hundred distinct rows: the encoders never touch the full-size picture. The palette is the ink
    levels first (so a caption strip's pixels are the same indices in every picture), then the flat colours.
    """
    width, height = card.width, card.height
    edges = {0, height}
    for box, _ in card.blocks:
        edges.update(box[1::2])
    if card.panel is not None:
        edges.update(card.panel[1::2])
    for box, _ in card.strips():
        edges.update(range(box[1], box[3] + 1))
    starts = sorted(edge for edge in edges if 0 <= edge < height)
    counts = [end - start for start, end in zip(starts, [*starts[1:], height], strict=True)]
    strips: list[webp.StripRow | None] = [None] * len(starts)

    def row(y: int) -> int:
        return bisect_left(starts, min(y, height))

    colours = card.colours
    ink = ink_palette()
    rows = Image.new("P", (width, len(starts)), len(ink) + colours.index(card.background))
    rows.putpalette(bytes(channel for colour in (*ink, *colours) for channel in colour))
    for (left, top, right, bottom), colour in card.blocks:
        rows.paste(len(ink) + colours.index(colour), (left, row(top), right, row(bottom)))
    if card.panel is not None:
        left, top, right, bottom = card.panel
        rows.paste(0, (left, row(top), right, row(bottom)))
        for (left, top, right, bottom), line in card.strips():
            visible = min(bottom, height) - top
            if visible <= 0:
                continue
            size = (right - left, bottom - top)
            levels = ink_levels(size, line, card.font_size)
            rows.paste(Image.frombytes("P", size, levels).crop((0, 0, size[0], visible)),
                       (left, row(top)))
            if right <= width:
                key = ("webp", size, line, card.font_size)
                strip_rows = _strip_rows(levels, size[0])
                for n in range(visible):
                    strips[row(top) + n] = (key, strip_rows, n, left, right)
    return rows, counts, strips


def _strip_rows(levels: bytes, width: int) -> Callable[[], list[bytes]]:
    def rows() -> list[bytes]:
        return [levels[n: n + width] for n in range(0, len(levels), width)]

    return rows


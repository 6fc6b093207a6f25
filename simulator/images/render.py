"""Deterministic placeholder pictures standing in for generated images.

Each picture shows what was asked for (model, size, seed, image index, prompt) over a colourful
background derived from the seed, so a glance at a client's output tells which request produced it.

Rendering has to stay cheap even at 12288x1536: the background and shapes are painted on a canvas of at
most PREVIEW_SIDE pixels and upscaled once; only the text is drawn at full resolution, inside a panel.

Timings on the development machine (2 cores, Python 3.11, Pillow 13), median of 5 renders:
    4096x4096 JPEG ~0.2 s, 4096x4096 PNG ~0.4 s, 12288x1536 PNG ~0.5 s, 6336x2688 WebP ~0.4 s.
About 0.1 s of each is the background upscale; the rest is encoding.
"""

from __future__ import annotations

import colorsys
import io
import random
import textwrap
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, get_args

from PIL import Image, ImageDraw, ImageFont

ImageFormat = Literal["jpeg", "png", "webp"]
FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)

_CONTENT_TYPES: dict[ImageFormat, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_EXTENSIONS: dict[ImageFormat, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}

# WebP cannot encode a side longer than this; holding every format to it keeps behaviour uniform.
MAX_SIDE = 16383
# Comfortably above the largest published size (about 19 MP) while refusing absurd requests.
MAX_PIXELS = 64_000_000

PREVIEW_SIDE = 384
DEFAULT_JPEG_QUALITY = 85
DEFAULT_WEBP_QUALITY = 80
PROMPT_CHARS = 60
GOLDEN_RATIO_CONJUGATE = 0.618033988749895


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
    """Encode the placeholder picture for ``spec``; identical specs give identical bytes."""
    image = _background(spec)
    _draw_caption(image, spec)
    return _encode(image, spec)


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _background(spec: PlaceholderSpec) -> Image.Image:
    # String seeds go through SHA-512 inside random, so the result ignores PYTHONHASHSEED and platform.
    seed_rng = random.Random(f"nanobanana-sim/seed/{spec.seed}")
    # Layout comes from the seed alone, so one batch shares a composition; the index rotates the hues
    # by the golden ratio so that every image of the batch is still clearly different.
    hue = seed_rng.random() + spec.index * GOLDEN_RATIO_CONJUGATE
    hue_span = seed_rng.uniform(0.15, 0.45)

    scale = PREVIEW_SIDE / max(spec.width, spec.height)
    small = (max(1, round(spec.width * scale)), max(1, round(spec.height * scale)))

    ramp = Image.linear_gradient("L").rotate(seed_rng.choice((0, 45, 90, 135, 180, 225, 270, 315)))
    # Rotating by 45 degrees leaves black corners; cropping the middle keeps a smooth ramp.
    ramp = ramp.crop((48, 48, 208, 208)).resize(small, Image.Resampling.BILINEAR)
    start = Image.new("RGB", small, _rgb(hue, 0.75, 0.95))
    end = Image.new("RGB", small, _rgb(hue + hue_span, 0.85, 0.45))
    canvas = Image.composite(end, start, ramp)

    draw = ImageDraw.Draw(canvas)
    unit = min(small)
    for shape in range(seed_rng.randint(3, 6)):
        colour = _rgb(hue + 0.5 + shape * 0.13, seed_rng.uniform(0.4, 0.9), seed_rng.uniform(0.5, 1.0))
        cx, cy = seed_rng.uniform(0, small[0]), seed_rng.uniform(0, small[1])
        radius = seed_rng.uniform(0.15, 0.45) * unit
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        kind = seed_rng.choice(("ellipse", "rectangle", "triangle", "ring"))
        if kind == "ellipse":
            draw.ellipse(box, fill=colour)
        elif kind == "rectangle":
            draw.rectangle(box, fill=colour)
        elif kind == "triangle":
            draw.regular_polygon((cx, cy, radius), 3, rotation=seed_rng.uniform(0, 120), fill=colour)
        else:
            draw.ellipse(box, outline=colour, width=max(1, round(radius / 4)))

    return canvas.resize((spec.width, spec.height), Image.Resampling.BILINEAR)


def _caption_lines(spec: PlaceholderSpec) -> list[str]:
    lines = [spec.model, f"{spec.width}x{spec.height}", f"seed {spec.seed}", f"image {spec.index}"]
    if spec.label:
        lines.append(spec.label)
    prompt = " ".join(spec.prompt.split())
    if prompt:
        if len(prompt) > PROMPT_CHARS:
            prompt = prompt[: PROMPT_CHARS - 1].rstrip() + "…"
        # Portrait and strip-shaped images get the prompt wrapped instead of a microscopic font.
        wrap_at = PROMPT_CHARS if spec.width >= spec.height else 24
        lines.extend(textwrap.wrap(prompt, wrap_at, break_long_words=True) or [prompt])
    return lines


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_thread_fonts = threading.local()
_FONTS_PER_THREAD = 64


def _font(size: int) -> Font:
    # One cache per thread because a FreeType face must not be used by two threads at once.
    fonts: dict[int, Font] | None = getattr(_thread_fonts, "by_size", None)
    if fonts is None:
        fonts = _thread_fonts.by_size = {}
    if size not in fonts:
        if len(fonts) >= _FONTS_PER_THREAD:
            fonts.clear()  # arbitrary image sizes could otherwise grow the cache without bound
        # Pillow's bundled font: never depends on fonts installed on the host.
        fonts[size] = ImageFont.load_default(size=size)
    return fonts[size]


def _printable(text: str, font: Font) -> str:
    # Without FreeType the bitmap fallback font only encodes Latin-1.
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def _draw_caption(image: Image.Image, spec: PlaceholderSpec) -> None:
    lines = _caption_lines(spec)
    width, height = image.size
    # Measure at a reference size, then scale: the font's advance widths are nearly linear in size.
    reference = 100
    widest = max(_font(reference).getlength(line) for line in lines) or 1.0
    line_pitch = 1.3
    size_for_width = 0.8 * width * reference / widest
    size_for_height = 0.7 * height / (len(lines) * line_pitch)
    size = max(4, int(min(size_for_width, size_for_height, height / 8)))
    font = _font(size)
    lines = [_printable(line, font) for line in lines]

    pitch = round(size * line_pitch)
    block_w = max(round(font.getlength(line)) for line in lines)
    block_h = pitch * len(lines)
    pad = max(2, size // 2)
    left = max(0, (width - block_w) // 2 - pad)
    top = max(0, (height - block_h) // 2 - pad)
    box = (left, top, min(width, left + block_w + 2 * pad), min(height, top + block_h + 2 * pad))

    # Darken only the panel region: a full-size overlay would cost more than the whole background.
    panel = image.crop(box)
    panel = panel.point(lambda v: v * 30 // 100)
    image.paste(panel, box[:2])

    draw = ImageDraw.Draw(image)
    y = (height - block_h) // 2 + pitch // 2
    for line in lines:
        draw.text((width // 2, y), line, font=font, fill=(255, 255, 255), anchor="mm")
        y += pitch


def _encode(image: Image.Image, spec: PlaceholderSpec) -> bytes:
    out = io.BytesIO()
    if spec.format == "png":
        # PNG time is mostly filtering plus deflate: level 1 is several times faster than the default,
        # and run-length matching shrinks these smooth pictures by a further third at no cost.
        image.save(out, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    elif spec.format == "jpeg":
        image.save(out, "JPEG", quality=spec.quality or DEFAULT_JPEG_QUALITY)
    else:
        # method=0 is libwebp's fastest mode; higher methods cost seconds at 4K for no benefit here.
        image.save(out, "WEBP", quality=spec.quality or DEFAULT_WEBP_QUALITY, method=0)
    return out.getvalue()


class PlaceholderCache:
    """Bounded LRU cache of rendered placeholders, keyed by spec and limited by total encoded bytes.

    Rendering happens outside the lock so one slow 4K render does not stall unrelated requests; if two
    threads race on the same spec, the first stored result wins so callers always share one object.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[PlaceholderSpec, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, spec: PlaceholderSpec) -> bytes:
        with self._lock:
            cached = self._entries.get(spec)
            if cached is not None:
                self._entries.move_to_end(spec)
                return cached
        data = render_placeholder(spec)
        with self._lock:
            cached = self._entries.get(spec)
            if cached is not None:
                self._entries.move_to_end(spec)
                return cached
            if len(data) <= self.max_bytes:
                self._entries[spec] = data
                self._size += len(data)
                while self._size > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._size -= len(evicted)
        return data

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, spec: object) -> bool:
        with self._lock:
            return spec in self._entries

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

"""The placeholder's design: a flat-colour card that says what was asked for, laid out for cheap encoding.

The picture is a seeded background colour with a few seeded flat blocks, and a dark panel in the middle
with the caption (model, size, provider, seed and image index, the prompt) in white. Everything but the
caption is flat colour on a 16-pixel grid, the JPEG MCU: an encoder meets whole flat blocks it can copy
(simulator.images.jpeg) or long runs that deflate to almost nothing (PNG, WebP lossless), so the cost
of a picture is its caption, not its size. The caption's look does not depend on the seed (the panel and
ink colours are fixed), so the lines an image shares with another (model, size, prompt) render the same
pixels and their encoded form can be reused (simulator.images.jpeg.STRIPS, simulator.images.webp.STRIPS).

Every colour and position is a function of the spec, through string-seeded `random.Random` (SHA-512 of
the text, so PYTHONHASHSEED and the platform do not matter).
"""

from __future__ import annotations

import colorsys
import math
import random
import textwrap
import threading
from dataclasses import dataclass
from functools import lru_cache, partial

from PIL import Image, ImageDraw, ImageFont

from simulator.images.memo import Memo

GRID = 16
GOLDEN_RATIO_CONJUGATE = 0.618033988749895
PANEL = (22, 22, 28)
INK = (255, 255, 255)
# Antialiasing levels between panel and ink: enough for smooth glyph edges, few enough for a 4-bit palette.
INK_LEVELS = 5
PROMPT_CHARS = 120
PROMPT_LINES = 4
# Characters per caption line: the panel's width in "0"s of the font.
COLUMNS_WIDE = 34
COLUMNS_NARROW = 16
MIN_FONT = 6
MAX_FONT = 80
LINE_PITCH = 1.35
LINE_CACHE_ENTRIES = 128

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Card:
    """What to draw, in pixels: the background, flat blocks over it, then the caption panel."""

    width: int
    height: int
    background: RGB
    blocks: tuple[tuple[Box, RGB], ...]
    panel: Box | None  # on the grid; the caption lines fill it from the top, one strip each
    lines: tuple[str, ...]
    font_size: int
    line_height: int  # a multiple of GRID

    @property
    def colours(self) -> tuple[RGB, ...]:
        """The background and block colours, without duplicates, background first."""
        return tuple(dict.fromkeys([self.background, *(colour for _, colour in self.blocks)]))

    def strips(self) -> list[tuple[Box, str]]:
        """The panel's caption strips, each `line_height` high and as wide as the panel, top to bottom."""
        if self.panel is None:
            return []
        left, top, right, _ = self.panel
        pad = self._pad
        return [((left, top + pad + n * self.line_height, right, top + pad + (n + 1) * self.line_height), line)
                for n, line in enumerate(self.lines)]

    @property
    def _pad(self) -> int:
        return GRID if self.font_size >= GRID else 0


def caption_lines(model: str, width: int, height: int, seed: int, index: int, label: str, prompt: str,
                  columns: int) -> list[str]:
    lines = [model or "model", f"{width}x{height}" + (f"  ·  {label}" if label else ""),
             f"seed {seed}  ·  image {index}"]
    return [*lines, *_prompt_lines(prompt, columns)]


@lru_cache(maxsize=256)
def _prompt_lines(prompt: str, columns: int) -> tuple[str, ...]:
    """The prompt as caption lines; every image of a prompt shares them."""
    text = " ".join(prompt.split())
    if len(text) > PROMPT_CHARS:
        text = text[: PROMPT_CHARS - 1].rstrip() + "…"
    wrapped = textwrap.wrap(text, columns, break_long_words=True) if text else []
    if len(wrapped) > PROMPT_LINES:
        wrapped = [*wrapped[: PROMPT_LINES - 1], wrapped[PROMPT_LINES - 1][: columns - 1].rstrip() + "…"]
    return tuple(wrapped)


def layout(width: int, height: int, seed: int, index: int, model: str, prompt: str, label: str) -> Card:
    rng = random.Random(f"nanobanana-sim/seed/{seed}")
    # The seed picks the composition, so one batch shares it; the index turns the hues by the golden ratio
    # so that every image of a batch is still clearly different.
    hue = rng.random() + index * GOLDEN_RATIO_CONJUGATE
    background = _rgb(hue, 0.55, 0.92)
    blocks: list[tuple[Box, RGB]] = []
    for n in range(rng.randint(3, 5)):
        w = _snap(width * rng.uniform(0.2, 0.55))
        h = _snap(height * rng.uniform(0.2, 0.55))
        x = _snap(rng.uniform(0, max(0, width - w)))
        y = _snap(rng.uniform(0, max(0, height - h)))
        colour = _rgb(hue + 0.33 + n * 0.17, rng.uniform(0.45, 0.85), rng.uniform(0.55, 0.95))
        blocks.append(((x, y, min(width, x + w), min(height, y + h)), colour))

    columns = COLUMNS_WIDE if width >= height else COLUMNS_NARROW
    lines = caption_lines(model, width, height, seed, index, label, prompt, columns)
    font_size = _font_size(width, height, columns, len(lines))
    if font_size < MIN_FONT:
        return Card(width, height, background, tuple(blocks), None, (), 0, 0)
    line_height = _snap_up(font_size * LINE_PITCH)
    pad = GRID if font_size >= GRID else 0
    panel_w = min(_snap_up(width), _snap_up(text_width(font_size, columns)) + 2 * pad)
    panel_h = min(_snap_up(height), line_height * len(lines) + 2 * pad)
    # The caption is cut at the panel's edge rather than shrunk below legibility.
    fitting = max(1, (panel_h - 2 * pad) // line_height)
    lines = lines[:fitting]
    left = _snap(max(0, (width - panel_w) / 2))
    top = _snap(max(0, (height - panel_h) / 2))
    return Card(width, height, background, tuple(blocks), (left, top, left + panel_w, top + panel_h),
                tuple(lines), font_size, line_height)


def _font_size(width: int, height: int, columns: int, lines: int) -> int:
    """Big enough to read at full size, small enough that the caption stays a small part of a big image."""
    size = min(MAX_FONT, round(math.sqrt(width * height) / 40))
    while size >= MIN_FONT:
        fits_width = text_width(size, columns) + 2 * GRID <= width
        fits_height = _snap_up(size * LINE_PITCH) * min(lines, 4) <= height
        if fits_width and fits_height:
            return size
        size -= 1 if size <= 24 else max(1, size // 8)
    # Tiny images still show what they can: the smallest font, cut at the edges.
    return MIN_FONT if width >= 4 * MIN_FONT and height >= 2 * MIN_FONT else 0


def _snap(value: float) -> int:
    return int(value) // GRID * GRID


def _snap_up(value: float) -> int:
    return -(-math.ceil(value) // GRID) * GRID


def _rgb(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


# -- the caption ---------------------------------------------------------------------------------------

Font = ImageFont.FreeTypeFont
_thread_fonts = threading.local()
_FONTS_PER_THREAD = 64
_GLYPHS_PER_THREAD = 4096


def font(size: int) -> Font:
    # One cache per thread because a FreeType face must not be used by two threads at once.
    fonts: dict[int, Font] | None = getattr(_thread_fonts, "by_size", None)
    if fonts is None:
        fonts = _thread_fonts.by_size = {}
    if size not in fonts:
        if len(fonts) >= _FONTS_PER_THREAD:
            fonts.clear()  # arbitrary image sizes could otherwise grow the cache without bound
        # Pillow's bundled font: never depends on fonts installed on the host.
        loaded = ImageFont.load_default(size=size)
        if not isinstance(loaded, ImageFont.FreeTypeFont):  # the bitmap fallback has one size and no metrics
            raise RuntimeError("Pillow was built without FreeType; the placeholder's caption needs it")
        fonts[size] = loaded
    return fonts[size]


@lru_cache(maxsize=256)
def text_width(size: int, columns: int) -> int:
    return math.ceil(font(size).getlength("0" * columns))


def _printable(text: str, face: Font) -> str:
    # Without FreeType the bitmap fallback font only encodes Latin-1.
    if isinstance(face, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def ink_levels(size: tuple[int, int], line: str, font_size: int) -> bytes:
    """One caption line, centred, as bytes of ink levels 0 (panel) … INK_LEVELS - 1 (ink), a row after another.

    Kept by content: the lines images share (model, size, prompt) are drawn once. Glyphs are rasterised once
    per size and thread (simulator.images.design._glyph) and stamped: FreeType takes milliseconds a line, a
    stamp microseconds.
    """
    return _LINES.get((size, line, font_size), partial(_draw_line, size, line, font_size))


def _draw_line(size: tuple[int, int], line: str, font_size: int) -> bytes:
    mask = Image.new("L", size, 0)
    face = font(font_size)
    glyphs = [_glyph(ch, font_size) for ch in _printable(line, face)]
    ascent, descent = face.getmetrics()
    x = (size[0] - sum(advance for advance, _, _ in glyphs)) // 2
    baseline = (size[1] + ascent - descent) // 2
    canvas = mask.im  # Pillow's core image: Image.paste checks and converts per call, a glyph needs neither
    for advance, (left, top), glyph in glyphs:
        if glyph is not None:
            canvas.paste(255, (x + left, baseline + top, x + left + glyph.width, baseline + top + glyph.height),
                         glyph.im)
        x += advance
    return mask.tobytes().translate(_LEVELS)


_LEVELS = bytes(round(value * (INK_LEVELS - 1) / 255) for value in range(256))
# Caption lines kept drawn: a 4K line is about 200 KB.
_LINES: Memo[bytes] = Memo(LINE_CACHE_ENTRIES)
Glyph = tuple[int, tuple[int, int], Image.Image | None]


def _glyph(ch: str, size: int) -> Glyph:
    """(advance, offset of its mask from the pen position on the baseline, mask) of one character."""
    glyphs: dict[tuple[str, int], Glyph] | None = getattr(_thread_fonts, "glyphs", None)
    if glyphs is None or len(glyphs) > _GLYPHS_PER_THREAD:
        glyphs = _thread_fonts.glyphs = {}
    found = glyphs.get((ch, size))
    if found is None:
        face = font(size)
        left, top, right, bottom = (round(edge) for edge in face.getbbox(ch, anchor="ls"))
        mask = None
        if right > left and bottom > top:
            mask = Image.new("L", (right - left, bottom - top), 0)
            ImageDraw.Draw(mask).text((-left, -top), ch, font=face, fill=255, anchor="ls")
        found = glyphs[(ch, size)] = (round(face.getlength(ch)), (left, top), mask)
    return found


def ink_palette() -> list[RGB]:
    """The colour of each ink level, from the panel to full ink."""
    top = INK_LEVELS - 1
    return [tuple(round(p + (i - p) * level / top) for p, i in zip(PANEL, INK, strict=True))  # type: ignore[misc]
            for level in range(INK_LEVELS)]

"""Baseline JPEG assembled from pre-encoded MCUs instead of encoding every pixel.

With a restart marker after every MCU (DRI = 1) each MCU's entropy-coded bytes stand alone: the DC
predictor starts from zero and the segment is byte-aligned. So an image made of flat 16x16 blocks and a
few caption strips (simulator.images.design) is the header, then per MCU the segment of its flat colour or
of its piece of a caption strip, each followed by RST0…RST7 in turn. libjpeg (through Pillow) encodes
only what is new: one MCU per flat colour, and each caption strip, whose segments are kept by content, so
the caption lines two images share (model, size, prompt) are encoded once. Every piece is encoded with the
same settings (quality, 4:2:0, libjpeg's standard Huffman tables), so the pieces share one header.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from functools import partial

from PIL import Image

from simulator.images.design import GRID, RGB, Card
from simulator.images.memo import Memo

SOI, SOF0, SOS, EOI = b"\xff\xd8", 0xFFC0, 0xFFDA, b"\xff\xd9"
RESTART = [bytes((0xFF, 0xD0 + n)) for n in range(8)]
_RESTART_MARKER = re.compile(rb"\xff[\xd0-\xd7]")
# Caption strips kept encoded, by (quality, size, line, font size): a few lines per distinct prompt.
STRIP_CACHE_ENTRIES = 2048


def encode(image: Image.Image, quality: int) -> tuple[bytes, list[bytes]]:
    """libjpeg's encoding of `image` with one MCU per restart interval: (header up to SOS, MCU segments)."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, subsampling=2, optimize=False, restart_marker_blocks=1)
    data = out.getvalue()
    header_end = _scan_start(data)
    scan = data[header_end: -len(EOI)]
    return data[:header_end], _RESTART_MARKER.split(scan)


def _scan_start(data: bytes) -> int:
    """Offset of the first entropy-coded byte: just past the SOS segment."""
    offset = len(SOI)
    while True:
        marker, length = struct.unpack(">HH", data[offset: offset + 4])
        offset += 2 + length
        if marker == SOS:
            return offset


def with_size(header: bytes, width: int, height: int) -> bytes:
    """`header` with its SOF0 frame size replaced."""
    offset = len(SOI)
    while True:
        marker, length = struct.unpack(">HH", header[offset: offset + 4])
        if marker == SOF0:
            # SOF0: length, precision (1 byte), height, width.
            size_at = offset + 5
            return header[:size_at] + struct.pack(">HH", height, width) + header[size_at + 4:]
        offset += 2 + length


STRIPS: Memo[list[list[bytes]]] = Memo(STRIP_CACHE_ENTRIES)


def assemble(card: Card, quality: int, strip_image: Callable[[tuple[int, int], str], Image.Image]) -> bytes:
    """The JPEG of `card`; `strip_image(size, line)` draws one caption strip in RGB."""
    columns, rows = -(-card.width // GRID), -(-card.height // GRID)
    colours = card.colours
    header, flat = encode(_swatches(colours), quality)
    # Which source each MCU takes: a flat colour's index, or (strip rows, strip's first column).
    grid = [[0] * columns for _ in range(rows)]
    for box, colour in card.blocks:
        _fill(grid, box, colours.index(colour), columns, rows)
    strips: dict[int, tuple[list[bytes], int]] = {}
    if card.panel is not None:
        panel_index = len(colours)
        _fill(grid, card.panel, panel_index, columns, rows)
        panel_segments = encode(strip_image((GRID, GRID), ""), quality)[1]
        flat = [*flat, *panel_segments]
        for (left, top, right, bottom), line in card.strips():
            size = (right - left, bottom - top)
            key = (quality, size, line, card.font_size)
            encoded = STRIPS.get(key, partial(_encoded_strip, strip_image, size, line, quality))
            for n, strip_row in enumerate(encoded):
                if top // GRID + n < rows:
                    strips[top // GRID + n] = (strip_row, left // GRID)
    cycles = [[segment + marker for marker in RESTART] for segment in flat]

    body: list[bytes] = []
    flat_rows: dict[tuple[int, ...], bytes] = {}  # a row without caption, by (restart phase, cells)
    for y, cells in enumerate(grid):
        start = y * columns
        strip = strips.get(y)
        if strip is None:
            row_key = (start % 8, *cells)
            row = flat_rows.get(row_key)
            if row is None:
                row = flat_rows[row_key] = b"".join(_flat_row(cycles, cells, start))
            body.append(row)
            continue
        segments, first = strip
        end = min(columns, first + len(segments))
        body.extend(_flat_row(cycles, cells[:first], start))
        body.extend(segments[n - first] + RESTART[(start + n) % 8] for n in range(first, end))
        body.extend(_flat_row(cycles, cells[end:], start + end))
    scan = b"".join(body)[: -len(RESTART[0])]  # no restart marker after the last MCU
    return with_size(header, card.width, card.height) + scan + EOI


def _flat_row(cycles: list[list[bytes]], cells: list[int], start: int) -> list[bytes]:
    pieces = []
    x, columns = 0, len(cells)
    while x < columns:
        source, end = cells[x], x + 1
        while end < columns and cells[end] == source:
            end += 1
        pieces.append(_run(cycles[source], start + x, end - x))
        x = end
    return pieces


def _swatches(colours: tuple[RGB, ...]) -> Image.Image:
    """One flat MCU per colour, side by side."""
    image = Image.new("RGB", (GRID * len(colours), GRID))
    for n, colour in enumerate(colours):
        image.paste(colour, (n * GRID, 0, (n + 1) * GRID, GRID))
    return image


def _encoded_strip(strip_image: Callable[[tuple[int, int], str], Image.Image], size: tuple[int, int], line: str,
                   quality: int) -> list[list[bytes]]:
    return _strip_rows(strip_image(size, line), quality)


def _strip_rows(image: Image.Image, quality: int) -> list[list[bytes]]:
    segments = encode(image, quality)[1]
    per_row = image.width // GRID
    return [segments[n: n + per_row] for n in range(0, len(segments), per_row)]


def _fill(grid: list[list[int]], box: tuple[int, int, int, int], value: int, columns: int, rows: int) -> None:
    left, top, right, bottom = (edge // GRID for edge in box)
    span = min(columns, right) - left
    if span <= 0:
        return
    for y in range(top, min(rows, bottom)):
        grid[y][left: left + span] = [value] * span


def _run(cycle: list[bytes], first: int, count: int) -> bytes:
    """`count` copies of one flat MCU starting at MCU number `first`, each with its restart marker."""
    phase = first % 8
    ordered = cycle[phase:] + cycle[:phase]
    whole, rest = divmod(count, 8)
    return b"".join(ordered) * whole + b"".join(ordered[:rest])

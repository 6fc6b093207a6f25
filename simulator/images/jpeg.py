"""Baseline JPEG assembled from pre-encoded MCUs instead of encoding every pixel.

With a restart marker after every MCU (DRI = 1) each MCU's entropy-coded bytes stand alone: the DC
predictor starts from zero and the segment is byte-aligned. So an image made of flat 16x16 blocks and a
few caption strips (simulator.images.design) is the header, then per MCU the segment of its flat colour or
of its piece of a caption strip, each followed by RST0…RST7 in turn.

libjpeg (through Pillow) encodes the caption strips, whose rows are kept by content, so the caption lines
two images share (model, size, prompt) are encoded once. A flat MCU is written here: it is only DC
coefficients (every AC coefficient of a flat block is zero), computed as libjpeg computes them (its fixed-
point colour conversion, its rounding of the quantised DC) with the quantisation and Huffman tables read
from libjpeg's own header for the quality, so the pieces share one header and a flat MCU comes out byte for
byte what libjpeg writes (tests/test_image_serving.py holds the two together).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from itertools import groupby

from PIL import Image

from simulator.images.design import GRID, PANEL, RGB, Card, ink_levels, ink_palette
from simulator.images.memo import Memo

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
SOF0, DQT, DHT, SOS = 0xFFC0, 0xFFDB, 0xFFC4, 0xFFDA
RESTART = [bytes((0xFF, 0xD0 + n)) for n in range(8)]
_RESTART_MARKER = re.compile(rb"\xff[\xd0-\xd7]")
# Caption strips kept encoded, by (quality, size, line, font size): a few lines per distinct prompt.
STRIP_CACHE_ENTRIES = 2048
# JFIF's RGB -> YCbCr in libjpeg's 16-bit fixed point (jccolor.c): rows of (R, G, B) weights, and offsets.
_SCALE = 16
_WEIGHTS = ((19595, 38470, 7471), (-11059, -21709, 32768), (32768, -27439, -5329))
_OFFSETS = (1 << (_SCALE - 1), (128 << _SCALE) + (1 << (_SCALE - 1)) - 1, (128 << _SCALE) + (1 << (_SCALE - 1)) - 1)


def encode(image: Image.Image, quality: int) -> tuple[bytes, list[bytes]]:
    """libjpeg's encoding of `image` with one MCU per restart interval: (header up to SOS, MCU segments)."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, subsampling=2, optimize=False, restart_marker_blocks=1)
    data = out.getvalue()
    header_end = _scan_start(data)
    scan = data[header_end: -len(EOI)]
    return data[:header_end], _RESTART_MARKER.split(scan)


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each header segment up to and including SOS."""
    found, offset = [], len(SOI)
    while True:
        marker, length = struct.unpack(">HH", data[offset: offset + 4])
        found.append((marker, data[offset + 4: offset + 2 + length]))
        offset += 2 + length
        if marker == SOS:
            return found


def _scan_start(data: bytes) -> int:
    """Offset of the first entropy-coded byte: just past the SOS segment."""
    return len(SOI) + sum(4 + len(payload) for _, payload in _segments(data))


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


Code = tuple[int, int]  # (bits, length), most significant bit first as JPEG packs them


@dataclass(frozen=True)
class _Component:
    blocks: int  # data units per MCU
    dc_quant: int
    dc_codes: dict[int, Code]
    eob: Code  # the AC table's end-of-block code: a flat block has no AC coefficient

    @cached_property
    def by_sample(self) -> list[Code]:
        """For each sample value 0…255, the bits of this component's blocks in an MCU of that flat value."""
        found = []
        for sample in range(256):
            # libjpeg's islow DCT gives a flat block's DC as 64 x the level-shifted sample, and quantises it by
            # 8 x the table's entry, rounding halves away from zero (jcdctmgr.c).
            shifted, divisor = sample - 128, self.dc_quant * 8
            dc = (64 * abs(shifted) + divisor // 2) // divisor
            dc = -dc if shifted < 0 else dc
            bits = _MsbBits()
            for block in range(self.blocks):
                diff = dc if block == 0 else 0  # the predictor restarts at zero in every restart interval
                size = abs(diff).bit_length()
                bits.put(*self.dc_codes[size])
                if size:
                    bits.put(diff if diff > 0 else diff + (1 << size) - 1, size)
                bits.put(*self.eob)
            found.append((bits.value, bits.size))
        return found


@dataclass(frozen=True)
class Tables:
    """libjpeg's header for a quality and what writing a flat MCU needs from it."""

    header: bytes
    components: tuple[_Component, ...]

    def flat(self, colour: RGB) -> bytes:
        """The entropy-coded segment of one MCU of a flat colour."""
        red, green, blue = colour
        bits = _MsbBits()
        for component, (wr, wg, wb), offset in zip(self.components, _WEIGHTS, _OFFSETS, strict=True):
            bits.put(*component.by_sample[(wr * red + wg * green + wb * blue + offset) >> _SCALE])
        return bits.getvalue()


class _MsbBits:
    """JPEG's entropy-coded bits: most significant first, padded with ones, each 0xFF byte stuffed with 0x00."""

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def put(self, value: int, size: int) -> None:
        self.value = (self.value << size) | value
        self.size += size

    def getvalue(self) -> bytes:
        pad = -self.size % 8
        data = ((self.value << pad) | ((1 << pad) - 1)).to_bytes((self.size + pad) // 8, "big")
        return data.replace(b"\xff", b"\xff\x00")


@lru_cache(maxsize=16)
def tables(quality: int) -> Tables:
    """libjpeg's header at `quality` (4:2:0, standard Huffman tables), read once per quality."""
    header, _ = encode(Image.new("RGB", (GRID, GRID)), quality)
    quant: dict[int, int] = {}
    huffman: dict[tuple[int, int], dict[int, Code]] = {}
    frame: list[tuple[int, int, int]] = []  # (component id, blocks per MCU, quantisation table)
    scan: dict[int, tuple[int, int]] = {}  # component id -> (DC table, AC table)
    for marker, payload in _segments(header):
        if marker == DQT:
            for at in range(0, len(payload), 65):  # 8-bit tables: id, then 64 entries in zigzag order (DC first)
                quant[payload[at] & 0x0F] = payload[at + 1]
        elif marker == DHT:
            at = 0
            while at < len(payload):
                kind, counts = payload[at], payload[at + 1: at + 17]
                symbols = payload[at + 17: at + 17 + sum(counts)]
                huffman[(kind >> 4, kind & 0x0F)] = _huffman_codes(counts, symbols)
                at += 17 + sum(counts)
        elif marker == SOF0:
            for at in range(6, 6 + 3 * payload[5], 3):
                sampling = payload[at + 1]
                frame.append((payload[at], (sampling >> 4) * (sampling & 0x0F), payload[at + 2]))
        elif marker == SOS:
            for at in range(1, 1 + 2 * payload[0], 2):
                scan[payload[at]] = (payload[at + 1] >> 4, payload[at + 1] & 0x0F)
    components = tuple(_Component(blocks, quant[q], huffman[(0, scan[cid][0])], huffman[(1, scan[cid][1])][0x00])
                       for cid, blocks, q in frame)
    return Tables(header, components)


def _huffman_codes(counts: bytes, symbols: bytes) -> dict[int, Code]:
    """Canonical codes from a DHT's code counts per length (ITU T.81 Annex C)."""
    codes: dict[int, Code] = {}
    code, n = 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[n]] = (code, length)
            code, n = code + 1, n + 1
        code <<= 1
    return codes


class _StripRow:
    """One MCU row of an encoded caption strip, joined with its restart markers once per starting phase."""

    __slots__ = ("_joined", "segments")

    def __init__(self, segments: list[bytes]) -> None:
        self.segments = segments
        self._joined: dict[int, bytes] = {}

    def joined(self, phase: int) -> bytes:
        found = self._joined.get(phase)
        if found is None:
            found = self._joined[phase] = b"".join(
                segment + RESTART[(phase + n) % 8] for n, segment in enumerate(self.segments))
        return found


STRIPS: Memo[list[_StripRow]] = Memo(STRIP_CACHE_ENTRIES)


def assemble(card: Card, quality: int) -> bytes:
    """The JPEG of `card`."""
    columns, rows = -(-card.width // GRID), -(-card.height // GRID)
    colours = card.colours
    table = tables(quality)
    flat = [table.flat(colour) for colour in colours]
    # Which source each MCU takes: a flat colour's index (the panel's after the colours').
    grid = [bytearray(columns) for _ in range(rows)]  # frozen to bytes below: rows are compared and hashed
    for box, colour in card.blocks:
        _fill(grid, box, colours.index(colour), columns, rows)
    strips: dict[int, tuple[_StripRow, int]] = {}
    if card.panel is not None:
        _fill(grid, card.panel, len(flat), columns, rows)
        flat.append(table.flat(PANEL))
        for (left, top, right, bottom), line in card.strips():
            size = (right - left, bottom - top)
            key = (quality, size, line, card.font_size)
            encoded = STRIPS.get(key, partial(_encoded_strip, size, line, card.font_size, quality))
            for n, strip_row in enumerate(encoded):
                if top // GRID + n < rows:
                    strips[top // GRID + n] = (strip_row, left // GRID)
    runs = _Runs(flat)
    body: list[bytes] = []
    for y, cells in enumerate(map(bytes, grid)):
        start = y * columns
        strip = strips.get(y)
        if strip is None:
            body.append(runs.row(cells, start))
            continue
        strip_row, first = strip
        segments = strip_row.segments
        end = min(columns, first + len(segments))
        body.append(runs.row(cells[:first], start))
        if end == first + len(segments):
            body.append(strip_row.joined((start + first) % 8))
        else:  # the panel is cut at the image's right edge
            body.extend(segments[n - first] + RESTART[(start + n) % 8] for n in range(first, end))
        body.append(runs.row(cells[end:], start + end))
    body[-1] = body[-1][: -len(RESTART[0])]  # no restart marker after the last MCU
    return b"".join([with_size(table.header, card.width, card.height), *body, EOI])


class _Runs:
    """Stretches of flat MCUs with their restart markers, each stretch joined once per picture."""

    def __init__(self, flat: list[bytes]) -> None:
        self._cycles = [[segment + marker for marker in RESTART] for segment in flat]
        self._rows: dict[tuple[int, bytes], bytes] = {}
        self._last: tuple[tuple[int, bytes], bytes] = ((-1, b""), b"")

    def row(self, cells: bytes, start: int) -> bytes:
        """The MCUs `cells` (flat sources), the first of them MCU number `start` of the picture."""
        key = (start % 8, cells)
        if key == self._last[0]:  # most rows repeat the one before: no hashing for them
            return self._last[1]
        found = self._rows.get(key)
        if found is None:
            pieces, x = [], start
            for source, run in groupby(cells):
                count = len(list(run))
                pieces.append(self._run(source, x, count))
                x += count
            found = self._rows[key] = b"".join(pieces)
        self._last = (key, found)
        return found

    def _run(self, source: int, first: int, count: int) -> bytes:
        """`count` copies of one flat MCU starting at MCU number `first`, each with its restart marker."""
        cycle, phase = self._cycles[source], first % 8
        ordered = cycle[phase:] + cycle[:phase]
        whole, rest = divmod(count, 8)
        return b"".join(ordered) * whole + b"".join(ordered[:rest])


def _encoded_strip(size: tuple[int, int], line: str, font_size: int, quality: int) -> list[_StripRow]:
    """A caption strip's MCU rows. Only the MCU columns with ink go through libjpeg; the rest are flat panel."""
    strip = Image.frombytes("P", size, ink_levels(size, line, font_size))
    per_row, panel = size[0] // GRID, tables(quality).flat(PANEL)
    inked = strip.getbbox()  # level 0 is the bare panel
    if inked is None:
        return [_StripRow([panel] * per_row) for _ in range(size[1] // GRID)]
    first, end = inked[0] // GRID, -(-inked[2] // GRID)
    strip = strip.crop((first * GRID, 0, end * GRID, size[1]))
    strip.putpalette(_INK_PALETTE)
    segments = encode(strip.convert("RGB"), quality)[1]
    width = end - first
    return [_StripRow([panel] * first + segments[n: n + width] + [panel] * (per_row - end))
            for n in range(0, len(segments), width)]


_INK_PALETTE = bytes(channel for colour in ink_palette() for channel in colour)


def _fill(grid: list[bytearray], box: tuple[int, int, int, int], value: int, columns: int, rows: int) -> None:
    left, top, right, bottom = (edge // GRID for edge in box)
    span = min(columns, right) - left
    if span <= 0:
        return
    cells = bytes((value,)) * span
    for y in range(top, min(rows, bottom)):
        grid[y][left: left + span] = cells


"""Lossless WebP (VP8L) written from a picture's distinct rows, with fixed prefix codes.

libwebp spends tens of nanoseconds on every pixel, so a 4K card costs it half a second even though the card
is a few hundred distinct rows. This writer emits the rows itself: the colour-indexing transform holds the
card's palette (padded to 17 entries so that pixels are not bundled), each run of a row is either "copy
from the row above" or a literal index and "copy from the left pixel", and a run of identical rows is one
"copy from above" every 4,096 pixels. The prefix codes are fixed (every symbol the card can need, none
optimised), so the bits of a caption strip do not depend on the rest of the picture: they are kept by
content (a prompt's lines are written once) and spliced in.

RFC 9649 is the reference: §3.6 (colour indexing), §5.2 (LZ77, the distance map), §6.2.2 (prefix codes).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

from simulator.images.bits import BitWriter
from simulator.images.design import RGB
from simulator.images.memo import Memo

SIGNATURE = 0x2F
MAX_LENGTH = 4096
PALETTE_SIZE = 17  # more than 16 entries: one index a pixel, no bundling
GREEN_SIZE = 256 + 24  # literals, then length prefixes (no colour cache)
UP, LEFT = 1, 2  # distance codes of (0, 1) and (1, 0) in the distance map
STRIP_CACHE_ENTRIES = 2048
_RUN = re.compile(rb"(.)\1*", re.DOTALL)
_NONZERO = re.compile(rb"[^\x00]+")
CODE_LENGTH_ORDER = (17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

Bits = tuple[int, int]  # (value, count), least significant bit first


def _reverse(code: int, size: int) -> int:
    return int(f"{code:0{size}b}"[::-1], 2) if size else 0


@lru_cache(maxsize=16)
def _canonical(lengths: tuple[int, ...]) -> list[Bits]:
    """Canonical prefix codes (RFC 9649 §6.2.2, as in DEFLATE), bit-reversed for an LSB-first stream."""
    codes: list[Bits] = [(0, 0)] * len(lengths)
    code = 0
    for size in range(1, 16):
        for symbol, length in enumerate(lengths):
            if length == size:
                codes[symbol] = (_reverse(code, size), size)
                code += 1
        code <<= 1
    return codes


# The main image's green alphabet: palette indices 0..16 and the 24 length prefixes; 23 codes of 5 bits and
# 18 of 6 fill the code space exactly (23/32 + 18/64 = 1).
_GREEN_LENGTHS = [5] * PALETTE_SIZE + [0] * (256 - PALETTE_SIZE) + [5] * 6 + [6] * 18
GREEN = _canonical(tuple(_GREEN_LENGTHS))


def _copy(distance_code: int, length: int) -> Bits:
    """A backward reference of `length` pixels (in pieces of at most 4,096) from the pixel above or to the left."""
    value = size = 0
    while length > 0:
        part = min(length, MAX_LENGTH)
        prefix, extra, extra_bits = _prefix(part)
        code, code_size = GREEN[256 + prefix]
        # The length's code and extra bits, then the distance code's prefix: 0 for UP, 1 for LEFT, one bit each.
        value |= (code | (extra << code_size) | ((distance_code - 1) << (code_size + extra_bits))) << size
        size += code_size + extra_bits + 1
        length -= part
    return value, size


def _prefix(value: int) -> tuple[int, int, int]:
    """(prefix symbol, extra value, extra bit count) of an LZ77 length or distance (RFC 9649 §5.2.2)."""
    v = value - 1
    if v < 4:
        return v, 0, 0
    high = v.bit_length() - 1
    second = (v >> (high - 1)) & 1
    extra_bits = high - 1
    return 2 * high + second, v - ((2 + second) << extra_bits), extra_bits


def row_bits(row: bytes, above: bytes | None) -> Bits:
    """One row: spans equal to the row above are copied from it, other runs are a literal and a left copy."""
    if above is None:
        changed = [(0, len(row))]
    elif row == above:  # most of a card's rows, outside the caption
        return _copy_bits(UP, len(row)) if row else (0, 0)
    else:
        # Where the two differ, found in C: the bytes of their XOR that are not zero.
        difference = (int.from_bytes(row, "little") ^ int.from_bytes(above, "little")).to_bytes(len(row), "little")
        changed = [match.span() for match in _NONZERO.finditer(difference)]
    # Each symbol's bits as text, most significant first: the row is their concatenation read backwards (the
    # stream is least significant bit first), turned into one int at the end instead of shifting one per symbol.
    pieces = []
    done = 0
    for start, end in changed:
        if start > done:
            pieces.append(_copy_text(UP, start - done))
        for run in _RUN.finditer(row, start, end):
            first, last = run.span()
            pieces.append(_GREEN_TEXT[row[first]])  # red, blue and alpha have one symbol each: no bits
            if last - first > 1:
                pieces.append(_copy_text(LEFT, last - first - 1))
        done = end
    if done < len(row):
        pieces.append(_copy_text(UP, len(row) - done))
    pieces.reverse()
    text = "".join(pieces)
    return (int(text, 2) if text else 0), len(text)


def _text(bits: Bits) -> str:
    value, size = bits
    return format(value, f"0{size}b") if size else ""


_GREEN_TEXT = [_text(code) for code in GREEN[:PALETTE_SIZE]]


@lru_cache(maxsize=4096)
def _copy_text(distance_code: int, length: int) -> str:
    return _text(_copy_bits(distance_code, length))


def _strip_bits_of(rows: Callable[[], list[bytes]]) -> list[Bits]:
    return _strip_bits(rows())


def _strip_bits(rows: list[bytes]) -> list[Bits]:
    """Each row of a caption strip, the first on its own, the others relative to the row before."""
    encoded = []
    above = None
    for row in rows:
        encoded.append(row_bits(row, above))
        above = row
    return encoded


STRIPS: Memo[list[Bits]] = Memo(STRIP_CACHE_ENTRIES)


_copy_bits = lru_cache(maxsize=4096)(_copy)


_COPY_UP_MAX = _copy_bits(UP, MAX_LENGTH)

# What a distinct row holds within a caption strip: (strip key, its rows, the row's index, left, right).
StripRow = tuple[tuple[object, ...], Callable[[], list[bytes]], int, int, int]


def encode(width: int, height: int, palette: list[RGB], rows: list[bytes], counts: list[int],
           strip_rows: list[StripRow | None]) -> bytes:
    """A VP8L WebP of distinct `rows` (palette indices, one byte a pixel), each repeated `counts` times."""
    if len(palette) > PALETTE_SIZE:
        raise ValueError(f"at most {PALETTE_SIZE} colours, got {len(palette)}")
    bits = BitWriter()
    bits.write(SIGNATURE, 8)
    bits.write(width - 1, 14)
    bits.write(height - 1, 14)
    bits.write(0, 1)  # no alpha
    bits.write(0, 3)  # version 0
    bits.write(1, 1)  # a transform:
    bits.write(3, 2)  # colour indexing
    bits.write(PALETTE_SIZE - 1, 8)
    bits.write(*_constant(_palette_codes))
    _palette_entries(bits, [*palette, *[palette[-1]] * (PALETTE_SIZE - len(palette))])
    bits.write(0, 1)  # no more transforms
    bits.write(0, 1)  # no colour cache
    bits.write(0, 1)  # one prefix-code group for the whole image
    bits.write(*_constant(_main_codes))
    above: bytes | None = None
    for row, count, strip in zip(rows, counts, strip_rows, strict=True):
        if strip is None:
            bits.write(*row_bits(row, above))
        else:
            key, strip_rows_of, index, left, right = strip
            bits.write(*row_bits(row[:left], above[:left] if above is not None else None))
            bits.write(*STRIPS.get(key, partial(_strip_bits_of, strip_rows_of))[index])
            bits.write(*row_bits(row[right:], above[right:] if above is not None else None))
        if count > 1:
            whole, rest = divmod((count - 1) * width, MAX_LENGTH)
            bits.repeat(*_COPY_UP_MAX, whole)
            bits.write(*_copy_bits(UP, rest))
        above = row
    data = bits.getvalue()
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _code_lengths(bits: BitWriter, lengths: Sequence[int], code_length_lengths: dict[int, int]) -> None:
    """A normal prefix code: the code-length code, then each symbol's length (zeros in runs of code 18)."""
    bits.write(0, 1)  # not a simple code
    count = max(CODE_LENGTH_ORDER.index(symbol) for symbol in code_length_lengths) + 1
    bits.write(count - 4, 4)
    for symbol in CODE_LENGTH_ORDER[:count]:
        bits.write(code_length_lengths.get(symbol, 0), 3)
    meta = _canonical(tuple(code_length_lengths.get(symbol, 0) for symbol in range(19)))
    bits.write(0, 1)  # every symbol's length follows
    n = 0
    while n < len(lengths):
        if lengths[n] == 0:
            run = 1
            while n + run < len(lengths) and lengths[n + run] == 0 and run < 138:
                run += 1
            if run >= 11:
                bits.write(*meta[18])
                bits.write(run - 11, 7)
                n += run
                continue
        bits.write(*meta[lengths[n]])
        n += 1


def _main_codes(bits: BitWriter) -> None:
    _code_lengths(bits, _GREEN_LENGTHS, {18: 1, 5: 2, 6: 2})
    for _ in range(3):  # red, blue, alpha: the indexed image only uses green
        _single(bits)
    # Distance: two symbols, 0 (UP) and 1 (LEFT), one bit each.
    bits.write(1, 1)  # simple code
    bits.write(1, 1)  # two symbols
    bits.write(0, 1)  # the first in 1 bit
    bits.write(0, 1)  # symbol 0
    bits.write(1, 8)  # symbol 1


def _single(bits: BitWriter) -> None:
    """A simple prefix code with the one symbol 0: it costs no bits where it is used."""
    bits.write(1, 1)  # simple code
    bits.write(0, 1)  # one symbol
    bits.write(0, 1)  # of 1 bit
    bits.write(0, 1)  # symbol 0


@lru_cache(maxsize=4)
def _constant(write: Callable[[BitWriter], None]) -> Bits:
    """The bits a writer of a picture-independent part (prefix codes) writes, written once."""
    bits = BitWriter()
    write(bits)
    return bits.getvalue_bits()


def _palette_codes(bits: BitWriter) -> None:
    """The colour table is a 1-row image with 8-bit codes for every channel."""
    bits.write(0, 1)  # no colour cache
    eight_bit = [8] * 256
    for size in (GREEN_SIZE, 256, 256, 256):  # green, red, blue, alpha
        _code_lengths(bits, eight_bit + [0] * (size - 256), {8: 1, 18: 1})
    _single(bits)  # distance: unused


def _palette_entries(bits: BitWriter, palette: list[RGB]) -> None:
    """The colour table's pixels, each entry the difference from the one before."""
    flat = _canonical((8,) * 256)
    previous = (0, 0, 0, 0)
    for red, green, blue in palette:
        argb = (255, red, green, blue)
        alpha, dr, dg, db = ((value - before) % 256 for value, before in zip(argb, previous, strict=True))
        for value in (dg, dr, db, alpha):  # a literal's order: green, red, blue, alpha
            bits.write(*flat[value])
        previous = argb

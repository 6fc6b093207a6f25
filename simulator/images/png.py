"""Palette PNG written from a picture's distinct rows, with runs of repeated rows deflated by hand.

A card (simulator.images.design) has few distinct rows: one per band of flat colour, plus the caption's.
zlib compresses each distinct row once; a run of n copies of the row before is one fixed-Huffman deflate
block of back-references at a distance of one row (258 bytes a reference, a few bytes per row), written
without zlib reading the copies at all. The Adler-32 of the whole stream is combined arithmetically.
"""

from __future__ import annotations

import struct
import zlib

from simulator.images.bits import BitWriter
from simulator.images.design import RGB

SIGNATURE = b"\x89PNG\r\n\x1a\n"
ADLER_BASE = 65521
# Under this many repeated bytes a hand-made block is not worth its few bytes of framing.
HANDMADE_MIN = 1024
MAX_MATCH = 258
MIN_MATCH = 3
MAX_DISTANCE = 32768

# RFC 1951 §3.2.5: (code, base, extra bits) of lengths and distances.
_LENGTHS = [(257 + n, base, extra) for n, (base, extra) in enumerate([
    (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1), (15, 1), (17, 1),
    (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3), (59, 3), (67, 4), (83, 4), (99, 4),
    (115, 4), (131, 5), (163, 5), (195, 5), (227, 5), (258, 0)])]
_DISTANCES = [(n, base, extra) for n, (base, extra) in enumerate([
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3), (33, 4), (49, 4),
    (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8), (769, 8), (1025, 9), (1537, 9),
    (2049, 10), (3073, 10), (4097, 11), (6145, 11), (8193, 12), (12289, 12), (16385, 13), (24577, 13)])]


def encode(width: int, palette: list[RGB], rows: list[bytes], runs: list[tuple[int, int]], bit_depth: int) -> bytes:
    """A palette PNG. `rows` are distinct packed rows (without filter byte); `runs` lists (row, count) top down."""
    height = sum(count for _, count in runs)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 3, 0, 0, 0)
    plte = bytes(channel for colour in palette for channel in colour)
    return b"".join([SIGNATURE, _chunk(b"IHDR", header), _chunk(b"PLTE", plte), _chunk(b"IDAT", _zlib(rows, runs)),
                     _chunk(b"IEND", b"")])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _zlib(rows: list[bytes], runs: list[tuple[int, int]]) -> bytes:
    out = [b"\x78\x01"]
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    adler = 1
    for row_id, count in runs:
        line = b"\x00" + rows[row_id]  # filter type 0: a repeated row is repeated bytes, which is all we need
        repeated = (count - 1) * len(line)
        if repeated < HANDMADE_MIN or len(line) > MAX_DISTANCE:
            out.append(compressor.compress(line * count))
        else:
            out.append(compressor.compress(line))
            # A full flush aligns to a byte and makes zlib forget its history: what follows must not refer to
            # bytes it did not write itself (the decoder's window also holds the copies below).
            out.append(compressor.flush(zlib.Z_FULL_FLUSH))
            out.append(_copies(len(line), repeated))
        adler = _adler_combine(adler, _adler_repeated(zlib.adler32(line), len(line), count), count * len(line))
    out.append(compressor.flush(zlib.Z_FINISH))
    out.append(struct.pack(">I", adler))
    return b"".join(out)


def _copies(distance: int, length: int) -> bytes:
    """A fixed-Huffman block repeating the last `distance` bytes for `length` bytes, then byte alignment."""
    bits = BitWriter()
    bits.write(0b010, 3)  # BFINAL=0, BTYPE=01 (fixed Huffman), least significant bit first
    whole, rest = divmod(length, MAX_MATCH)
    lengths = [rest] if rest >= MIN_MATCH else ([MAX_MATCH + rest - MIN_MATCH, MIN_MATCH] if rest else [])
    if rest and rest < MIN_MATCH:
        whole -= 1
    value, size = _match(MAX_MATCH, distance)
    bits.repeat(value, size, whole)
    for part in lengths:
        bits.write(*_match(part, distance))
    bits.write(0, 7)  # end of block: code 256 is seven zero bits
    bits.write(0, 3)  # an empty stored block (BFINAL=0, BTYPE=00) …
    bits.align()
    bits.raw(b"\x00\x00\xff\xff")  # … of length 0: the stream is byte-aligned for zlib's next block
    return bits.getvalue()


def _match(length: int, distance: int) -> tuple[int, int]:
    """(bits, count) of one length/distance pair in the fixed code, ready to write LSB first."""
    code, base, extra = next(entry for entry in reversed(_LENGTHS) if entry[1] <= length)
    if code < 280:
        value, size = _reverse(code - 256, 7), 7
    else:
        value, size = _reverse(0b11000000 + code - 280, 8), 8
    value |= (length - base) << size
    size += extra
    dcode, dbase, dextra = next(entry for entry in reversed(_DISTANCES) if entry[1] <= distance)
    value |= _reverse(dcode, 5) << size
    size += 5
    value |= (distance - dbase) << size
    return value, size + dextra


def _reverse(code: int, size: int) -> int:
    """Huffman codes are packed most significant bit first into an LSB-first stream."""
    return int(f"{code:0{size}b}"[::-1], 2)


def _adler_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from those of A and B (zlib's adler32_combine)."""
    rem = second_length % ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % ADLER_BASE
    sum1 = (sum1 + (second & 0xFFFF) + ADLER_BASE - 1) % ADLER_BASE
    sum2 = (sum2 + (first >> 16) + (second >> 16) + ADLER_BASE - rem) % ADLER_BASE
    return sum1 | (sum2 << 16)


def _adler_repeated(adler: int, length: int, count: int) -> int:
    """Adler-32 of `count` copies of data whose Adler-32 is `adler` and length `length`, by doubling."""
    result, result_length = 1, 0
    power, power_length = adler, length
    while count:
        if count & 1:
            result = _adler_combine(result, power, power_length)
            result_length += power_length
        count >>= 1
        if count:
            power = _adler_combine(power, power, power_length)
            power_length *= 2
    return result

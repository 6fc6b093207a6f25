"""An LSB-first bit writer (DEFLATE and VP8L pack bits alike), fast for one pattern repeated many times."""

from __future__ import annotations

# Whole bytes leave the accumulator once it holds this many bits, so that appending stays cheap.
FLUSH_BITS = 4096


class BitWriter:
    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._acc = 0
        self._n = 0

    def write(self, value: int, size: int) -> None:
        self._acc |= value << self._n
        self._n += size
        if self._n >= FLUSH_BITS:
            self._flush()

    def repeat(self, value: int, size: int, count: int) -> None:
        """`count` copies of a `size`-bit pattern: eight copies are exactly `size` bytes, which repeat."""
        self._flush()
        units, rest = divmod(count, 8)
        if units:
            eight = 0
            for n in range(8):
                eight |= value << (n * size)
            offset = self._n
            first = self._acc | (eight << offset)
            carry = first >> (8 * size)
            steady = carry | (eight << offset)
            mask = (1 << (8 * size)) - 1
            self._out.append((first & mask).to_bytes(size, "little"))
            self._out.append((steady & mask).to_bytes(size, "little") * (units - 1))
            self._acc = carry
        for _ in range(rest):
            self.write(value, size)

    def align(self) -> None:
        if self._n % 8:
            self.write(0, 8 - self._n % 8)

    def raw(self, data: bytes) -> None:
        """Bytes as they are, at a byte boundary (call `align` first)."""
        self._flush()
        self._out.append(data)

    def _flush(self) -> None:
        whole = self._n // 8
        if whole:
            self._out.append((self._acc & ((1 << (8 * whole)) - 1)).to_bytes(whole, "little"))
            self._acc >>= 8 * whole
            self._n -= 8 * whole

    def getvalue_bits(self) -> tuple[int, int]:
        """What was written as one (value, bit count), to write again elsewhere."""
        self._flush()
        data = b"".join(self._out)
        return int.from_bytes(data, "little") | (self._acc << (8 * len(data))), 8 * len(data) + self._n

    def getvalue(self) -> bytes:
        self._flush()
        return b"".join(self._out) + (self._acc.to_bytes(1, "little") if self._n else b"")

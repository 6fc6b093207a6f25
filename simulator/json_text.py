"""Questions about JSON text answered at C speed (regular expressions), without walking the parsed value.

A Python walk over every value of a 40 MB body holds the event loop for seconds; these tests over the text take
milliseconds, so the walk runs only for the rare body that may need it.
"""

from __future__ import annotations

import re

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_PAIR = re.compile(rb"\[\]|\{\}")


def deeper_than(text: bytes, depth: int) -> bool:
    """Whether valid JSON `text` nests arrays and objects more than `depth` levels deep."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", text))
    for _ in range(depth):  # each pass takes away the innermost level
        if not brackets:
            return False
        brackets = _PAIR.sub(b"", brackets)
    return bool(brackets)

"""Paging a listing the way list APIs do: `pageSize` items from where an opaque `pageToken` says.

The token is the position to go on from, URL-safe base64 so a client treats it as the opaque string it is;
a token the listing never gave is refused as a bad parameter by the caller (`None` from `position`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

Item = TypeVar("Item")
PREFIX = "offset:"


def token(position: int) -> str:
    return base64.urlsafe_b64encode(f"{PREFIX}{position}".encode()).decode().rstrip("=")


def position(page_token: str | None) -> int | None:
    """Where a page token points (0 without one); None for a token no listing gave."""
    if not page_token:
        return 0
    try:
        text = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    number = text.removeprefix(PREFIX)
    return int(number) if text.startswith(PREFIX) and number.isdigit() else None


def page(items: Sequence[Item], size: int, start: int) -> tuple[list[Item], str | None]:
    """The page from `start` and the token of the next one (None on the last page)."""
    chosen = list(items[start:start + size])
    following = start + size
    return chosen, token(following) if following < len(items) else None

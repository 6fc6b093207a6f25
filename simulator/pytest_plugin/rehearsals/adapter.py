"""What the user's adapter returns, read the same way whatever object it is: `images`, `blocked`,
`on_callback`, as attributes or mapping keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any

Adapter = Callable[..., Any]


@dataclass
class AdapterResult:
    """What an adapter may return when its client's own result does not say it in these words.

    `images` and `blocked` are counts or sequences (the delivered images; the images the provider withheld),
    `on_callback(body: bytes) -> bool` is the client's webhook handler (True: it acted on the event; False: it
    recognised a duplicate). Any object with these attributes will do, e.g. the example clients' `Result`.
    """

    images: int | Sized = 0
    blocked: int | Sized = 0
    on_callback: Callable[[bytes], Any] | None = None
    value: Any = None  # the client's own result, for the adapter's convenience


MISSING = object()


def attribute(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, MISSING)
    return getattr(value, name, MISSING)


def count(value: Any, name: str) -> int | None:
    found = attribute(value, name)
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    if isinstance(found, Sized) and not isinstance(found, (str, bytes)):
        return len(found)
    return None

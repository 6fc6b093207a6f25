"""Garbage-collector settings for a long-running `serve`: collections that stay short however much is stored.

CPython's full collection walks every tracked object. A simulator that stores 100,000 tasks and a journal of
50,000 exchanges holds about two million of them, and each full collection then stalled the event loop for
0.5-2 s (measured: 490 ms at 20,000 Evolink tasks on a busy 2-core machine), growing with every task. Almost
everything that survives a full collection lives on (stored tasks, journal entries, schemas, compiled
validators), and none of it forms reference cycles: it is freed by reference counting when the journal or
the store lets it go, frozen or not. So after each full collection the survivors are frozen (`gc.freeze`),
and the next one walks only what arrived since: pauses stay at the size of the recent past.

Only `serve` does this: the pytest plugin runs inside a user's process, whose collector is theirs.
"""

from __future__ import annotations

import gc
from typing import Any


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def keep_collections_short() -> None:
    """Freeze what start-up built, and what survives each full collection from now on."""
    gc.collect()
    gc.freeze()
    if _after_collection not in gc.callbacks:
        gc.callbacks.append(_after_collection)

"""`serve`'s collector settings (simulator.heap), in a process of their own: the test runner's collector stays
as it is, as a user's does under the pytest plugin."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from simulator import heap

heap.keep_collections_short()
frozen = gc.get_freeze_count()
kept = [[n] for n in range(10_000)]  # what a run stores: survives the next full collection
gc.collect()
assert gc.get_freeze_count() >= frozen + 10_000, (frozen, gc.get_freeze_count())
heap.keep_collections_short()  # twice (a restarted server): still one callback
assert gc.callbacks.count(heap._after_collection) == 1
print("checked")
"""


def test_serve_freezes_what_outlives_a_full_collection() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "checked"

"""Rendered placeholders, kept by spec within a byte budget; each spec rendered once at a time (single flight).

A server fetches with `await cache.fetch(spec)`: a cached picture is returned at once, a missing one is
rendered where its cost says (below) so the event loop keeps serving, and any number of concurrent requests
for the same spec, from any thread or event loop, wait for that one render. `get(spec)` is the blocking form
for code outside an event loop; it renders in the calling thread and joins a render already under way.

Where a render runs follows its estimated cost (simulator.images.render.estimated_ms). The encoders are
mostly Python, which holds the interpreter lock: a render in a thread takes the lock from the event loop for
as long as it runs, in slices of the switch interval (5 ms), so a thread does not spare the loop a render's
cost, it only spreads it. So a render of a millisecond or two runs at once, on the loop (handing it to a thread
costs half a millisecond more and holds the loop as long); a render of more than a few milliseconds runs in a
worker process at low priority, where it shares neither the lock nor, on a busy machine, the loop's share of
the CPU; the few in between run in a thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from simulator.images.render import PlaceholderSpec, estimated_ms, render_placeholder
from simulator.images.worker import WorkerGone, Workers
from simulator.logs import Progress

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# Renders this large are announced when they start and end: they take long enough for someone to wonder.
LOGGED_PIXELS = 4_000_000
# Each in-flight render holds its distinct rows and caption strips; more workers than spare cores would only
# take CPU from the event loop.
RENDER_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
# Estimated cost (ms) up to which a render runs on the event loop, and from which it runs in a process.
INLINE_MS = 2.0
PROCESS_MS = 8.0


class PlaceholderCache:
    """Bounded LRU cache of rendered placeholders, keyed by spec and limited by total encoded bytes."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[PlaceholderSpec, bytes] = OrderedDict()
        self._pending: dict[PlaceholderSpec, Future[bytes]] = {}
        self._size = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.renders = 0  # how many renders ran (a repeated or concurrent fetch adds none)

    def get(self, spec: PlaceholderSpec) -> bytes:
        """The bytes for `spec`, rendered in this thread if nobody is rendering them yet."""
        found, owner = self._claim(spec)
        if isinstance(found, bytes):
            return found
        if owner:
            self._fulfil(spec, found)
        return found.result()

    async def fetch(self, spec: PlaceholderSpec) -> bytes:
        """The bytes for `spec`, rendered where its cost says (see the module's docstring)."""
        found, owner = self._claim(spec)
        if isinstance(found, bytes):
            return found
        if owner:
            if not _WORKERS.warm_started:
                self._pool().submit(_WORKERS.warm)  # so that the first large render does not wait for a process
            cost = estimated_ms(spec)
            if cost <= INLINE_MS:
                self._fulfil(spec, found)
                return found.result()
            self._pool().submit(self._fulfil, spec, found, cost >= PROCESS_MS)
        # Shielded: a client that hangs up must not cancel the render others are waiting for.
        return await asyncio.shield(asyncio.wrap_future(found))

    def peek(self, spec: PlaceholderSpec) -> bytes | None:
        with self._lock:
            return self._entries.get(spec)

    def _claim(self, spec: PlaceholderSpec) -> tuple[bytes | Future[bytes], bool]:
        """The cached bytes, or the render under way, or a new one this caller must run (owner=True)."""
        with self._lock:
            cached = self._entries.get(spec)
            if cached is not None:
                self._entries.move_to_end(spec)
                return cached, False
            pending = self._pending.get(spec)
            if pending is not None:
                return pending, False
            future: Future[bytes] = Future()
            future.set_running_or_notify_cancel()  # from now on nobody can cancel it
            self._pending[spec] = future
            return future, True

    def _fulfil(self, spec: PlaceholderSpec, future: Future[bytes], in_process: bool = False) -> None:
        what = f"render a {spec.width}x{spec.height} {spec.format} placeholder (seed {spec.seed})"
        try:
            with Progress(what, announce=spec.width * spec.height >= LOGGED_PIXELS) as progress:
                data = _render_elsewhere(spec) if in_process else render_placeholder(spec)
                progress.outcome = f"{len(data)} bytes"
        except BaseException as exc:
            with self._lock:
                del self._pending[spec]
            future.set_exception(exc)
            return
        with self._lock:
            del self._pending[spec]
            self.renders += 1
            self._store(spec, data)
        future.set_result(data)

    def _store(self, spec: PlaceholderSpec, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        self._entries[spec] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="nanobanana-render")
            return self._executor

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, spec: object) -> bool:
        with self._lock:
            return spec in self._entries

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0



_WORKERS = Workers(RENDER_WORKERS)


def _render_elsewhere(spec: PlaceholderSpec) -> bytes:
    try:
        return _WORKERS.render(spec)
    except WorkerGone:  # killed (out of memory, a signal) or not startable: render here; the next starts anew
        return render_placeholder(spec)

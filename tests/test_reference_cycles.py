"""Serving a request leaves no reference cycle among the simulator's own objects.

`serve` freezes whatever survives a full collection (simulator.heap), so the collector never walks the stored
tasks and journal again: anything the simulator keeps must be freed by reference counting alone. A cycle that
is alive at a full collection (a kept answer naming its template, a task naming its job, an exception whose
traceback holds the exchange) is then never freed: a soak found 5 MiB of such garbage per 1,000 tasks.

Every provider's contract cases run through a live server twice, with the collector saving what it finds
instead of freeing it: once as they are, once under the `chaos` scenario (faults, rate limits, dropped
connections: whatever they answer). No object of a `simulator.` type may be among the garbage.
"""

from __future__ import annotations

import collections
import gc
from typing import Any

from simulator.clock import VirtualClock
from simulator.conformance import Target, load_cases, run_cases
from simulator.faults import scenario
from simulator.live import LiveServer
from simulator.sim import Simulator

CASES = load_cases()


# The client's side of the run (the cases' runner and webhook receiver) lives in the test's process, whose
# collector walks everything: its cycles are freed as usual.
CLIENT_SIDE = ("simulator.conformance.", "simulator.testing.")


def _ours(found: Any) -> bool:
    module = type(found).__module__
    return module.startswith("simulator.") and not module.startswith(CLIENT_SIDE)


def _cycle(start: Any, among: set[int]) -> list[Any]:
    """A shortest path of references from `start` back to itself, through the garbage only (empty if it merely
    hangs off a cycle)."""
    came_from: dict[int, Any] = {id(start): None}
    seen: dict[int, Any] = {id(start): start}
    queue = collections.deque([start])
    while queue:
        here = queue.popleft()
        for there in gc.get_referents(here):
            if there is start:
                path = [here]
                while came_from[id(path[-1])] is not None:
                    path.append(came_from[id(path[-1])])
                return path[::-1]
            if id(there) in among and id(there) not in came_from:
                came_from[id(there)] = here
                seen[id(there)] = there
                queue.append(there)
    return []


def _name(found: Any) -> str:
    if type(found).__name__ == "frame":
        return f"frame {found.f_code.co_name} ({found.f_code.co_filename.rsplit('/', 1)[-1]}:{found.f_lineno})"
    if type(found).__name__ in ("function", "method"):
        return f"{type(found).__name__} {getattr(found, '__qualname__', '?')}"
    return f"{type(found).__module__}.{type(found).__qualname__}"


def _report(garbage: list[Any]) -> str:
    among = {id(found) for found in garbage}
    lines, named = [], set()
    for found in garbage:
        kind = _name(found)
        if _ours(found) and kind not in named:
            named.add(kind)
            path = _cycle(found, among)
            lines.append(f"{kind}: " + (" -> ".join(map(_name, path)) if path else "held by a cycle"))
    return "\n".join(lines)


def test_no_request_leaves_a_cycle_of_the_simulators_objects() -> None:
    sim = Simulator(clock=VirtualClock(autojump=True), task_capacity=50, journal_capacity=200)
    with LiveServer(sim) as server:
        target = Target.from_url(server.url)
        run_cases(CASES, target)  # once before: lazily built tables and caches are not garbage
        gc.collect()
        garbage: list[Any] = []
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            outcomes = run_cases(CASES, target)
            sim.load_scenario(scenario.load("chaos"))
            run_cases(CASES, target)
            gc.collect()
            garbage.extend(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert sum(outcome.passed for outcome in outcomes) > len(CASES) // 2  # the cases did run
    ours = [found for found in garbage if _ours(found)]
    assert not ours, f"{len(ours)} of the simulator's objects were freed only as cyclic garbage:\n{_report(garbage)}"
    del garbage, ours

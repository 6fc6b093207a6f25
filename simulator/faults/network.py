"""Network faults: what a fired rule's `{"network": …}` action does to an answer on its way to the client.

- `latency` (`seconds`): the answer starts that much later.
- `trickle` (`chunk` bytes every `interval` seconds): the body dribbles out.
- `reset`: the connection is reset (TCP RST) before any byte of the answer.
- `empty`: the connection is closed before any byte of the answer.
- `truncate` (`fraction`, default 0.5): headers and part of the body, then the connection closes.
- `malformed`: the body is cut short and followed by junk, so it is no longer valid JSON.
- `close` (`close_code`, `reason`): on a WebSocket, the socket is closed with that close code; over HTTP, as `empty`.

These are real seconds, not simulator time: they exist to exercise the client's own timeouts and
socket handling, which run on the wall clock whatever the simulator's clock does. The pipeline notes the
fired action on the exchange; each transport acts it out on its own wire (simulator.transports): over HTTP
on the socket, in-process as the transport errors a socket would give.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.faults.plan import PlanError

NETWORK_ACTIONS = frozenset({"latency", "trickle", "reset", "empty", "truncate", "malformed", "close"})
# The actions that lose the connection; `truncate` after the status line and part of the body.
DROPS = frozenset({"reset", "empty", "truncate", "close"})
JUNK = b"\x00<html><body>502 Bad Gateway</body></html>"


def check_network_action(do: Mapping[str, Any], rule: str) -> None:
    if do.get("network") not in NETWORK_ACTIONS:
        raise PlanError(f"{rule}: network action must be one of {sorted(NETWORK_ACTIONS)}, not {do.get('network')!r}")


def latency(do: Mapping[str, Any]) -> float:
    return float(do.get("seconds", 1))


def malformed(body: bytes) -> bytes:
    return body[: len(body) // 2] + JUNK


def truncated(body: bytes, do: Mapping[str, Any]) -> bytes:
    share = min(0.99, max(0.0, float(do.get("fraction", 0.5))))
    return body[: int(len(body) * share)]


def trickled(body: bytes, do: Mapping[str, Any]) -> tuple[list[bytes], float]:
    """The body in the chunks a trickle sends, and the pause after each."""
    chunk, interval = max(1, int(do.get("chunk", 16))), float(do.get("interval", 0.1))
    return [body[offset:offset + chunk] for offset in range(0, len(body), chunk)], interval

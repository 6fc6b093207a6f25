"""Keeping the contract true to the real providers: a validating proxy, redacted recordings, replay, drift.

- `relay`: the pipeline stage that answers from an upstream instead of a handler (proxy and replay alike);
- `upstream`: forwarding to a real provider over HTTP; `sockets`: and over its WebSocket, frame by frame;
- `request_check`: a relayed request checked as the simulator checks its own;
- `redaction`, `cassette`: what a recording may keep, and the JSON Lines file it is kept in (plus `lint`);
- `align`: which id of one run stands for which of another;
- `replay`: a cassette answering on the simulator's clock;
- `drift`: the documented contract, the real answers and the simulator's, compared.

`proxy(sim, …)` and `replay(sim, …)` put a simulator in either role; the CLI, the pytest plugin and tests use them.
"""

from __future__ import annotations

from pathlib import Path

from simulator.proxy.callbacks import Callbacks
from simulator.proxy.cassette import Recorder, load
from simulator.proxy.redaction import Redactor
from simulator.proxy.relay import Relay
from simulator.proxy.replay import Player
from simulator.proxy.upstream import HttpUpstream
from simulator.sim import Simulator


def proxy(sim: Simulator, provider: str, upstream: str, *, record: Path | None = None, block_invalid: bool = False,
          hash_prompts: bool = False, keep_images: bool = False, public_url: str | None = None,
          upstream_ws: str | None = None) -> Relay:
    """Make `sim` a validating proxy of `provider` in front of `upstream` (a base URL), recording to `record`.
    Callbacks come back through it where the upstream can reach it: at `public_url`, or on loopback. WebSockets
    are relayed to `upstream_ws` (default: the upstream's URL as ws:// or wss://)."""
    redactor = Redactor(hash_prompts=hash_prompts)
    recorder = None
    if record is not None:
        options = {name: spec["value"] for name, spec in sim.provider(provider).options.describe().items()}
        recorder = Recorder(record, provider=provider, upstream=upstream, redactor=redactor, options=options,
                            keep_images=keep_images)
    relay = Relay(HttpUpstream(upstream, socket_base=upstream_ws), redactor=redactor, recorder=recorder,
                  block_invalid=block_invalid, callbacks=Callbacks(upstream, public_url))
    sim.pipeline.relay = relay
    return relay


def replay(sim: Simulator, cassette: Path) -> Player:
    """Make `sim` answer from a cassette on its own clock; returns the player (which knows what was not played)."""
    player = Player(load(cassette), sim.engine)
    sim.pipeline.relay = Relay(player, redactor=player.redactor)
    return player

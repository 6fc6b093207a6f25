"""What `serve` prints for a person: where everything is, how it is set up, a command to try; and a goodbye."""

from __future__ import annotations

import json
from dataclasses import dataclass

from simulator import __version__
from simulator.clock import Clock, RealClock, VirtualClock

EXAMPLE_BODY = {
    "steps": [{
        "$type": "imageGen",
        "input": {"engine": "google", "model": "nano-banana-2", "prompt": "A banana astronaut, studio light",
                  "aspectRatio": "16:9", "resolution": "1K", "numImages": 1},
    }],
}
# The banner's last line: a reader (a person, a test, a script waiting for the server) knows it is complete.
LAST_LINE = "Each request is logged below (--quiet hides the log); Ctrl+C stops."


@dataclass(frozen=True)
class Facts:
    base: str  # where a client on this machine reaches the server
    bound: str  # host:port as bound
    exposed: bool  # bound beyond loopback
    providers: list[str]
    root_provider: str | None
    clock: Clock
    seed: int
    scenarios: list[str]
    self_check: str
    control_token: str | None
    token_was_made: bool  # made at start (so it is shown), not given by the user (so it is not)
    config: str | None


def clock_line(clock: Clock) -> str:
    if isinstance(clock, VirtualClock):
        how = ["virtual: moves only through POST /_sim/clock/advance"]
        if clock.autojump:
            how.append("autojump (a waiting request jumps it to what it waits for)")
        if clock.tick:
            how.append(f"tick {clock.tick:g} s before every provider request")
        return ", ".join(how)
    speed = clock.speed if isinstance(clock, RealClock) else 1.0
    if speed == 1:
        return "real, the providers' own timings (--speed 50 makes them fifty times faster)"
    return f"real, {speed:g}x faster than the providers' timings (--speed {speed:g})"


def _with_token(facts: Facts, url: str, made: str, given: str) -> str:
    """`url`, plus what to do about the control token: `made` shows one made at start, `given` hints at yours."""
    if facts.control_token is None:
        return url
    return url + (made if facts.token_was_made else given)


def control_line(facts: Facts) -> str:
    token = facts.control_token
    return _with_token(facts, f"{facts.base}/_sim", f"  token {token} (send 'Authorization: Bearer {token}')",
                       "  (send 'Authorization: Bearer <your control token>')")


def inspector_line(facts: Facts) -> str:
    """The web inspector; a token made at start rides in the fragment, which the browser keeps to itself."""
    return _with_token(facts, f"{facts.base}/_sim/ui", f"#token={facts.control_token}",
                       "  (asks for the control token)")


def banner(facts: Facts) -> str:
    root = facts.base if facts.root_provider == "civitai" else f"{facts.base}/civitai"
    body = json.dumps(EXAMPLE_BODY, separators=(",", ":"))
    where = f"{facts.base} (bound to {facts.bound}, reachable from the network)" if facts.exposed else facts.base
    lines = [
        f"nanobanana-sim {__version__} serving on {where}",
        *(f"  {slug:<10} {facts.base}/{slug}" for slug in facts.providers),
        f"  {'control':<10} {control_line(facts)}",
        f"  {'inspector':<10} {inspector_line(facts)}",
    ]
    if facts.root_provider is not None:
        lines.append(f"  {'root':<10} {facts.base}/ is {facts.root_provider} (--provider)")
    scenarios = ", ".join(facts.scenarios) + " (GET /_sim/faults)" if facts.scenarios else "none"
    lines += [
        "",
        f"clock       {clock_line(facts.clock)}",
        f"seed        {facts.seed}",
        f"scenarios   {scenarios}",
        f"self-check  {facts.self_check}",
    ]
    if facts.config is not None:
        lines.append(f"config      {facts.config} (nanobanana-sim config shows every setting and its source)")
    lines += [
        "",
        "Try it (any non-empty token is accepted):",
        f"  curl -s -X POST '{root}/v2/consumer/workflows?wait=60' \\",
        "    -H 'Authorization: Bearer sim-token' -H 'Content-Type: application/json' \\",
        f"    -d '{body}'",
        "",
        LAST_LINE,
    ]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{seconds:.1f} s"


def goodbye(signal_name: str | None, seconds: float, requests: int) -> str:
    why = f" on {signal_name}" if signal_name else ""
    return f"nanobanana-sim stopped{why} after {duration(seconds)}: {requests} request(s) served"

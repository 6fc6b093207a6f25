"""What one test asks of the simulator: the command-line defaults, overlaid by its `nanobanana` markers.

Kept free of the simulator's heavy imports: pytest imports the plugin in every project that has the
package installed, and most of those sessions never ask for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pytest

from simulator.self_check import Mode as SelfCheckMode

MODES = ("live", "inprocess")
CLOCKS = ("virtual", "autojump", "real")
DEFAULT_MODE = "live"
# Autojump: a request that waits (`?wait=60`, `Prefer: wait=60`, Runware sync delivery) jumps the clock to
# the moment its task finishes and returns at once, so tests never sleep for a provider's queue time.
DEFAULT_CLOCK = "autojump"

MARKER = "nanobanana"
MARKER_DOC = (
    f"{MARKER}(provider=None, *, scenario=None, seed=None, clock=None, tick=None, strict=None, contract=None, "
    "options=None, mode=None, allow_headers=None, replay=None, proxy=None, record=None): choose the simulated "
    "provider, failure scenario(s), seed, clock (virtual|autojump|real, tick=seconds per request), strict "
    "header/query checking, the contract check (contract=False turns it off), provider options "
    "({slug: {name: value}}) and the mode (live|inprocess) for this test; replay='FILE.jsonl' answers from a "
    "cassette on the clock, proxy='URL' (with provider=) forwards to a real provider, record='FILE.jsonl' "
    "records what it answered; the closest marker wins per keyword"
)


class SettingsError(ValueError):
    """A marker keyword or value the plugin does not understand (reported without a traceback)."""


@dataclass(frozen=True)
class Settings:
    mode: str = DEFAULT_MODE
    seed: int = 0
    scenarios: tuple[str, ...] = ()
    clock: str = DEFAULT_CLOCK
    tick: float = 0.0
    strict: bool = False
    contract: bool = True
    provider: str | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    allow_headers: tuple[str, ...] = ()
    replay: str | None = None  # a cassette to answer from (simulator.proxy.replay)
    proxy: str | None = None  # an upstream base URL to forward to (simulator.proxy.proxy)
    record: str | None = None  # where the proxy records its cassette

    @property
    def real_clock(self) -> bool:
        return self.clock == "real"

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        option = config.option
        return cls(
            mode=option.nanobanana_mode,
            seed=option.nanobanana_seed,
            scenarios=tuple(option.nanobanana_scenario or ()),
            clock=option.nanobanana_clock,
            tick=option.nanobanana_tick,
            strict=option.nanobanana_strict,
            allow_headers=tuple(name.lower() for name in option.nanobanana_allow_header or ()),
        )

    def with_markers(self, markers: Iterable[pytest.Mark]) -> Settings:
        """Apply markers given closest first (as `Node.iter_markers` yields them): the closest wins per key."""
        settings = self
        for mark in reversed(list(markers)):
            settings = settings.with_marker(mark)
        return settings

    def with_marker(self, mark: pytest.Mark) -> Settings:
        kwargs = dict(mark.kwargs)
        if len(mark.args) > 1:
            raise SettingsError(f"@pytest.mark.{MARKER} takes at most one positional argument (the provider)")
        if mark.args:
            kwargs.setdefault("provider", mark.args[0])
        changes: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key == "scenario":
                changes["scenarios"] = _scenarios(value)
            elif key == "allow_headers":
                changes["allow_headers"] = tuple(str(name).lower() for name in _sequence(value, key))
            elif key in _FIELDS and key not in ("scenarios",):
                changes[key] = value
            else:
                known = sorted({*(_FIELDS - {"scenarios"}), "scenario"})
                raise SettingsError(f"@pytest.mark.{MARKER}: unknown keyword {key!r}; use {known}")
        return replace(self, **changes).checked()

    def checked(self) -> Settings:
        if self.mode not in MODES:
            raise SettingsError(f"nanobanana mode must be one of {MODES}, not {self.mode!r}")
        if self.clock not in CLOCKS:
            raise SettingsError(f"nanobanana clock must be one of {CLOCKS}, not {self.clock!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SettingsError(f"nanobanana seed must be an integer, not {self.seed!r}")
        if isinstance(self.tick, bool) or not isinstance(self.tick, (int, float)) or self.tick < 0:
            raise SettingsError(f"nanobanana tick must be a number of seconds ≥ 0, not {self.tick!r}")
        if self.tick and self.clock == "real":
            raise SettingsError("nanobanana tick moves a virtual clock; it cannot be combined with clock='real'")
        if not isinstance(self.options, Mapping) or not all(isinstance(v, Mapping) for v in self.options.values()):
            raise SettingsError("nanobanana options must be {provider: {option: value}}")
        for key in ("replay", "proxy", "record"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise SettingsError(f"nanobanana {key} must be a string, not {getattr(self, key)!r}")
        if self.replay and self.proxy:
            raise SettingsError("nanobanana: replay a cassette or proxy to an upstream, not both")
        if self.proxy and self.provider is None:
            raise SettingsError("nanobanana proxy needs provider=SLUG: the provider whose routes it forwards")
        if self.record and not self.proxy:
            raise SettingsError("nanobanana record needs proxy='URL': only what an upstream answered is recorded")
        return self


_FIELDS = frozenset(f.name for f in fields(Settings))


def _sequence(value: Any, key: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(value)
    raise SettingsError(f"@pytest.mark.{MARKER}: {key} must be a string or a list of strings")


def _scenarios(value: Any) -> tuple[str, ...]:
    # A test that names its scenario(s) replaces the command-line default; scenario=None runs without one.
    return tuple(str(name) for name in _sequence(value, "scenario"))


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("nanobanana", "nanobanana-sim: run clients against the simulated Nano Banana APIs")
    group.addoption("--nanobanana-mode", choices=MODES, default=DEFAULT_MODE,
                    help="live: the simulator on a loopback port (default); inprocess: the providers' real "
                         "hostnames routed to it through respx, no socket")
    group.addoption("--nanobanana-seed", type=int, default=0, metavar="N",
                    help="seed for IDs, timings, pixels and probabilistic faults (default 0)")
    group.addoption("--nanobanana-scenario", action="append", default=[], metavar="NAME|FILE",
                    help="load a failure scenario in every test (repeatable); a marker's scenario replaces it")
    group.addoption("--nanobanana-clock", choices=CLOCKS, default=DEFAULT_CLOCK,
                    help="virtual: moves only when the test advances it; autojump (default): waiting requests "
                         "jump it; real: the wall clock")
    group.addoption("--nanobanana-tick", type=float, default=0.0, metavar="S",
                    help="move the virtual clock S seconds before every provider request, so a polling client "
                         "sees its task progress without driving the clock")
    group.addoption("--nanobanana-strict", action="store_true", default=False,
                    help="also fail tests whose client sent a header or query parameter the provider does "
                         "not document")
    group.addoption("--nanobanana-self-check", choices=[mode.value for mode in SelfCheckMode], default=None,
                    help="check every simulator answer against the provider's response schemas: record (default; "
                         "a test that met a broken answer fails with a report, since it is a simulator bug), "
                         "strict (the broken answer becomes the provider's 500), off")
    group.addoption("--nanobanana-allow-header", action="append", default=[], metavar="NAME",
                    help="a header strict mode accepts on every provider (e.g. traceparent); repeatable")
    group.addoption("--nanobanana-rehearse", action="append", default=[], metavar="PROVIDER",
                    help="run the client rehearsals (contracts/rehearsals) against the `nanobanana_adapter` fixture "
                         "for PROVIDER instead of the collected tests, and print a scorecard (repeatable)")
    group.addoption("--nanobanana-coverage", action="store_true", default=False,
                    help="print which routes, statuses, error kinds and lifecycle modes the tests exercised, per "
                         "provider, at the end of the run")
    group.addoption("--nanobanana-coverage-json", default=None, metavar="FILE.json",
                    help="also write that coverage as JSON to FILE.json (implies --nanobanana-coverage); only a "
                         "new file or an earlier coverage report is ever written over")

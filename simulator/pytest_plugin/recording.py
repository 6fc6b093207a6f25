"""The proxy and replay for one test (markers `proxy=`, `record=`, `replay=`): a relay on the session's simulator,
installed when the test starts and removed when it ends, so the next test meets the simulator again."""

from __future__ import annotations

from pathlib import Path

from simulator import proxy
from simulator.pytest_plugin.harness import Harness
from simulator.pytest_plugin.settings import Settings


def _path(name: str, here: Path | None) -> Path:
    path = Path(name)
    return path if path.is_absolute() or here is None else here / path


def install(harness: Harness, settings: Settings, here: Path | None) -> None:
    """Put the test's relay on the simulator (nothing when the test asks for neither proxy nor replay)."""
    if settings.replay is not None:
        proxy.replay(harness.sim, _path(settings.replay, here))
    elif settings.proxy is not None:
        assert settings.provider is not None  # Settings.checked requires it
        record = _path(settings.record, here) if settings.record else None
        proxy.proxy(harness.sim, settings.provider, settings.proxy, record=record)


def remove(harness: Harness) -> None:
    relay = harness.sim.pipeline.relay
    if relay is None:
        return
    harness.sim.pipeline.relay = None
    close = getattr(relay, "aclose", None)
    if close is not None:
        harness.run(close())

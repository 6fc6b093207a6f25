"""Every example-client test runs twice: against the simulator on a loopback port, and in-process.

In-process, the plugin routes the providers' real hostnames to the simulator through respx, so the clients
keep their default `https://<real host>` base URLs and their own httpx clients: nothing in a client knows
it is being tested. The mode is chosen per test by the `nanobanana` marker on the parameter, which is the
plugin's public way of doing it (and it wins over `--nanobanana-mode`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from simulator import self_check

# Every answer any test receives is checked against its provider's response schemas; a broken one is a 500.
os.environ.setdefault(self_check.ENV, "strict")

MODES = [pytest.param(mode, marks=pytest.mark.nanobanana(mode=mode), id=mode) for mode in ("live", "inprocess")]


@pytest.fixture(autouse=True, params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The plugin mode of this test (`live` or `inprocess`)."""
    return str(request.param)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One connection pool for every client of the session: building an httpx client (its TLS context) costs
    ~50 ms, more than a whole simulated generation. In-process mode patches httpx's transport layer, so a
    client made before the routing is switched on is routed all the same."""
    with httpx.Client(timeout=30) as client:
        yield client

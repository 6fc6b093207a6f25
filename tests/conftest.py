"""Shared fixtures: one simulator on a loopback port per session, reset before every test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.resources import schemas_dir
from simulator.sim import Simulator
from simulator.validation import SchemaSet, schema_set

TOKEN = "test-token"


def provider_server(*slugs: str, seed: int = 0, autojump: bool = False) -> LiveServer:
    """A LiveServer (start it with `with`) serving only `slugs` on a manual (or autojump) virtual clock.

    For module-scoped fixtures of one provider's tests: `with provider_server("qingbo") as server:`.
    """
    sim = Simulator(seed=seed, clock=VirtualClock(autojump=autojump), providers=list(slugs) or None)
    return LiveServer(sim)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    with provider_server("civitai") as server:
        yield server


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One connection pool for the whole run: building a client (its TLS context) costs ~50 ms."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def control(request: pytest.FixtureRequest, http: httpx.Client) -> ControlClient:
    """Control client of the test module's own `server` fixture if it defines one (else the session's
    Civitai server); the simulator is reset (seed 0, clock rewound, manual) first."""
    fixture = "server" if hasattr(request.module, "server") else "live_server"
    server: LiveServer = request.getfixturevalue(fixture)
    client = ControlClient(server.url, client=http)
    client.clear_scenarios()  # a loaded scenario survives reset by design; tests start without one
    client.reset(seed=0)
    return client


@pytest.fixture(scope="session")
def civitai_http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.provider_url("civitai"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def civitai(civitai_http: httpx.Client, control: ControlClient) -> httpx.Client:
    """An httpx client aimed at the simulated Civitai, authenticated with TOKEN (after the reset)."""
    return civitai_http


@pytest.fixture(scope="session")
def civitai_schemas() -> SchemaSet:
    return schema_set("civitai")


def civitai_example(kind: str, name: str) -> Any:
    return json.loads((schemas_dir() / "civitai" / "examples" / kind / f"{name}.json").read_text())


def civitai_examples(kind: str) -> list[Path]:
    return sorted((schemas_dir() / "civitai" / "examples" / kind).glob("*.json"))


def nb2_body(**fields: Any) -> dict[str, Any]:
    """A minimal valid nano-banana-2 workflow, with input fields overridden by keyword."""
    step_input = {"engine": "google", "model": "nano-banana-2", "prompt": "a ripe banana on a desk"}
    step_input.update(fields)
    return {"steps": [{"$type": "imageGen", "input": step_input}]}

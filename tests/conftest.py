"""Shared fixtures: one simulator on a loopback port per session, reset before every test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import self_check
from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.resources import schemas_dir
from simulator.sim import Simulator
from simulator.testing.receiver import WebhookReceiver
from simulator.validation import SchemaSet, schema_set

# Every answer any test receives is checked against its provider's response schemas; a broken one is a 500.
os.environ.setdefault(self_check.ENV, "strict")

TOKEN = "test-token"


def provider_server(*slugs: str, seed: int = 0, autojump: bool = False) -> LiveServer:
    """A LiveServer (start it with `with`) serving only `slugs` on a manual (or autojump) virtual clock.

    For module-scoped fixtures of one provider's tests: `with provider_server("qingbo") as server:`.
    """
    sim = Simulator(seed=seed, clock=VirtualClock(autojump=autojump), providers=list(slugs) or None)
    return LiveServer(sim)


def server_fixture(*slugs: str) -> Any:
    """A module-scoped fixture `server`: a started `provider_server(*slugs)`.

    Assign it to `server` in the test module (`server = server_fixture("crun")`): the `control` fixture looks
    for that module attribute to pick the module's own server.
    """

    @pytest.fixture(scope="module", name="server")
    def server() -> Iterator[LiveServer]:
        with provider_server(*slugs) as live:
            yield live

    return server


def provider_fixtures(slug: str, *, client: str, headers: dict[str, str]) -> tuple[Any, Any, Any]:
    """The fixtures of one provider's test module: `server` (see `server_fixture`), `provider_http` (a module-scoped
    httpx client aimed at the provider, sending `headers`) and `client` (that client, after `control` reset the
    simulator). Unpack them into the module under their fixture names:

        server, provider_http, api = provider_fixtures("runware", client="api", headers={...})
    """

    @pytest.fixture(scope="module", name="provider_http")
    def provider_http(server: LiveServer) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=server.provider_url(slug), headers=headers, timeout=30) as http:
            yield http

    @pytest.fixture(name=client)
    def reset_client(provider_http: httpx.Client, control: ControlClient) -> httpx.Client:
        return provider_http

    return server_fixture(slug), provider_http, reset_client


def receiver_fixture(name: str = "receiver", **options: Any) -> Any:
    """A fixture `name`: a started WebhookReceiver (`options` go to it), closed after the test."""

    @pytest.fixture(name=name)
    def receiver() -> Iterator[WebhookReceiver]:
        with WebhookReceiver(**options) as started:
            yield started

    return receiver


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

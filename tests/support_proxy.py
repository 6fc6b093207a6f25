"""Upstreams the proxy tests control (no test reaches a real provider), and one recorded Runware session.

- `upstream(...)`: a second simulator on a loopback port, optionally drifting on purpose: named options, fault
  rules, or `rewrite` pairs applied to every answer body (a renamed field, a new status word);
- `Session`: a proxy (a simulator with a relay) in front of an upstream, both on manual virtual clocks moved in
  lockstep, recording a cassette; `run_lifecycle` submits, polls until done, downloads the image, and sends one
  request the provider refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator import proxy
from simulator.clock import RealClock, VirtualClock
from simulator.live import LiveServer
from simulator.sim import Simulator

KEY = "rw-proxy-secret-key-0001"
# One client for every control call: `httpx.post()` alone builds a client (and its TLS context) each time.
LOOPBACK = httpx.Client(timeout=30)
PROMPT = "a lighthouse on a cliff at dusk"


def rewriting(app: ASGIApp, pairs: list[tuple[bytes, bytes]]) -> ASGIApp:
    """`app` with every answer body rewritten (`old` → `new`), as a provider that changed its wire format."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await app(scope, receive, send)
            return
        start: list[Message] = []
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.append(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return  # a body sent in parts (a stream's events) is rewritten whole
            body = b"".join(chunks)
            for old, new in pairs:
                body = body.replace(old, new)
            headers = [(k, v) for k, v in start[0]["headers"] if k.lower() != b"content-length"]
            await send({**start[0], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, rewrite)

    return wrapped


@contextmanager
def upstream(*, options: dict[str, Any] | None = None, faults: list[dict[str, Any]] | None = None,
             rewrite: list[tuple[bytes, bytes]] | None = None, autojump: bool = False,
             speed: float | None = None, seed: int = 0, provider: str = "runware") -> Iterator[LiveServer]:
    """`speed`: a real clock that fast (a provider whose queue moves on its own), else a virtual one."""
    clock = RealClock(speed=speed) if speed else VirtualClock(autojump=autojump)
    sim = Simulator(seed=seed, clock=clock, providers=[provider], options={provider: options or {}})
    app = rewriting(sim.app, rewrite) if rewrite else None
    with LiveServer(sim, app=app) as server:
        if faults:
            LOOPBACK.post(server.url + "/_sim/faults", json={"rules": faults}).raise_for_status()
        yield server


class Session:
    """A recording proxy in front of `origin`; its URL serves the provider (Runware unless named) at the root, as a
    real base URL would."""

    def __init__(self, origin: LiveServer, cassette: Path | None, provider: str = "runware", **settings: Any) -> None:
        self.origin = origin
        self.sim = Simulator(clock=VirtualClock(), providers=[provider], default_provider=provider)
        self.relay = proxy.proxy(self.sim, provider, f"{origin.url}/{provider}", record=cassette, **settings)
        self.server = LiveServer(self.sim).start()
        self.url = self.server.url
        header = self.sim.provider(provider).data.get("apiKeyHeader")
        auth = {str(header): KEY} if header else {"Authorization": f"Bearer {KEY}"}
        self.http = httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def advance(self, seconds: float) -> None:
        # The proxy first: what the upstream sends when its clock moves (a WebSocket's results) meets the new time.
        for server in (self.server, self.origin):
            LOOPBACK.post(server.url + "/_sim/clock/advance", json={"seconds": seconds}).raise_for_status()

    def tasks(self, *items: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.http.post("/v1", json=list(items), **kwargs)

    def journal(self) -> list[dict[str, Any]]:
        return LOOPBACK.get(self.url + "/_sim/journal").json()["entries"]

    def close(self) -> None:
        self.http.close()
        self.server.call(self.relay.aclose())
        self.server.stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def submit(**fields: Any) -> dict[str, Any]:
    return {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": "google:4@3",
            "positivePrompt": PROMPT, "width": 1024, "height": 1024, "deliveryMethod": "async", **fields}


def poll(task_uuid: str) -> dict[str, Any]:
    return {"taskType": "getResponse", "taskUUID": task_uuid}


def run_lifecycle(client: Any, advance: Any, every: float, limit: int = 200) -> list[tuple[float, str]]:
    """Submit, poll every `every` clock seconds until done, download, then one refused request. Returns the
    (seconds since submit, status word) of each poll. `client.tasks` / `client.http` as on Session."""
    task = submit()
    assert client.tasks(task).status_code == 200
    seen: list[tuple[float, str]] = []
    elapsed = 0.0
    item: dict[str, Any] = {}
    while elapsed < limit:
        advance(every)
        elapsed += every
        item = client.tasks(poll(task["taskUUID"])).json()["data"][0]
        seen.append((elapsed, item.get("status", "")))
        if item.get("status") == "success":
            break
    assert item.get("status") == "success", seen
    image = client.http.get(item.get("imageURL") or item["imageUrl"])
    assert image.status_code == 200 and image.content
    refused = client.tasks(submit(width=1000))
    assert refused.status_code == 400, refused.text
    return seen

"""Result links cannot be forged or carried between processes, and the control plane can require a token."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from simulator.checks import Invalid
from simulator.clock import VirtualClock
from simulator.control_client import ControlClient, ControlError
from simulator.live import LiveServer
from simulator.pytest_plugin.harness import InProcessHarness, LiveHarness
from simulator.security import CONTROL_TOKEN_ENV, SIGNING_KEY_ENV
from simulator.sim import Simulator

BODY = {"model": "gemini-3.1-flash-image-preview", "prompt": "a lighthouse at dusk"}
AUTH = {"Authorization": "Bearer k"}


def simulator(**keywords: object) -> Simulator:
    return Simulator(seed=7, clock=VirtualClock(autojump=True), providers=["qingbo"], **keywords)  # type: ignore[arg-type]


def generated(live: LiveServer) -> tuple[str, str]:
    """A finished qingbo task's ID and its result link, as a path and query on this server."""
    response = httpx.post(live.provider_url("qingbo") + "/v1/tasks", json=BODY, headers={**AUTH, "Prefer": "wait=60"})
    task = response.json()
    assert task["status"] == "completed", task
    link = urlsplit(task["result"]["images"][0]["url"][0])
    return task["task_id"], f"{link.path}?{link.query}"


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two processes' worth of simulator, same seed, nothing set: each draws its own key."""
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    with LiveServer(simulator()) as a, LiveServer(simulator()) as b:
        yield a, b


def test_links_are_refused_by_another_process_with_the_same_seed(pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = pair
    task_a, link_a = generated(a)
    task_b, link_b = generated(b)
    assert task_a == task_b  # IDs do not depend on the key
    image_a, image_b = httpx.get(a.url + link_a), httpx.get(b.url + link_b)
    assert image_a.status_code == image_b.status_code == 200
    assert image_a.content == image_b.content  # nor do pixels
    assert link_a != link_b
    for server, foreign in ((b, link_a), (a, link_b)):
        refused = httpx.get(server.url + foreign)
        assert refused.status_code == 403
        assert "<Code>AccessDenied</Code>" in refused.text


def test_forged_links_are_refused(pair: tuple[LiveServer, LiveServer]) -> None:
    a, _ = pair
    _, link = generated(a)
    path, _, query = link.partition("?")
    params = {key: values[0] for key, values in parse_qs(query).items()}
    for forged in ({**params, "expires": str(int(params["expires"]) + 10**6)},
                   {**params, "signature": params["signature"][::-1]},
                   {"expires": params["expires"]},
                   {**params, "signature": "ünïcödé"}):
        response = httpx.get(f"{a.url}{path}?{urlencode(forged)}")
        assert response.status_code == 403, forged
    assert httpx.get(a.url + link).status_code == 200


def test_a_shared_signing_key_lets_processes_accept_each_others_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    key = b"k" * 32
    with LiveServer(simulator(signing_key=key)) as a, LiveServer(simulator(signing_key=key)) as b:
        _, link = generated(a)
        generated(b)
        assert httpx.get(b.url + link).status_code == 200
    monkeypatch.setenv(SIGNING_KEY_ENV, "from the environment")
    with LiveServer(simulator()) as a, LiveServer(simulator()) as b:
        _, link = generated(a)
        generated(b)
        assert httpx.get(b.url + link).status_code == 200


def test_signing_keys_and_tokens_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTROL_TOKEN_ENV, raising=False)
    for bad in ({"signing_key": b""}, {"control_token": "with space"}, {"control_token": ""},
                {"control_token": "x" * 5000}, {"control_token": "tab\t"}):
        with pytest.raises(Invalid):
            simulator(**bad)
    monkeypatch.setenv(CONTROL_TOKEN_ENV, "")
    assert simulator().control_token is None  # an empty variable is no token


# -- the control token -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded() -> Iterator[LiveServer]:
    with LiveServer(simulator(control_token="s3cret-token")) as live:
        yield live


@pytest.mark.parametrize("method, route", [("GET", "/"), ("GET", "/journal"), ("POST", "/reset"),
                                           ("PUT", "/moderation"), ("GET", "/no-such-route"),
                                           ("DELETE", "/clock")])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "Bearer", "s3cret-token",
                                           "Bearer s3cret-token-and-more"])
def test_without_the_token_every_control_route_is_401(
    guarded: LiveServer, method: str, route: str, authorization: str | None
) -> None:
    before = httpx.get(f"{guarded.url}/_sim/moderation", headers={"Authorization": "Bearer s3cret-token"}).json()
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, f"{guarded.url}/_sim{route}", headers=headers, json={"patterns": []})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="nanobanana-sim control"'
    assert response.json() == {
        "error": "the control plane needs Authorization: Bearer <token>: this simulator was started with a control "
                 "token (--control-token or NANOBANANA_CONTROL_TOKEN)",
        "field": "Authorization",
    }
    after = httpx.get(f"{guarded.url}/_sim/moderation", headers={"Authorization": "Bearer s3cret-token"}).json()
    assert after == before


def test_with_the_token_the_control_plane_works_and_provider_routes_never_need_it(
    guarded: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTROL_TOKEN_ENV, raising=False)
    with pytest.raises(ControlError) as refused:
        ControlClient(guarded.url).info()
    assert (refused.value.status, refused.value.field) == (401, "Authorization")
    client = ControlClient(guarded.url, token="s3cret-token")
    assert client.info()["control_token"] is True
    assert httpx.get(f"{guarded.url}/_sim/", headers={"Authorization": "bearer  s3cret-token"}).status_code == 200
    monkeypatch.setenv(CONTROL_TOKEN_ENV, "s3cret-token")
    assert ControlClient(guarded.url).reset(seed=3)["seed"] == 3
    task_id, _ = generated(guarded)  # the provider's own auth only
    assert client.task(task_id)["phase"] == "succeeded"


@pytest.mark.parametrize("harness", [LiveHarness, InProcessHarness])
def test_the_plugin_harness_passes_the_token(harness: type[LiveHarness | InProcessHarness]) -> None:
    started = harness(simulator(control_token="plugin-token"))
    try:
        assert started.control.info()["control_token"] is True
        started.control.set_moderation(["x"])
    finally:
        started.close()

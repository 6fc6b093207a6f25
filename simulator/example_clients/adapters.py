"""Rehearsal adapters around the example clients, for every provider: `careful` and `naive`.

An adapter runs one generation through a client against the simulator the rehearsal hands it
(`pytest --nanobanana-rehearse=PROVIDER`, README "Rehearsing your client"). These two let you see a scorecard
before you write your own, and show how one maps the rehearsals' neutral options (`images`, `callback_url`)
to a client's own. `careful_socket` and `naive_socket` do the same for Runware over WebSocket
(`--nanobanana-rehearse=runware`, live mode):

    # conftest.py
    import pytest
    from simulator.example_clients.adapters import careful

    @pytest.fixture
    def nanobanana_adapter():
        return careful
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from simulator.example_clients.civitai import CivitaiCallbackHandler, CivitaiClient
from simulator.example_clients.common import BaseClient, CallbackHandler
from simulator.example_clients.crun import CrunCallbackHandler, CrunClient
from simulator.example_clients.evolink import EvolinkCallbackHandler, EvolinkClient
from simulator.example_clients.foxapi import FoxapiClient
from simulator.example_clients.gemini import GeminiClient
from simulator.example_clients.naive import (
    NaiveCivitaiClient,
    NaiveCrunClient,
    NaiveEvolinkClient,
    NaiveFoxapiClient,
    NaiveGeminiClient,
    NaiveQingboClient,
    NaiveRunwareClient,
    NaiveRunwareSocketClient,
)
from simulator.example_clients.qingbo import QingboCallbackHandler, QingboClient
from simulator.example_clients.runware import RunwareClient, RunwareWebhookHandler
from simulator.example_clients.runware_ws import RunwareSocketClient
from simulator.pytest_plugin.rehearsals import AdapterResult

Options = Callable[[Any], dict[str, Any]]


def _callbacks(name: str) -> Options:
    return lambda url: {name: url}


# Per provider: the careful client, its callback handler, its own name for the batch size, its callback option.
CAREFUL: dict[str, tuple[type[BaseClient], type[CallbackHandler] | None, str | None, Options | None]] = {
    "civitai": (CivitaiClient, CivitaiCallbackHandler, "num_images",
                lambda url: {"callbacks": [{"url": url, "type": ["workflow:*"]}]}),
    "qingbo": (QingboClient, QingboCallbackHandler, "n", _callbacks("callback_url")),
    "runware": (RunwareClient, RunwareWebhookHandler, "number_results", _callbacks("webhook_url")),
    "crun": (CrunClient, CrunCallbackHandler, None, _callbacks("callback_url")),
    "foxapi": (FoxapiClient, None, None, None),  # no callbacks for these models
    "evolink": (EvolinkClient, EvolinkCallbackHandler, None, _callbacks("callback_url")),
    "gemini": (GeminiClient, None, None, None),  # one image per request, inline; no callbacks
}
NAIVE: dict[str, type[BaseClient]] = {
    "qingbo": NaiveQingboClient, "runware": NaiveRunwareClient, "crun": NaiveCrunClient,
    "foxapi": NaiveFoxapiClient, "evolink": NaiveEvolinkClient, "gemini": NaiveGeminiClient,
}


def careful(sim: Any, prompt: str, images: int = 1, callback_url: str | None = None) -> AdapterResult:
    """The careful client of `sim.provider`, pausing on the simulator's clock (`sim.sleep`, `sim.now`)."""
    client_class, handler_class, batch, callbacks = CAREFUL[sim.provider]
    options: dict[str, Any] = {}
    if images != 1 and batch is not None:
        options[batch] = images
    if callback_url and callbacks is not None:
        options.update(callbacks(callback_url))
    with client_class(sim.api_key(), base_url=sim.base_url(), sleep=sim.sleep, clock=sim.now) as client:
        result = client.generate(prompt, **options)  # type: ignore[attr-defined]
    handler = handler_class(lambda event: None) if handler_class else None  # what your webhook endpoint runs
    return AdapterResult(result.images, result.blocked, on_callback=handler.handle if handler else None)


def naive(sim: Any, prompt: str, images: int = 1, callback_url: str | None = None) -> list[Any]:
    """A naive client of `sim.provider`: it never sleeps (the rehearsal's clock tick moves time on), and returns
    the images it got, saying nothing of the ones the provider withheld."""
    if callback_url:
        pytest.skip("the naive clients take no callbacks")
    if sim.provider == "civitai":
        with httpx.Client(timeout=30) as http:
            return NaiveCivitaiClient(sim.api_key(), base_url=sim.base_url(), http=http).generate(
                prompt, num_images=images).images
    batch = CAREFUL[sim.provider][2]
    options = {batch: images} if images != 1 and batch is not None else {}
    with NAIVE[sim.provider](sim.api_key(), base_url=sim.base_url(), clock=sim.now) as client:
        return list(client.generate(prompt, **options).images)  # type: ignore[attr-defined]


def _socket_url(sim: Any) -> str:
    """The WebSocket URL of the simulated Runware: `ws://127.0.0.1:PORT/runware/v1` in live mode."""
    if sim.provider != "runware":
        pytest.skip(f"{sim.provider} has no WebSocket API (only Runware has)")
    if sim.mode != "live":
        pytest.skip("in-process mode is HTTP only: rehearse a WebSocket client with --nanobanana-mode=live")
    return sim.base_url().replace("http", "ws", 1) + "/v1"


def careful_socket(sim: Any, prompt: str, images: int = 1, callback_url: str | None = None) -> AdapterResult:
    """The careful Runware client over WebSocket (sync delivery: each image arrives in a frame of its own)."""
    options: dict[str, Any] = {"webhook_url": callback_url} if callback_url else {}
    client = RunwareSocketClient(sim.api_key(), base_url=_socket_url(sim), sleep=sim.sleep, clock=sim.now)
    with client:
        result = client.generate(prompt, number_results=images, **options)
    handler = RunwareWebhookHandler(lambda event: None)  # what your webhook endpoint runs
    return AdapterResult(result.images, result.blocked, on_callback=handler.handle)


def naive_socket(sim: Any, prompt: str, images: int = 1, callback_url: str | None = None) -> list[Any]:
    """The naive Runware client over WebSocket: no pause before a retry, every refusal retried."""
    if callback_url:
        pytest.skip("the naive clients take no callbacks")
    client = NaiveRunwareSocketClient(sim.api_key(), base_url=_socket_url(sim), clock=sim.now)
    with client:
        return list(client.generate(prompt, number_results=images).images)

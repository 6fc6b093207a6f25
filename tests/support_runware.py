"""Helpers shared by the Runware tests (REST API, failure rehearsal, official SDK); this module holds no tests."""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
import uuid
from typing import Any

import httpx

from simulator.live import LiveServer
from simulator.validation import schema_set

SCHEMAS = schema_set("runware")

try:
    SDK_VERSION: str | None = importlib.metadata.version("runware-sdk")
except importlib.metadata.PackageNotFoundError:
    SDK_VERSION = None


def task(**fields: Any) -> dict[str, Any]:
    """An imageInference task (NB2, 1024x1024, a fresh taskUUID); keyword fields override, None leaves one out."""
    body: dict[str, Any] = {
        "taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": "google:4@3",
        "positivePrompt": "A lighthouse on a cliff at dusk", "width": 1024, "height": 1024,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The response body, asserted valid against `response/envelope`."""
    body = response.json()
    report = SCHEMAS.validate("response/envelope", body)
    assert report.ok, report.violations
    return body


def sync_in_background(
    server: LiveServer, body: list[dict[str, Any]], key: str
) -> tuple[threading.Thread, list[httpx.Response]]:
    """A sync request held by the server until the (manual) clock moves: its thread and where its answer lands."""
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(httpx.post(server.url + "/runware/v1", json=body,
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30))

    worker = threading.Thread(target=post)
    worker.start()
    return worker, answers


def sdk_run(server: LiveServer, params: dict[str, Any], api_key: str) -> list[dict[str, Any]]:
    """`Runware.run(params)` of the official SDK over REST against `server`."""
    from runware import Runware

    async def scenario() -> list[dict[str, Any]]:
        # max_retries=0: the SDK retries 5xx/429 with real-time backoff, which a test must not wait for.
        async with Runware(api_key=api_key, transport="rest", http_base_url=server.url + "/runware/v1",
                           max_retries=0) as client:
            return await client.run(dict(params))

    return asyncio.run(scenario())

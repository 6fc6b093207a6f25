"""Helpers for the task-unified gateway tests (FoxAPI/AIHubMax and Evolink); this module holds no tests.

The gateway providers are data-driven, so the helpers read the same `provider.json` the server reads:
route paths, the request field names and error conditions come from there, never from the test.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.options import provider_data
from simulator.resources import schemas_dir
from simulator.validation import dotted_path, schema_set

TOKEN = "test-token"
FLASH = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"
SLUGS = ("foxapi", "evolink")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def examples(slug: str, kind: str) -> list[Path]:
    return sorted((schemas_dir() / slug / "examples" / kind).glob("*.json"))


def violations(slug: str, name: str, instance: Any) -> list[tuple[str, str]]:
    return [(dotted_path(v.path), v.rule) for v in schema_set(slug).validate(name, instance).violations]


def image_data_url(width: int, height: int, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=fmt)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


class Gateway:
    """An authenticated client for one gateway provider of a LiveServer, plus its data card."""

    def __init__(self, server: LiveServer, slug: str, token: str = TOKEN) -> None:
        self.slug = slug
        self.server = server
        self.data = provider_data(slug)
        self.card = self.data["gateway"]
        self.fields = self.card["fields"]
        self.http = httpx.Client(
            base_url=server.provider_url(slug), headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def path(self, route: str, **params: str) -> str:
        return str(self.card["routes"][route]["path"]).format(**params)

    def url(self, route: str, **params: str) -> str:
        """Absolute URL of a route, for requests made without this client's API key."""
        return self.server.provider_url(self.slug) + self.path(route, **params)

    def body(self, model: str = FLASH, prompt: str = "a ripe banana on a desk", **fields: Any) -> dict[str, Any]:
        """A create body; keyword names are the provider-neutral ones (ratio, tier, images, format, callback)."""
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        for name, value in fields.items():
            body[self.fields.get(name) or name] = value
        return body

    def create(self, body: Any, **kwargs: Any) -> httpx.Response:
        return self.http.post(self.path("create"), json=body, **kwargs)

    def created(self, **fields: Any) -> dict[str, Any]:
        response = self.create(self.body(**fields))
        assert response.status_code == 200, response.text
        self.check("response/create-task", response.json())
        return dict(response.json())

    def detail(self, task_id: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(self.path("task", task_id=task_id), **kwargs)

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.detail(task_id)
        assert response.status_code == 200, response.text
        self.check("response/task-detail", response.json())
        return dict(response.json())

    def credits(self) -> dict[str, Any]:
        response = self.http.get(self.path("credits"))
        assert response.status_code == 200, response.text
        self.check("response/credits", response.json())
        return dict(response.json())

    def check(self, name: str, body: Any) -> None:
        assert violations(self.slug, name, body) == [], (name, body)

    def error(self, response: httpx.Response, condition: str, operation: str | None = None) -> dict[str, Any]:
        """Assert the response is the provider's error for `condition` (status, type, code from the card)."""
        entry = dict(self.card["errors"][condition])
        entry.update(entry.get("byOperation", {}).get(operation or "", {}))
        assert response.status_code == entry["status"], response.text
        self.check("response/error", response.json())
        error = response.json()["error"]
        if not str(entry["type"]).startswith("$option:"):
            assert error["type"] == entry["type"]
        if "code" in entry:
            assert error["code"] == entry["code"]
        return dict(error)

    def result_urls(self, detail: dict[str, Any]) -> list[str]:
        return [item["url"] if isinstance(item, dict) else item for item in detail["results"]]

    def close(self) -> None:
        self.http.close()


def gateway_fixture(*slugs: str, name: str = "gw") -> Any:
    """A fixture `name`: a `Gateway` of the module's `server`, after `control` reset the simulator, closed after the
    test. With several slugs it is parametrized over them (one run per provider); with one it is that provider's.
    """

    @pytest.fixture(name=name, params=list(slugs) if len(slugs) > 1 else None)
    def gateway(request: pytest.FixtureRequest, server: LiveServer, control: ControlClient) -> Iterator[Gateway]:
        client = Gateway(server, request.param if len(slugs) > 1 else slugs[0])
        yield client
        client.close()

    return gateway

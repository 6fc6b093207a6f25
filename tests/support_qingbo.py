"""Helpers shared by the qingbo.dev tests (task API, failure rehearsal); this module holds no tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from simulator.control_client import ControlClient
from simulator.validation import schema_set

TASKS = "/v1/tasks"
SCHEMAS = schema_set("qingbo")
FLASH = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"


def assert_valid(schema: str, body: Any) -> None:
    report = SCHEMAS.validate(schema, body)
    assert report.ok, f"not a valid {schema}:\n" + "\n".join(json.dumps(v.as_dict()) for v in report.violations)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is qingbo's JSON error with `status` and `code` (a quota-window 429 with its members); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = dict(response.json())
    assert_valid("response/quota-window-error" if code == "quota_window_exceeded" else "response/error", body)
    assert body["error"]["code"] == code
    return body


def error_message(response: httpx.Response, status: int, code: str) -> str:
    """`assert_error`, then the error's message."""
    return str(assert_error(response, status, code)["error"]["message"])


def task_body(model: str = FLASH, **fields: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "a ripe banana on a desk", **fields}


def submit(client: httpx.Client, body: Any | None = None, **headers: str) -> httpx.Response:
    """POST /v1/tasks with `body` (default: `task_body()`) and extra headers."""
    return client.post(TASKS, json=task_body() if body is None else body, headers=headers)


def submitted(client: httpx.Client, body: Any | None = None, **headers: str) -> dict[str, Any]:
    """`submit`, which must be accepted; the task object it answers with."""
    response = submit(client, body, **headers)
    assert response.status_code == 200, response.text
    assert_valid("response/task", response.json())
    return dict(response.json())


def fetch(client: httpx.Client, task_id: str) -> dict[str, Any]:
    """GET /v1/tasks/{task_id}, which must succeed; the task object."""
    response = client.get(f"{TASKS}/{task_id}")
    assert response.status_code == 200, response.text
    assert_valid("response/task", response.json())
    return dict(response.json())


def timeline(control: ControlClient, task_id: str) -> dict[str, float]:
    return dict(control.task(task_id)["timeline"])


def ms(t: float) -> int:
    return round(t * 1000)

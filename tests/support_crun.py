"""Helpers shared by the CRun tests (task API, failure rehearsal); this module holds no tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from simulator.control_client import ControlClient
from simulator.validation import schema_set

KEY = "ak_" + "0123456789abcdef" * 2
OTHER_KEY = "ak_" + "fedcba9876543210" * 2
JOB = "/api/v1/client/job"
BALANCE = "/api/v1/client/account/balance"
SCHEMAS = schema_set("crun")


def assert_valid(schema: str, body: Any) -> None:
    assert SCHEMAS.validate(schema, body).violations == [], json.dumps(body)[:2000]


def body(model: str = "google/nano-banana", **fields: Any) -> dict[str, Any]:
    """A CreateTask body; keyword fields go into `input` next to the prompt."""
    return {"model": model, "input": {"prompt": "a ripe banana on a desk", **fields}}


def create(crun: httpx.Client, request: dict[str, Any] | None = None) -> str:
    """CreateTask with `request` (default: `body()`), which must be accepted; the task id."""
    response = crun.post(f"{JOB}/CreateTask", json=request or body())
    assert response.status_code == 200, response.text
    assert_valid("response/create-task", response.json())
    return str(response.json()["data"]["task_id"])


def info(crun: httpx.Client, task_id: str) -> dict[str, Any]:
    """TaskInfo's `data` for a task, asserted valid."""
    response = crun.get(f"{JOB}/TaskInfo", params={"task_id": task_id})
    assert response.status_code == 200, response.text
    assert_valid("response/task-info", response.json())
    return dict(response.json()["data"])


def balance(crun: httpx.Client) -> float:
    response = crun.get(BALANCE)
    assert response.status_code == 200, response.text
    assert_valid("response/balance", response.json())
    return float(response.json()["data"]["balance"])


def timeline(control: ControlClient, task_id: str) -> dict[str, float | None]:
    return dict(control.task(task_id)["timeline"])


def finish(control: ControlClient, task_id: str) -> None:
    """Move the clock to the moment the task finishes."""
    finished_at = timeline(control, task_id)["finished_at"]
    assert finished_at is not None
    control.advance_to(finished_at)

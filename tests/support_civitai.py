"""Helpers shared by the Civitai tests (API, media, failure rehearsal); this module holds no tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from conftest import nb2_body

from simulator.validation import schema_set

WORKFLOWS = "/v2/consumer/workflows"
BLOBS = "/v2/consumer/blobs"
PROBLEM = "application/problem+json"
BLOCK = "[sim:block]"
SCHEMAS = schema_set("civitai")
# Every client here speaks plain HTTP to 127.0.0.1: there is no TLS to verify, and not loading the CA bundle
# spares ~40 ms per client.
VERIFY_TLS = False


def assert_valid(schema: str, body: Any) -> None:
    report = SCHEMAS.validate(schema, body)
    assert report.ok, f"not a valid {schema}:\n" + "\n".join(json.dumps(v.as_dict()) for v in report.violations)


def workflow_body(model: str = "nano-banana-2", **fields: Any) -> dict[str, Any]:
    body = nb2_body(**fields)
    body["steps"][0]["input"]["model"] = model
    return body


def submit(client: httpx.Client, body: Any | None = None, **params: Any) -> httpx.Response:
    """POST a workflow: `body` (default: `nb2_body()`), query parameters by keyword."""
    return client.post(WORKFLOWS, json=nb2_body() if body is None else body, params=params)


def submitted(client: httpx.Client, body: Any | None = None, **params: Any) -> dict[str, Any]:
    """Submit a body that must be accepted; the Workflow it answers with."""
    response = submit(client, body, **params)
    assert response.status_code in (200, 202), response.text
    assert_valid("response/workflow", response.json())
    return response.json()


def get_workflow(client: httpx.Client, workflow_id: str, **params: Any) -> httpx.Response:
    return client.get(f"{WORKFLOWS}/{workflow_id}", params=params)


def seconds(stamp: str) -> float:
    """An orchestrator timestamp (`2026-01-01T00:00:03.7839990Z`) as POSIX seconds."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + float(f"0.{fraction or '0'}")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an application/problem+json ProblemDetails with `status` and a title; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert_valid("response/problem-details", body)
    return body


def assert_validation_problem(response: httpx.Response, *paths: str) -> dict[str, Any]:
    body = assert_problem(response, 400)
    assert_valid("response/validation-problem-details", body)
    assert body["title"] == "One or more validation errors occurred."
    for path in paths:
        assert path in body["errors"], body["errors"]
    return body


def first_image(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow["steps"][0]["output"]["images"][0]

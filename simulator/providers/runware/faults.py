"""Failure rehearsal, the Runware way: one route for every task type, errors scoped to tasks, images one by one.

- Runware has a single route (`POST /v1`, operation `Tasks`) for submits, polls and pings. A concurrency
  limit must still refuse only new work: a request is held to one only when it carries an
  `imageInference` task, never for a `getResponse` poll of the work in flight.
- A forced error answers with one `errors[]` item per task of the request, each with its `taskType` and
  `taskUUID` (the SDKs route errors by taskUUID, dossier §3.5); key errors carry `taskType: authentication`
  and no taskUUID, like the errors page example.
- A partial block (counted across the request's images by the engine) is either that generation's own
  error item, or, in the `nsfw_flag` style for a task that asked for a safety check, a delivered image
  flagged `NSFWContent: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.engine import Phase
from simulator.providers.runware.errors import task_fields
from simulator.providers.runware.jobs import Job

AUTHENTICATION = "authentication"
SUBMIT = "imageInference"

# Whether the request being checked against the limits submits new work (set around the base's check).


def leading_authentication(body: Any) -> dict[str, Any] | None:
    """The authentication task when it is the first element of the array (the only place it counts)."""
    if isinstance(body, list) and body and isinstance(body[0], dict) and body[0].get("taskType") == AUTHENTICATION:
        return body[0]
    return None


def tasks_of(body: Any) -> list[dict[str, Any]]:
    """The task objects of a body, without its leading authentication task; none for anything but an array."""
    if not isinstance(body, list):
        return []
    skip = 1 if leading_authentication(body) is not None else 0
    return [task for task in body[skip:] if isinstance(task, dict)]


def submits(tasks: list[dict[str, Any]]) -> bool:
    return any(task.get("taskType") == SUBMIT for task in tasks)


def forced_items(spec: Mapping[str, Any], code: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors[] items of a forced error: the key error alone, else one per task of the request."""
    item: dict[str, Any] = {"code": code, "message": str(spec["message"])}
    for key in ("parameter", "responseContent"):
        if spec.get(key):
            item[key] = spec[key]
    if spec.get("scope") == AUTHENTICATION:
        return [item | {"taskType": AUTHENTICATION}]
    scoped = [item | task_fields(task) for task in tasks if task_fields(task)]
    return scoped or [item]


def flag_instead_of_block(job: Job) -> None:
    """Images a partial block hit are delivered, flagged `NSFWContent: true` (a prompt block still fails)."""
    for image in job.images:
        output = image.outputs[0]
        if output.blocked and image.outcome is Phase.SUCCEEDED:
            output.blocked, output.blocked_reason = False, None
            image.extra["nsfw"] = True
            image.faults.append("delivered flagged NSFWContent instead (option partial_block_style nsfw_flag)")

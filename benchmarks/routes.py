"""The hot routes of each provider, as requests a load generator can replay: submit, poll, invalid submit.

A body may hold `{uuid}`: the load generator puts a fresh UUID there in every request (Runware's submit
needs a new taskUUID each time, or it is a duplicate, not a generation). Paths are relative to the
provider's base (`/civitai` on the simulator, the root on Prism).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

KEY = "sk-bench"  # every provider's API key in the bench (its wallet owner)
AUTH = f"Bearer {KEY}"
JSON = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def with_uuid(self) -> Request:
        """This request as one client would send it once (`{uuid}` filled in)."""
        return Request(self.method, self.path, self.body.replace("{uuid}", str(uuid.uuid4())) if self.body else None,
                       self.headers)


@dataclass(frozen=True)
class Provider:
    slug: str
    headers: dict[str, str]
    submit: Request
    invalid: Request
    # How to read a task: from the accepted submit's JSON to the poll request, and whether that answer is final.
    poll: Callable[[dict[str, Any], Request], Request]
    finished: Callable[[dict[str, Any]], bool]
    # What makes the task `poll` reads, where that is not `submit` (Gemini answers generateContent at once, and
    # polls the long-running operation of a batch).
    creates: Request | None = None

    @property
    def starts(self) -> Request:
        return self.creates or self.submit


def _json(method: str, path: str, body: Any) -> Request:
    return Request(method, path, json.dumps(body, ensure_ascii=False), {"Content-Type": JSON})


def _get(path: str) -> Request:
    return Request("GET", path)


def _status(*words: str) -> Callable[[dict[str, Any]], bool]:
    return lambda answer: answer.get("status") in words


PROMPT = "A banana astronaut floating above the rings of Saturn, cinematic"
GEMINI = "gemini-3.1-flash-image-preview"


def _gemini(ratio: str) -> dict[str, Any]:
    return {"contents": [{"parts": [{"text": PROMPT}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": ratio}}}

PROVIDERS: dict[str, Provider] = {
    "civitai": Provider(
        "civitai", {"Authorization": AUTH},
        submit=_json("POST", "/v2/consumer/workflows", {"steps": [{"$type": "imageGen", "input": {
            "engine": "google", "model": "nano-banana-2", "prompt": PROMPT, "aspectRatio": "1:1"}}]}),
        invalid=_json("POST", "/v2/consumer/workflows", {"steps": [{"$type": "imageGen", "input": {
            "engine": "google", "model": "nano-banana-2", "prompt": PROMPT, "aspectRatio": "16:10"}}]}),
        poll=lambda answer, _: _get(f"/v2/consumer/workflows/{answer['id']}"),
        finished=_status("succeeded"),
    ),
    "qingbo": Provider(
        "qingbo", {"Authorization": AUTH},
        submit=_json("POST", "/v1/tasks", {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT}),
        invalid=_json("POST", "/v1/tasks", {"model": "gemini-3.1-flash-image-preview", "prompt": PROMPT,
                                            "aspect_ratio": "16:10"}),
        poll=lambda answer, _: _get(f"/v1/tasks/{answer['task_id']}"),
        finished=_status("completed"),
    ),
    "runware": Provider(
        "runware", {"Authorization": AUTH},
        submit=_json("POST", "/v1", [{"taskType": "imageInference", "taskUUID": "{uuid}", "model": "google:4@3",
                                      "positivePrompt": PROMPT, "width": 1024, "height": 1024,
                                      "deliveryMethod": "async"}]),
        invalid=_json("POST", "/v1", [{"taskType": "imageInference", "taskUUID": "{uuid}", "model": "google:4@3",
                                       "positivePrompt": PROMPT, "width": 1000, "height": 1024,
                                       "deliveryMethod": "async"}]),
        poll=lambda _, sent: _json("POST", "/v1", [{"taskType": "getResponse",
                                                    "taskUUID": json.loads(sent.body or "[{}]")[0]["taskUUID"]}]),
        finished=lambda answer: all(item.get("status") == "success" for item in answer.get("data", [{}])),
    ),
    "crun": Provider(
        "crun", {"x-api-key": KEY},
        submit=_json("POST", "/api/v1/client/job/CreateTask", {"model": "google/nano-banana-v2", "input": {
            "prompt": PROMPT, "aspect_ratio": "1:1"}}),
        invalid=_json("POST", "/api/v1/client/job/CreateTask", {"model": "google/nano-banana-v2", "input": {
            "prompt": PROMPT, "aspect_ratio": "16:10"}}),
        poll=lambda answer, _: _get(f"/api/v1/client/job/TaskInfo?task_id={answer['data']['task_id']}"),
        finished=lambda answer: answer.get("data", {}).get("status") == "success",
    ),
    # The gateway family: the same routes, the aspect ratio named differently.
    **{slug: Provider(
        slug, {"Authorization": AUTH},
        submit=_json("POST", "/v1/images/generations", {"model": "gemini-3.1-flash-image-preview",
                                                        "prompt": PROMPT, ratio: "1:1"}),
        invalid=_json("POST", "/v1/images/generations", {"model": "gemini-3.1-flash-image-preview",
                                                         "prompt": PROMPT, ratio: "16:10"}),
        poll=lambda answer, _: _get(f"/v1/tasks/{answer['id']}"),
        finished=_status("completed"),
    ) for slug, ratio in (("foxapi", "aspect_ratio"), ("evolink", "size"))},
    # Google's own API: generateContent answers with the image itself; what is polled is a batch's operation.
    "gemini": Provider(
        "gemini", {"x-goog-api-key": KEY},
        submit=_json("POST", f"/v1beta/models/{GEMINI}:generateContent", _gemini("1:1")),
        invalid=_json("POST", f"/v1beta/models/{GEMINI}:generateContent", _gemini("16:10")),
        creates=_json("POST", f"/v1beta/models/{GEMINI}:batchGenerateContent", {"batch": {"inputConfig": {
            "requests": {"requests": [{"request": _gemini("1:1"), "metadata": {"key": "bench"}}]}}}}),
        poll=lambda answer, _: _get(f"/v1beta/{answer['name']}"),
        finished=lambda answer: answer.get("done") is True,
    ),
}


def send(client: httpx.Client, base: str, provider: Provider, request: Request) -> httpx.Response:
    return client.request(request.method, base + request.path, content=request.body,
                          headers={**provider.headers, **request.headers})


def finished_task(client: httpx.Client, base: str, provider: Provider, timeout: float = 60) -> Request:
    """Submit once and poll until the task is finished; the poll request of that finished task."""
    sent = provider.starts.with_uuid()
    accepted = send(client, base, provider, sent)
    if accepted.status_code >= 300:
        raise RuntimeError(f"{provider.slug} submit: {accepted.status_code} {accepted.text[:300]}")
    poll = provider.poll(accepted.json(), sent)
    deadline = time.monotonic() + timeout
    while True:
        answer = send(client, base, provider, poll)
        if answer.status_code < 300 and provider.finished(answer.json()):
            return poll
        if time.monotonic() > deadline:
            raise RuntimeError(f"{provider.slug}: task not finished after {timeout} s: {answer.text[:300]}")
        time.sleep(0.05)

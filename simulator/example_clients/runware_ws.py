"""Runware over WebSocket (`wss://ws-api.runware.ai/v1`): the careful REST client, on a socket.

The socket carries the same task arrays and answers as `POST /v1`, so this client keeps everything
`RunwareClient` knows (the task, `conflictTaskUUID`, `getResponse`, results, downloads, error codes) and
changes only how a task array travels. What Runware's docs say of the socket (How to connect, Getting
started), and the official SDKs where the docs are silent, and what this client does with it:

- The first frame is `[{"taskType": "authentication", "apiKey": …}]`; the answer carries a
  `connectionSessionUUID`. A refused key answers an `invalidApiKey` / `missingApiKey` item and the socket
  closes: an `AuthError`, never retried.
- Answers are matched to the task by `taskUUID`. A sync `imageInference` answers one frame per image as each
  is ready; the client collects them until every image is accounted for.
- The server closes a socket 120 s after the last frame, so a client waiting longer pings
  (`[{"taskType": "ping", "ping": true}]`; the official Python SDK does every 5 s).
- A frame has no status line and no headers: a `rateLimitExceeded` item says nothing of when to retry, so
  the client backs off exponentially, as for a 5xx.
- A dropped socket loses the answers under way: reconnect, authenticate, resend the same task (same
  `taskUUID`); `conflictTaskUUID` says the first send arrived, and `getResponse` collects the results.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from simulator.example_clients.common import NanoBananaError, UpstreamError
from simulator.example_clients.runware import RunwareClient

KEEPALIVE = 5.0  # real seconds without a frame before the client pings (the official Python SDK's pace)
MAX_FRAME = 64 * 1024 * 1024  # results with `base64Data` outputs are large frames
SERVER_CODES = frozenset({"internalServerError", "serviceUnavailable", "providerError", "unknownError"})


class RunwareSocketClient(RunwareClient):
    """`RunwareClient` whose task arrays go over one WebSocket; `base_url` is the socket's URL."""

    default_base_url = "wss://ws-api.runware.ai/v1"

    def __init__(self, api_key: str, **options: Any) -> None:
        super().__init__(api_key, **options)
        self._socket: ClientConnection | None = None
        self._open = contextlib.ExitStack()  # the open socket's `with`, left when the socket is dropped

    def close(self) -> None:
        self._drop()
        super().close()

    def request(self, method: str, path: str, *, json_body: Any = None, idempotent: bool = True,
                timeout: float | None = None, **_: Any) -> dict[str, Any]:
        """Send one task array (the REST call's `method` and `path` mean nothing here) and return its answer,
        with retries: a refusal that may pass (rate limit, server error, a dropped socket) is resent after an
        exponential backoff, within `retry.attempts` and `retry.budget`."""
        tasks: list[dict[str, Any]] = json_body
        waited = 0.0
        for attempt in itertools.count():
            wait = self.retry.backoff(attempt, self.rng)
            try:
                answer = self._exchange(tasks)
            except (OSError, WebSocketException) as exc:
                self._drop()  # the next try reconnects; the taskUUID keeps a resend from making a second task
                failure: NanoBananaError = UpstreamError(f"runware: the socket failed ({exc!r})")
            else:
                if not answer.get("errors") or answer.get("data"):
                    return answer  # a result, or a batch with some images withheld
                failure = self._refusal(answer)
                if not self.retryable(failure):
                    raise failure
            if attempt + 1 >= self.retry.attempts or waited + wait > self.retry.budget:
                raise failure
            self.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        if code in SERVER_CODES:
            return UpstreamError  # over REST the 5xx status says so; a frame has only its code
        return super().error_class(status, code, message, body)

    # -- the socket --------------------------------------------------------------------------------------

    def _connected(self) -> ClientConnection:
        if self._socket is None:
            socket = self._open.enter_context(connect(self.base_url, max_size=MAX_FRAME, open_timeout=30))
            socket.send(json.dumps([{"taskType": "authentication", "apiKey": self.api_key}]))
            answer = json.loads(socket.recv(timeout=30))
            if answer.get("errors"):
                self._open.close()
                raise self._refusal(answer)
            self._socket = socket
        return self._socket

    def _drop(self) -> None:
        self._socket = None
        self._open.close()

    def _exchange(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Send the frame, then gather the items about its task (by `taskUUID`) until they answer it: every
        image of a sync `imageInference`, else the first frame about it."""
        socket = self._connected()
        socket.send(json.dumps(tasks))
        task = tasks[0]
        task_uuid = str(task.get("taskUUID", ""))
        gathered: dict[str, list[dict[str, Any]]] = {"data": [], "errors": []}
        deadline = self.clock() + self.generation_timeout
        while True:
            try:
                frame = json.loads(socket.recv(timeout=KEEPALIVE))
            except TimeoutError:
                if self.clock() > deadline:
                    raise UpstreamError(f"runware: no answer to task {task_uuid} in time") from None
                socket.send(json.dumps([{"taskType": "ping", "ping": True}]))
                continue
            for key in ("data", "errors"):
                # Items of another task (a late result from before a reconnect) and pongs are not this answer;
                # an error naming no task (a refused key, an unreadable frame) is about the frame just sent.
                gathered[key] += [{"taskUUID": task_uuid, **item} for item in frame.get(key) or []
                                  if item.get("taskUUID", task_uuid) == task_uuid and item.get("taskType") != "ping"]
            if not gathered["data"] and not gathered["errors"]:
                continue
            sync = task.get("taskType") == "imageInference" and task.get("deliveryMethod", "sync") == "sync"
            if not sync or self._finished(gathered, task_uuid, int(task.get("numberResults", 1))):
                return {key: items for key, items in gathered.items() if items}

    def _refusal(self, answer: dict[str, Any]) -> NanoBananaError:
        code, message = self.error_details(answer)
        cls = self.error_class(0, code, message, answer)
        return cls(f"runware: {message or 'error'} ({code})", code=code, body=answer)

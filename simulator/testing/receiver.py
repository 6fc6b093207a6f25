"""A webhook receiver on 127.0.0.1 that records every request and answers from a script of statuses.

    with WebhookReceiver(statuses=[500, 500]) as hook:   # fail twice, then 200
        submit(..., callback_url=hook.url)
        ...
        assert [r.json()["status"] for r in hook.requests] == [...]
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, statuses: Iterable[int] = (), then: int = 200, path: str = "/hook") -> None:
        self.then = then
        self.path = path
        self._script: deque[int] = deque(statuses)
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then `then` again)."""
        with self._lock:
            self._script.extend(statuses)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def bodies(self, path: str | None = None, method: str | None = None) -> list[Any]:
        """JSON bodies received, optionally only those sent to `path` or with `method`."""
        return [
            r.json() for r in self.requests
            if (path is None or r.path == path) and (method is None or r.method == method)
        ]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            status = self._script.popleft() if self._script else self.then
            self._requests.append(ReceivedRequest(
                handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, status,
            ))
        handler.send_response(status)
        handler.send_header("content-length", "0")
        handler.end_headers()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._answer(self)

            do_PUT = do_GET = do_PATCH = do_DELETE = do_POST

            def log_message(self, *args: Any) -> None:
                pass  # the test output is the place for assertions, not access logs

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

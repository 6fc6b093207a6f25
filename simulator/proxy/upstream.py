"""Where a relayed request goes: a real provider (or anything speaking its API) over HTTP.

The caller's request leaves as it came (method, the provider's own path, query, headers with its key, body),
minus the hop-by-hop headers a proxy must not forward. The answer comes back whole, bounded in size, and with
the headers that described the upstream's framing dropped (the transport frames it again).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

import httpx

from simulator.pipeline import Answer, Exchange
from simulator.proxy.cassette import is_event_stream, sse_events
from simulator.proxy.sockets import HANDSHAKE, FrameSink, Link, UpstreamSocket, socket_url

# RFC 9110 §7.6.1, plus what httpx sets from the target URL and the body it sends.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "host", "content-length", "accept-encoding"})
# Headers of the answer that describe the upstream's framing, which httpx has already undone.
FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "date"})
MAX_ANSWER_BYTES = 64 * 1024 * 1024
TIMEOUT = httpx.Timeout(300.0, connect=15.0)
# Set while a relay forwards: the in-process pytest mode routes the providers' real hostnames to the simulator,
# and must let the relay's own request to the real provider through (simulator.pytest_plugin.inprocess).
FORWARDING: ContextVar[bool] = ContextVar("nanobanana_forwarding", default=False)


class UpstreamError(Exception):
    """No answer from the upstream worth passing on: the relay answers `status` in the provider's own shape."""

    def __init__(self, message: str, status: int = 502, code: str = "bad_gateway") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Upstream(Protocol):
    base: str

    async def send(self, exchange: Exchange, rest: str, body: bytes) -> Answer:
        """The upstream's answer to `exchange` (its provider-relative path `rest`, its body as forwarded `body`);
        raises UpstreamError."""
        ...

    async def open_socket(self, exchange: Exchange, rest: str, sink: FrameSink) -> Link:
        """A WebSocket to the upstream for the client connection `exchange` came on (at its provider-relative path
        `rest`), whose frames go to `sink`; raises UpstreamError."""
        ...

    async def aclose(self) -> None: ...


class HttpUpstream:
    def __init__(self, base: str, *, max_bytes: int = MAX_ANSWER_BYTES,
                 transport: httpx.AsyncBaseTransport | None = None, socket_base: str | None = None) -> None:
        self.base = base.rstrip("/")
        # Where its WebSocket API is (Runware: wss://ws-api.runware.ai beside https://api.runware.ai).
        self.socket_base = (socket_base or socket_url(self.base)).rstrip("/")
        self.max_bytes = max_bytes
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _session(self) -> httpx.AsyncClient:
        # Made on first use, on the loop that serves the proxy (the pytest plugin's engine loop, or uvicorn's).
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, transport=self._transport)
        return self._client

    async def send(self, exchange: Exchange, rest: str, body: bytes) -> Answer:
        query = exchange.query_string.decode("latin-1")
        return await self.send_to(self.base + rest + (f"?{query}" if query else ""), exchange, body)

    async def send_to(self, url: str, exchange: Exchange, body: bytes) -> Answer:
        """`exchange` as it came (method, headers, `body`), to any URL: the upstream's, or a client's callback URL."""
        headers = [(name, value) for name, value in exchange.headers.raw
                   if name.decode("latin-1").lower() not in HOP_BY_HOP]
        request = self._session().build_request(exchange.method, url, headers=headers, content=body)
        forwarding = FORWARDING.set(True)
        try:
            response = await self._session().send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{url.split('?')[0]} gave no answer: {type(exc).__name__}: {exc}") from exc
        finally:
            FORWARDING.reset(forwarding)
        try:
            answer = await self._read(response)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{url.split('?')[0]} broke off its answer: {type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()
        headers_out = {name.lower(): value for name, value in response.headers.multi_items()
                       if name.lower() not in FRAMING}
        if is_event_stream(response.headers.get("content-type", "")):
            events = sse_events(answer)
            if events is not None:  # passed on event by event, and each event checked against its schema
                return Answer.sse(events, response.status_code, headers=headers_out)
        return Answer(response.status_code, answer, None, headers_out)

    async def _read(self, response: httpx.Response) -> bytes:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise UpstreamError(f"the upstream {self.base} answered more than {self.max_bytes} bytes; "
                                    "the proxy passes on nothing that large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def open_socket(self, exchange: Exchange, rest: str, sink: FrameSink) -> Link:
        query = exchange.query_string.decode("latin-1")
        headers = [(name, value) for name, value in exchange.headers.items()
                   if name not in HOP_BY_HOP and name not in HANDSHAKE]
        try:
            return await UpstreamSocket.open(self.socket_base + rest + (f"?{query}" if query else ""), headers, sink)
        except ConnectionError as exc:
            raise UpstreamError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

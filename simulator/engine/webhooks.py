"""Webhook delivery: ordered per stream, retried on the clock by the provider's policy, all journaled."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

from simulator.clock import Clock
from simulator.engine.journal import Journal


@dataclass(frozen=True)
class RetryPolicy:
    """Delays (seconds on the clock) before each retry; attempts = 1 + len(delays)."""

    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    timeout: float = 10.0


@dataclass
class Delivery:
    """One outbound request: a JSON callback (`payload`), or raw bytes (`content`, e.g. an upload PUT)."""

    stream: str
    url: str
    payload: Any
    provider: str
    event: str
    task_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    attempts: int = 0
    method: str = "POST"
    content: bytes | None = None
    content_type: str = "application/json"
    findings: list[dict[str, Any]] = field(default_factory=list)  # how the payload breaks its contract (a sim bug)

    def body(self) -> bytes:
        return self.content if self.content is not None else json.dumps(self.payload).encode()


class Destination(StrEnum):
    """Where a callback URL points, judged from the URL alone (names are never resolved)."""

    LOOPBACK = "loopback"  # 127.0.0.0/8, ::1, localhost (and *.localhost), however the address is written
    PRIVATE = "private"  # 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 …
    LINK_LOCAL = "link-local"  # 169.254/16 (the cloud metadata service 169.254.169.254), fe80::/10
    RESERVED = "reserved"  # unspecified, multicast and other reserved ranges
    PUBLIC = "public"  # a public IP address
    INTERNAL_NAME = "internal-name"  # a name only an internal resolver answers: metadata.google.internal, *.local
    NAME = "name"  # a DNS name
    NONE = "none"  # no host at all

    @property
    def internal(self) -> bool:
        """An address inside the machine or its network, which a real provider would refuse to call."""
        return self in (Destination.LOOPBACK, Destination.PRIVATE, Destination.LINK_LOCAL, Destination.RESERVED,
                        Destination.INTERNAL_NAME)


# Characters of the IPv4 spellings inet_aton accepts beyond dotted decimal: 2130706433, 0x7f.1, 0177.0.0.1, 127.1.
_IPV4_CHARACTERS = frozenset("0123456789abcdefx.")


def destination(url: str) -> Destination:
    """The one check of callback hosts, at submit (each provider's documented refusal) and at delivery."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return Destination.NONE
    if not host:
        return Destination.NONE
    if host == "localhost" or host.endswith(".localhost"):
        return Destination.LOOPBACK
    address = _address(host)
    if address is None:
        internal = "." not in host or host.rsplit(".", 1)[-1] in _INTERNAL_SUFFIXES or host.endswith(".home.arpa")
        return Destination.INTERNAL_NAME if internal else Destination.NAME
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return Destination.LOOPBACK
    if address.is_link_local:
        return Destination.LINK_LOCAL
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return Destination.RESERVED
    if address.is_private or address in _SHARED:
        return Destination.PRIVATE
    return Destination.PUBLIC


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not public, yet not `is_private`
# Top-level names no public resolver answers (RFC 6762 .local, RFC 6761/8375 and the ones cloud metadata
# services and corporate networks use); a single-label name ("metadata") is internal too.
_INTERNAL_SUFFIXES = frozenset({"internal", "local", "localdomain", "lan", "intranet", "corp", "home"})


def callback_refusal(url: str, *, https_only: bool, loopback: bool = True) -> str | None:
    """Why a provider refuses `url` as a callback target when the task is submitted (None: it is accepted).

    The one rule for every provider: an absolute http(s) URL (https only where the provider says so) that does
    not point inside the machine or its network, however the address is written (10.x, 169.254.169.254 in
    decimal or IPv4-mapped form, metadata.google.internal). Loopback receivers are the exception where
    `loopback` says so (a provider's option, on by default), over plain HTTP too: tests listen there. A public
    name is accepted as the provider would; the simulator delivers to it only when serving with --external-webhooks.
    """
    target = destination(url)
    scheme = urlsplit(url).scheme.lower() if target is not Destination.NONE else ""
    if scheme not in ("http", "https"):
        return "must be an absolute HTTPS URL" if https_only else "must be an absolute HTTP(S) URL"
    if target is Destination.LOOPBACK and loopback:
        return None
    if https_only and scheme != "https":
        return "must use HTTPS"
    if target.internal:
        return (f"must not point to an internal address ({urlsplit(url).hostname}: {target.value}; loopback, "
                "private, link-local and reserved addresses and internal names are refused)")
    return None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if set(host) <= _IPV4_CHARACTERS and host[0].isdigit():
        try:  # what a resolver (and so an HTTP client) makes of a decimal, hex, octal or short IPv4 address
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_loopback(url: str) -> bool:
    return destination(url) is Destination.LOOPBACK


class WebhookDispatcher:
    """Delivers callbacks. Only to loopback receivers unless `allow_external` is set: a simulator
    fed a production payload must not start calling real endpoints by surprise."""

    def __init__(
        self,
        clock: Clock,
        journal: Journal,
        transport_factory: Callable[[], httpx.AsyncBaseTransport | None] = lambda: None,
    ) -> None:
        self.clock = clock
        self.journal = journal
        self._transport_factory = transport_factory
        self._queues: dict[str, deque[Delivery]] = {}
        self._busy: set[str] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.allow_external = False
        # Fault hook: the webhook actions fired for a delivery (drop, duplicate, delay, reorder).
        self.faults_for: Callable[[Delivery], list[dict[str, Any]]] = lambda delivery: []
        # Self-check hook: findings against the provider's payload schema, and whether they withhold the delivery.
        self.inspect: Callable[[Delivery], tuple[list[dict[str, Any]], bool]] = lambda delivery: ([], False)
        self._held: dict[str, Delivery] = {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport_factory(), follow_redirects=False)
        return self._client

    def enqueue(self, delivery: Delivery) -> None:
        delivery.findings, withhold = self.inspect(delivery)
        if withhold:
            self._record(delivery, self.clock.now(), None, "not sent: its payload failed the self-check "
                         "(a simulator bug; see self_check)", "withheld")
            return
        fault = next((do for do in self.faults_for(delivery) if "webhook" in do), None)
        kind = fault["webhook"] if fault else None
        if fault is None:
            self._enqueue(delivery)
        elif kind == "drop":
            self._record(delivery, self.clock.now(), None, "not sent: dropped by a fault rule", "dropped")
        elif kind == "delay":
            self.clock.call_at(self.clock.now() + float(fault.get("seconds", 30)), lambda: self._enqueue(delivery))
        elif kind == "reorder" and delivery.stream in self._held:
            self._enqueue(delivery)  # one is already held back: this one overtakes it, which releases it
        elif kind == "reorder":
            # Held back until the stream's next delivery has gone ahead (or `seconds` pass on the clock).
            self._held[delivery.stream] = delivery
            self.clock.call_at(self.clock.now() + float(fault.get("seconds", 30)),
                               lambda: self._release(delivery.stream))
        else:  # duplicate
            self._enqueue(delivery)
            self._enqueue(dataclasses.replace(delivery, attempts=0))

    def _enqueue(self, delivery: Delivery) -> None:
        self._queues.setdefault(delivery.stream, deque()).append(delivery)
        if delivery.stream not in self._busy:
            self._busy.add(delivery.stream)
            self._spawn(delivery.stream)
        if self._held.get(delivery.stream) not in (None, delivery):
            self._release(delivery.stream)

    def _release(self, stream: str) -> None:
        held = self._held.pop(stream, None)
        if held is not None:
            self._enqueue(held)

    def _spawn(self, stream: str) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(stream))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _attempt(self, stream: str) -> None:
        delivery = self._queues[stream][0]
        delivery.attempts += 1
        started = self.clock.now()
        status: int | None = None
        error: str | None = None
        if not self.allow_external and not is_loopback(delivery.url):
            self._record(delivery, started, None, "not sent: the target is not a loopback address "
                         "(serve with --external-webhooks to deliver anywhere)", "refused")
            await self._advance(stream)
            return
        try:
            response = await self._http().request(
                delivery.method,
                delivery.url,
                content=delivery.body(),
                headers={"content-type": delivery.content_type, "user-agent": "nanobanana-sim", **delivery.headers},
                timeout=delivery.policy.timeout,
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivered = status is not None and 200 <= status < 300
        retries_left = delivery.attempts <= len(delivery.policy.delays)
        outcome = "delivered" if delivered else "retrying" if retries_left else "abandoned"
        self._record(delivery, started, status, error, outcome)
        if outcome == "retrying":
            delay = delivery.policy.delays[delivery.attempts - 1]
            # From the attempt's start, so a slow receiver does not shift the provider's schedule.
            self.clock.call_at(started + delay, lambda: self._attempt(stream))
            return
        await self._advance(stream)

    def _record(self, delivery: Delivery, started: float, status: int | None, note: str | None, outcome: str) -> None:
        self.journal.record(
            "webhook", started, provider=delivery.provider, method=delivery.method, path=delivery.url,
            request_headers=dict(delivery.headers),
            request_body=delivery.payload if delivery.content is None else {"bytes": len(delivery.content)},
            status=status,
            finished_at=self.clock.now(), task_id=delivery.task_id, note=note, self_check=delivery.findings,
            detail={"attempt": delivery.attempts, "event": delivery.event, "outcome": outcome},
        )

    async def _advance(self, stream: str) -> None:
        """The head delivery is settled; send the next one of the stream, in order."""
        queue = self._queues[stream]
        queue.popleft()
        if queue:
            await self._attempt(stream)
        else:
            self._busy.discard(stream)
            del self._queues[stream]

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def in_flight(self) -> bool:
        """Whether attempts are under way (what `flush` would wait for)."""
        return bool(self._inflight)

    async def flush(self) -> None:
        """Wait for attempts already under way (retries wait for the clock, not for this)."""
        while self._inflight:
            # Shielded: a waiter giving up must not cancel a delivery that is already on the wire.
            await asyncio.shield(asyncio.gather(*list(self._inflight), return_exceptions=True))

    def reset(self) -> None:
        self._queues.clear()
        self._busy.clear()
        self._held.clear()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

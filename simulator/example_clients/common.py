"""What the example clients share: results, error types, the retry/backoff policy, polling, downloads, callbacks.

Nothing here knows a provider. Each client module subclasses `BaseClient` and says how its provider
spells errors (`error_details`, `error_class`), which answers are retryable, and how it waits.
Only httpx and the standard library are used: this is what a user of one of these APIs would write.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Sleep = Callable[[float], object]
Clock = Callable[[], float]

# --------------------------------------------------------------------------------------------- results


@dataclass
class Image:
    data: bytes
    url: str
    content_type: str
    id: str | None = None
    seed: int | None = None


@dataclass
class BlockedImage:
    """An image of the batch that the provider withheld (moderation) while delivering the others."""

    reason: str | None = None
    id: str | None = None
    index: int | None = None


@dataclass
class Result:
    provider: str
    task_id: str
    model: str
    images: list[Image]
    blocked: list[BlockedImage] = field(default_factory=list)
    cost: float | None = None  # in the provider's own unit (Buzz, quota, USD, credits)
    raw: dict[str, Any] = field(default_factory=dict)  # the provider's final task object

    @property
    def partial(self) -> bool:
        return bool(self.blocked)


# ---------------------------------------------------------------------------------------------- errors


class NanoBananaError(Exception):
    """Base of every error the example clients raise."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.body = status, code, body


class AuthError(NanoBananaError):
    """Missing, invalid or disabled key, or the key may not do this. Never retried."""


class InsufficientCreditsError(NanoBananaError):
    """The wallet cannot pay for the generation. Never retried."""


class ContentBlockedError(NanoBananaError):
    """The provider's content filter refused the prompt or its output. Never retried with the same input."""


class ValidationError(NanoBananaError):
    """The request broke a documented rule (400/422). Never retried."""


class NotFoundError(NanoBananaError):
    pass


class RateLimitedError(NanoBananaError):
    """429 that outlasted the retry budget; `retry_after` is the provider's last hint (seconds) if it gave one."""

    retry_after: float | None = None


class UpstreamError(NanoBananaError):
    """5xx answers or transport failures that outlasted the retry budget."""


class GenerationFailedError(UpstreamError):
    """The task ran and ended failed (not a content block); resubmitting it is the caller's call."""


class GenerationTimeoutError(UpstreamError):
    """The task was not terminal before the client's deadline (it may still finish on the provider's side)."""


class SubmitUncertainError(UpstreamError):
    """The connection dropped after a submit was sent to a provider without idempotency: the task may exist.

    Resubmitting could pay for the same generation twice, so the client does not; the caller decides.
    """


# --------------------------------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries of one request, the first included
    base_delay: float = 1.0  # first backoff; doubles each retry
    max_delay: float = 30.0  # cap of one backoff
    budget: float = 120.0  # seconds one request may spend sleeping between tries, in total
    jitter: float = 0.25  # up to this fraction is added to a backoff (only ever added: never sooner)

    def backoff(self, retry: int, rng: random.Random) -> float:
        return min(self.max_delay, self.base_delay * 2.0**retry) * (1 + self.jitter * rng.random())


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # a date: measured against the server's own `Date`, so the client's clock does not matter
        when = email.utils.parsedate_to_datetime(value).timestamp()
        now = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, when - now)


def intervals(*steps: float, growth: float = 1.0, cap: float | None = None) -> Iterator[float]:
    """Poll pacing: the given steps, then the last one again (times `growth` each time, up to `cap`)."""
    yield from steps[:-1]
    delay = steps[-1]
    while True:
        yield delay
        delay = min(delay * growth, cap if cap is not None else delay * growth)


def error_envelope(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of the `{"error": {"code", "message", "type"}}` bodies several gateways use."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, body if isinstance(body, str) else None
    code = error.get("code") or error.get("type")
    return (str(code) if code is not None else None), error.get("message")


# ---------------------------------------------------------------------------------------- base client

STATUS_ERRORS: dict[int, type[NanoBananaError]] = {
    400: ValidationError, 401: AuthError, 402: InsufficientCreditsError, 403: AuthError,
    404: NotFoundError, 422: ValidationError, 429: RateLimitedError,
}


class BaseClient:
    provider = ""
    default_base_url = ""
    generation_timeout = 600.0  # seconds from submit to a terminal state before giving up

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        http: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        generation_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.api_key = api_key
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.sleep, self.clock = sleep, clock
        self.retry = retry or RetryPolicy()
        self.generation_timeout = generation_timeout or self.generation_timeout
        self.rng = rng or random.Random()

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what a provider module overrides

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def status_of(self, response: httpx.Response, body: Any) -> int:
        """The status that counts (a provider may put errors in a 200 body)."""
        return response.status_code

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        return error_envelope(body)

    def error_class(self, status: int, code: str | None, message: str | None, body: Any) -> type[NanoBananaError]:
        return STATUS_ERRORS.get(status, UpstreamError if status >= 500 else NanoBananaError)

    def retry_after(self, response: httpx.Response, body: Any) -> float | None:
        """How long the provider asked to wait before a retry (`Retry-After`, unless it says it elsewhere)."""
        return retry_after_seconds(response)

    # ---- the machinery

    def error(self, status: int, response: httpx.Response, body: Any) -> NanoBananaError:
        code, message = self.error_details(body)
        cls = self.error_class(status, code, message, body)
        text = f"{self.provider}: {message or response.reason_phrase or 'error'} (HTTP {status}"
        exc = cls(text + (f", {code})" if code else ")"), status=status, code=code, body=body)
        if isinstance(exc, RateLimitedError):
            exc.retry_after = self.retry_after(response, body)
        return exc

    @staticmethod
    def parse(response: httpx.Response) -> Any:
        """The JSON body; an error page that is not JSON (a proxy's HTML) comes back as text."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if response.is_success:
                raise
            return response.text

    @staticmethod
    def retryable(error: NanoBananaError) -> bool:
        return isinstance(error, RateLimitedError | UpstreamError) and not isinstance(error, GenerationFailedError)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call with retries; returns the JSON object it answered or raises a `NanoBananaError`.

        429 (and a 5xx that says `Retry-After`) waits at least that long, longer when failures repeat; other
        5xx and transport errors back off exponentially. The whole is bounded by `retry.attempts`, the
        per-try timeout and `retry.budget`. A request that is not `idempotent` is never resent once it may
        have reached the provider (connection dropped after sending, garbled answer): that would be a
        second generation.
        """
        waited = 0.0
        url = self.base_url + path
        send_headers = {**self.auth_headers(), **(headers or {})}
        for attempt in itertools.count():
            backoff = self.retry.backoff(attempt, self.rng)
            try:
                response = self.http.request(
                    method, url, json=json_body, params=params, headers=send_headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                body = self.parse(response)
                if response.is_success and not isinstance(body, dict):
                    raise ValueError(f"expected a JSON object, got {type(body).__name__}")
            except (httpx.TransportError, ValueError) as exc:  # ValueError: a 2xx whose JSON is cut or garbled
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if not idempotent and not never_sent:
                    raise SubmitUncertainError(f"{self.provider}: {method} {path} was sent but its answer was lost "
                                               f"({exc!r}); not resent, the provider has no idempotency key") from exc
                failure: NanoBananaError = UpstreamError(f"{self.provider}: {method} {path}: {exc!r}")
                wait = backoff
            else:
                status = self.status_of(response, body)
                if status < 400 and isinstance(body, dict):
                    return body
                failure = self.error(status, response, body)
                if not self.retryable(failure):
                    raise failure
                wait = max(self.retry_after(response, body) or 0.0, backoff)  # 429, and 503 may carry one too
            if attempt + 1 >= self.retry.attempts or waited + wait > self.retry.budget:
                raise failure
            self.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")

    def wait_for(
        self,
        state: Any,
        fetch: Callable[[], Any],
        done: Callable[[Any], bool],
        pace: Iterator[float],
        what: str,
        *,
        started: float,
    ) -> Any:
        """Poll `fetch` at the provider's pace until `done`, within `generation_timeout` of `started`.

        `started` is `self.clock()` read before the submit, so time spent in the submit itself (a long
        `wait`, retries of a 429) counts against the same budget.
        """
        deadline = started + self.generation_timeout
        for delay in pace:
            if done(state):
                return state
            if self.clock() + delay > deadline:
                raise GenerationTimeoutError(f"{self.provider}: {what} not finished after {self.generation_timeout} s")
            self.sleep(delay)
            state = fetch()
        raise AssertionError("unreachable")

    def download(self, url: str, *, refresh: Callable[[], str | None] | None = None) -> tuple[bytes, str]:
        """Fetch a signed result URL (no API key: the URL is the credential), following redirects.

        An expired or refused link (401/403/404/410) is replaced once through `refresh`, the provider's
        way of getting a fresh URL; transient failures are retried like API calls.
        """
        waited = 0.0
        refreshed = False
        for attempt in itertools.count():
            wait = self.retry.backoff(attempt, self.rng)
            try:
                response = self.http.get(url, follow_redirects=True)
            except httpx.TransportError as exc:
                problem = f"{exc!r}"
            else:
                if response.status_code == 200:
                    return response.content, response.headers.get("content-type", "application/octet-stream")
                problem = f"HTTP {response.status_code}"
                if response.status_code in (401, 403, 404, 410):
                    fresh = refresh() if refresh is not None and not refreshed else None
                    if not fresh:
                        raise UpstreamError(f"{self.provider}: result URL refused ({problem}) and no fresh URL")
                    url, refreshed = fresh, True
                    continue
                if response.status_code < 500 and response.status_code != 429:
                    raise UpstreamError(f"{self.provider}: download failed ({problem})", status=response.status_code)
                wait = max(retry_after_seconds(response) or 0.0, wait)
            if attempt + 1 >= self.retry.attempts or waited + wait > self.retry.budget:
                raise UpstreamError(f"{self.provider}: download failed ({problem})")
            self.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------ callbacks


class CallbackHandler:
    """Webhooks arrive at least once, sometimes late, twice or out of order; this passes each event on once.

    Feed it the body of every callback request and answer the provider 2xx whatever it returns (a
    duplicate is not an error). An event is dropped when its key was seen, or when its task already
    reported a terminal status. If `on_event` raises, the event is not remembered: answer 5xx and let the
    provider redeliver it.
    """

    terminal: frozenset[str] = frozenset()

    def __init__(self, on_event: Callable[[dict[str, Any]], object], *, remember: int = 10_000) -> None:
        self.on_event = on_event
        self.remember = remember
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._finished: OrderedDict[Hashable, None] = OrderedDict()

    def key(self, event: Mapping[str, Any]) -> Hashable:
        """What makes a delivery the same event: by default (subject, status), one event per state."""
        return self.subject(event)

    def subject(self, event: Mapping[str, Any]) -> tuple[Hashable, str | None]:
        """(what the event is about, its status)."""
        raise NotImplementedError

    def handle(self, body: bytes | str | Mapping[str, Any]) -> bool:
        """True when the event was new and passed to `on_event`."""
        event = dict(body) if isinstance(body, Mapping) else json.loads(body)
        key, (subject, status) = self.key(event), self.subject(event)
        if key in self._seen or subject in self._finished:
            return False
        self.on_event(event)
        self._note(self._seen, key)
        if status in self.terminal:
            self._note(self._finished, subject)
        return True

    def _note(self, store: OrderedDict[Hashable, None], key: Hashable) -> None:
        store[key] = None
        while len(store) > self.remember:
            store.popitem(last=False)

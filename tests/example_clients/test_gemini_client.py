"""`simulator.example_clients.gemini`: the careful Gemini API client, through the plugin's public surface.

Google answers the image itself in one `generateContent` call, so the shared `ClientSuite` (polling, result
URLs, callbacks) does not fit; these are its tests in Google's terms: the exact size, RetryInfo instead of
Retry-After, refusals that are 200s, and a lost answer that is not resent (no idempotency key).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from example_clients.client_suite import PROMPT, RETRY_AFTER
from simulator.example_clients.common import (
    ContentBlockedError,
    InsufficientCreditsError,
    RateLimitedError,
    SubmitUncertainError,
    UpstreamError,
    ValidationError,
)
from simulator.example_clients.gemini import GeminiClient
from simulator.images import pixel_size

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="gemini")
SUBMIT = "GenerateContent"


def client(nanobanana: Nanobanana, http: httpx.Client, **options: Any) -> GeminiClient:
    return GeminiClient(nanobanana.api_key(), base_url=nanobanana.base_url(), http=http, sleep=nanobanana.sleep,
                        clock=nanobanana.now, rng=random.Random(0), **options)


def fault(nanobanana: Nanobanana, do: dict[str, Any], times: int | None = None) -> None:
    when = {"when": {"times": times}} if times else {}
    nanobanana.control.add_faults({"match": {"operation": SUBMIT}, **when, "do": do})


@pytest.mark.nanobanana(strict=True)
def test_generates_the_exact_size_inline(nanobanana: Nanobanana, http: httpx.Client) -> None:
    result = client(nanobanana, http).generate(PROMPT, aspect_ratio="16:9", image_size="2K")
    assert len(result.images) == 1 and result.images[0].content_type == "image/png"
    width, height = pixel_size("gemini-3.1-flash-image", "16:9", "2K")
    assert result.images[0].data[16:24] == width.to_bytes(4, "big") + height.to_bytes(4, "big")
    nanobanana.assert_requests(operation=SUBMIT, status=200, count=1)


def test_waits_out_retry_info_on_a_429(nanobanana: Nanobanana, http: httpx.Client) -> None:
    fault(nanobanana, {"error": "rate_limited", "retry_after": RETRY_AFTER}, times=1)
    client(nanobanana, http).generate(PROMPT)
    first, second = nanobanana.requests("gemini")
    assert "retry-after" not in first["response_headers"]
    assert second["at"] - first["finished_at"] >= RETRY_AFTER - 1e-6
    fault(nanobanana, {"error": "rate_limited", "retry_after": 50})
    with pytest.raises(RateLimitedError) as raised:
        client(nanobanana, http).generate(PROMPT)
    assert raised.value.retry_after == 50


@pytest.mark.parametrize(("do", "error"), [
    ({"error": "insufficient_credits"}, InsufficientCreditsError),
    ({"error": "bad_request"}, ValidationError),
    ({"error": "content_blocked"}, ContentBlockedError),  # a 200 with promptFeedback.blockReason
    ({"task": "block"}, ContentBlockedError),  # a 200 with an IMAGE_SAFETY candidate
])
def test_never_retries_a_refusal(nanobanana: Nanobanana, http: httpx.Client, do: dict[str, Any],
                                 error: type[Exception]) -> None:
    fault(nanobanana, do)
    with pytest.raises(error):
        client(nanobanana, http).generate(PROMPT)
    assert len(nanobanana.requests("gemini")) == 1


def test_backs_off_on_5xx_and_never_resends_a_lost_answer(nanobanana: Nanobanana, http: httpx.Client) -> None:
    fault(nanobanana, {"error": "service_unavailable"}, times=2)
    assert client(nanobanana, http).generate(PROMPT).images
    gaps = nanobanana.intervals(operation=SUBMIT)
    assert len(gaps) == 2 and gaps[0] >= 1 and gaps[1] > gaps[0]
    fault(nanobanana, {"network": "reset"}, times=1)
    with pytest.raises(SubmitUncertainError):
        client(nanobanana, http).generate(PROMPT)
    fault(nanobanana, {"task": "fail"})  # a generation that keeps failing: 500s, retried within the budget
    with pytest.raises(UpstreamError):
        client(nanobanana, http).generate(PROMPT)
    assert len(nanobanana.requests("gemini", status=500)) == 6  # RetryPolicy.attempts

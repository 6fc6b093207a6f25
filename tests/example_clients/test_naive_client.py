"""`simulator.example_clients.naive`: the deliberately bad Civitai client and the journal evidence of its faults.

These tests pass when the naive client misbehaves exactly as its docstring confesses: they show what the
simulator's journal makes visible (and what the rehearsal scorecard is meant to catch), next to the
careful `CivitaiClient`, which the same situations leave clean (`test_civitai_client.py`).

The naive client never sleeps, so the clock creeps on by itself with each request (`tick`), as the plugin
recommends for clients whose sleep cannot be injected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from example_clients.client_suite import PROMPT, RETRY_AFTER, dawdling_http, early_retries
from simulator.example_clients.naive import NaiveCivitaiClient

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

TICK = 0.25
pytestmark = pytest.mark.nanobanana(provider="civitai", clock="virtual", tick=TICK)


def naive(nanobanana: Nanobanana, http: httpx.Client) -> NaiveCivitaiClient:
    return NaiveCivitaiClient(nanobanana.api_key(), base_url=nanobanana.base_url(), http=http)


def workflows(nanobanana: Nanobanana) -> int:
    return len(nanobanana.tasks("civitai"))


def test_ignores_retry_after_and_polls_without_pause(nanobanana: Nanobanana, http: httpx.Client) -> None:
    nanobanana.control.add_faults({"match": {"operation": "SubmitWorkflow"}, "when": {"times": 1},
                                   "do": {"error": "rate_limited", "retry_after": RETRY_AFTER}})
    naive(nanobanana, http).generate(PROMPT)
    assert early_retries(nanobanana.requests("civitai")), "the 429 was resent before its Retry-After"
    gaps = nanobanana.intervals(operation="GetWorkflow")
    assert len(gaps) > 20 and max(gaps) <= TICK + 1e-6, "polled as fast as the clock let it"


def test_retries_an_empty_wallet_until_it_gives_up(nanobanana: Nanobanana, http: httpx.Client) -> None:
    nanobanana.control.set_balance("civitai", nanobanana.api_key(), 0)
    with pytest.raises(RuntimeError):
        naive(nanobanana, http).generate(PROMPT)
    nanobanana.assert_requests(operation="SubmitWorkflow", status=403, count=20)


def test_a_dropped_submit_becomes_a_second_workflow(nanobanana: Nanobanana, http: httpx.Client) -> None:
    nanobanana.control.add_faults({"match": {"operation": "SubmitWorkflow"}, "when": {"times": 1},
                                   "do": {"network": "reset"}})
    naive(nanobanana, http).generate(PROMPT)
    assert workflows(nanobanana) == 2, "no externalId: the lost submit and its resend are two paid workflows"


def test_drops_blocked_images_without_a_word(nanobanana: Nanobanana, http: httpx.Client) -> None:
    nanobanana.control.add_faults({"match": {"operation": "SubmitWorkflow"},
                                   "do": {"task": "partial_block", "images": [1]}})
    result = naive(nanobanana, http).generate(PROMPT, num_images=2)
    assert len(result.images) == 1 and not result.partial, "the caller never learns an image was withheld"


@pytest.mark.nanobanana(options={"civitai": {"url_ttl_seconds": 60}})
def test_an_expired_url_is_fatal(nanobanana: Nanobanana) -> None:
    with dawdling_http(nanobanana, 120) as slow, pytest.raises(httpx.HTTPStatusError):
        naive(nanobanana, slow).generate(PROMPT)
    nanobanana.assert_requests(operation="RefreshBlob", count=0)
    assert [entry["status"] for entry in nanobanana.requests(operation="GetBlob")] == [403]


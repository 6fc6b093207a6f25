"""`simulator.example_clients.civitai` against the simulated Civitai Orchestration v2 (every shared behaviour).

Civitai specifics: `wait=60` for quick 1K requests (no polling at all) and `wait=0` + polling for Pro, the
`externalId` idempotency key, blob refresh for expired URLs, 403 bodies that are bare strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from example_clients.client_suite import ClientSuite, Entry, Profile, generations, submits
from simulator.example_clients.civitai import CivitaiCallbackHandler, CivitaiClient
from simulator.example_clients.common import InsufficientCreditsError

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="civitai")


def _external_id(entry: Entry) -> Any:
    return (entry.get("request_body") or {}).get("externalId")


CIVITAI = Profile(
    slug="civitai",
    client=CivitaiClient,
    options={"aspect_ratio": "16:9", "num_images": 2},
    size=(1376, 768),  # nano-banana-2, 16:9, 1K (Gemini 3.1 Flash Image)
    submit="SubmitWorkflow",
    poll="GetWorkflow",
    pace=2.0,  # the recipe's 2, 5, 10, 15, 30 s
    poll_options={"wait": 0},
    idempotency_key=_external_id,
    batch={"num_images": 2},
    callback=lambda url: {"callbacks": [{"url": url, "type": ["workflow:*"]}]},
    handler=CivitaiCallbackHandler,
    refresh_operation="RefreshBlob",
)


class TestCivitaiClient(ClientSuite):
    profile = CIVITAI

    def test_quick_requests_wait_on_the_server_and_pro_polls(self, nanobanana: Nanobanana) -> None:
        """The recipe: `wait=60` for 1K nano-banana-2 with ≤ 2 images, `wait=0` and polling for Pro."""
        self.generate(nanobanana)
        assert nanobanana.requests(operation="GetWorkflow") == []
        self.generate(nanobanana, model="nano-banana-pro", num_images=1)
        pro = submits(nanobanana, self.profile)[-1]
        assert pro["query"]["wait"] == ["0"]
        nanobanana.assert_requests(operation="GetWorkflow", at_least=1)

    def test_the_same_external_id_is_one_workflow_and_one_charge(self, nanobanana: Nanobanana) -> None:
        first = self.generate(nanobanana, external_id="order-42")
        second = self.generate(nanobanana, external_id="order-42")
        assert first.task_id == second.task_id
        assert generations(nanobanana, self.profile) == 1

    @pytest.mark.nanobanana(options={"civitai": {"insufficient_buzz_status": 402}})
    def test_insufficient_buzz_as_a_402_is_still_an_empty_wallet(self, nanobanana: Nanobanana) -> None:
        nanobanana.control.set_balance("civitai", nanobanana.api_key(), 0)
        with pytest.raises(InsufficientCreditsError):
            self.generate(nanobanana)
        assert len(submits(nanobanana, self.profile)) == 1

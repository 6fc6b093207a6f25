"""`simulator.example_clients.crun` against the simulated CRun task API (every shared behaviour, both modes).

CRun specifics: the `x-api-key` header, `{code, message, data}` envelopes whose body `code` is what counts
(errors may even come as HTTP 200), 455 maintenance, one image per task and no idempotency key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from example_clients.client_suite import RETRY_AFTER, ClientSuite, Profile, generations, submit_fault, submits
from simulator.example_clients.common import InsufficientCreditsError
from simulator.example_clients.crun import CrunCallbackHandler, CrunClient

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="crun")

CRUN = Profile(
    slug="crun",
    client=CrunClient,
    options={"aspect_ratio": "16:9"},
    size=(1344, 768),  # google/nano-banana, 16:9 (Gemini 2.5 Flash Image)
    submit="CreateTask",
    poll="TaskInfo",
    pace=5.0,  # CRun's CLI polls every 5 s
    callback=lambda url: {"callback_url": url},
    handler=CrunCallbackHandler,
    url_ttl_option="media_url_ttl_seconds",
)


class TestCrunClient(ClientSuite):
    profile = CRUN

    @pytest.mark.nanobanana(options={"crun": {"error_http_status": "200"}})
    def test_errors_in_an_http_200_body_are_still_errors(self, nanobanana: Nanobanana) -> None:
        """With `error_http_status=200` CRun answers every error as HTTP 200; the body `code` decides."""
        submit_fault(nanobanana, self.profile, {"error": "rate_limited", "retry_after": RETRY_AFTER}, {"times": 1})
        self.generate(nanobanana)
        first, second = submits(nanobanana, self.profile)
        assert first["status"] == 200 and first["response_body"]["code"] == 429
        assert second["at"] - first["at"] >= RETRY_AFTER
        nanobanana.control.set_balance("crun", nanobanana.api_key(), 0)
        with pytest.raises(InsufficientCreditsError):
            self.generate(nanobanana)
        assert len(submits(nanobanana, self.profile)) == 3
        assert generations(nanobanana, self.profile) == 1

    def test_maintenance_455_is_waited_out(self, nanobanana: Nanobanana) -> None:
        submit_fault(nanobanana, self.profile, {"error": "service_unavailable"}, {"times": 2})
        self.generate(nanobanana)
        assert [entry["status"] for entry in submits(nanobanana, self.profile)] == [455, 455, 200]

"""`simulator.example_clients.foxapi` against the simulated FoxAPI / AIHubMax gateway (every shared behaviour).

FoxAPI specifics: one image per task, no callbacks and no idempotency key, optional fields sent only when
set ("do not pass unless necessary"), the documented "completed but `results: null`" race, and the
AIHubMax hostname serving the same gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from example_clients.client_suite import PROMPT, ClientSuite, Profile, image_size, submits
from simulator.example_clients.foxapi import FoxapiClient

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="foxapi")

FOXAPI = Profile(
    slug="foxapi",
    client=FoxapiClient,
    options={"aspect_ratio": "16:9", "resolution": "1K"},
    size=(1376, 768),  # gemini-3.1-flash-image-preview, 16:9, 1K
    submit="CreateImageGeneration",
    poll="GetTaskDetail",
    pace=5.0,  # the gateway's guides poll every 5-10 s
)


class TestFoxapiClient(ClientSuite):
    profile = FOXAPI

    def test_sends_optional_fields_only_when_asked(self, nanobanana: Nanobanana) -> None:
        self.generate(nanobanana)
        [submit] = submits(nanobanana, self.profile)
        assert set(submit["request_body"]) == {"model", "prompt", "aspect_ratio", "resolution"}

    @pytest.mark.nanobanana(options={"foxapi": {"results_lag_seconds": 8}})
    def test_waits_out_completed_without_results(self, nanobanana: Nanobanana) -> None:
        result = self.generate(nanobanana)
        assert image_size(result.images[0].data) == self.profile.size
        seen = [(entry["response_body"]["status"], entry["response_body"]["results"])
                for entry in nanobanana.requests("foxapi", "GetTaskDetail")]
        assert ("completed", None) in seen, "the race was rehearsed"
        assert seen[-1][0] == "completed" and seen[-1][1]

    def test_the_aihubmax_host_is_the_same_gateway(self, nanobanana: Nanobanana, mode: str) -> None:
        if mode != "inprocess":
            pytest.skip("the real hostnames reach the simulator only in-process")
        with FoxapiClient(nanobanana.api_key(), base_url="https://api.aihubmax.com", sleep=nanobanana.sleep,
                          clock=nanobanana.now) as client:
            result = client.generate(PROMPT, **self.profile.options)
        assert image_size(result.images[0].data) == self.profile.size
        assert {entry["request_headers"]["host"] for entry in nanobanana.requests("foxapi")} == {"api.aihubmax.com"}

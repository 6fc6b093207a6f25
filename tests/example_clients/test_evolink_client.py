"""`simulator.example_clients.evolink` against the simulated Evolink gateway (every shared behaviour, both modes).

Evolink specifics: `size`/`quality` instead of aspect ratio and resolution, one image per task, callbacks
retried 1/2/4 s, no idempotency key, and 403 `model_access_denied` for a model the key may not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from example_clients.client_suite import ClientSuite, Profile, submits
from simulator.example_clients.common import AuthError
from simulator.example_clients.evolink import EvolinkCallbackHandler, EvolinkClient

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="evolink")

EVOLINK = Profile(
    slug="evolink",
    client=EvolinkClient,
    options={"size": "16:9", "quality": "1K"},
    size=(1376, 768),  # gemini-3.1-flash-image-preview, 16:9, 1K
    submit="CreateImageGeneration",
    poll="GetTaskDetail",
    pace=3.0,  # the Error Codes page polls every 3 s
    callback=lambda url: {"callback_url": url},
    handler=EvolinkCallbackHandler,
)


class TestEvolinkClient(ClientSuite):
    profile = EVOLINK

    @pytest.mark.nanobanana(options={"evolink": {"denied_models": ["gemini-3-pro-image-preview"]}})
    def test_a_model_the_key_may_not_use_is_not_retried(self, nanobanana: Nanobanana) -> None:
        with pytest.raises(AuthError) as raised:
            self.generate(nanobanana, model="gemini-3-pro-image-preview")
        assert raised.value.code == "model_access_denied"
        assert len(submits(nanobanana, self.profile)) == 1

    def test_a_failed_callback_delivery_is_retried_until_the_receiver_answers(self, nanobanana: Nanobanana) -> None:
        receiver = nanobanana.receiver(statuses=[500, 500])
        result = self.generate(nanobanana, callback_url=receiver.url)
        nanobanana.advance(30)
        nanobanana.flush_webhooks()
        assert [request.status for request in receiver.requests] == [500, 500, 200]
        events: list[dict[str, object]] = []
        handler = EvolinkCallbackHandler(events.append)
        assert [handler.handle(request.body) for request in receiver.requests] == [True, False, False]
        assert events[0]["id"] == result.task_id and events[0]["status"] == "completed"

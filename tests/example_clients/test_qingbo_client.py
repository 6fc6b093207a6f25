"""`simulator.example_clients.qingbo` against the simulated qingbo task API (every shared behaviour, both modes).

qingbo specifics: `Prefer: wait=60` on the submit, an `Idempotency-Key` on every submit, batches that come
back with fewer images (the missing ones simply not listed, not charged), and 403 `quota_not_enough` as the
older docs' empty-wallet answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from example_clients.client_suite import ClientSuite, Entry, Profile, submits
from simulator.example_clients.common import InsufficientCreditsError
from simulator.example_clients.qingbo import QingboCallbackHandler, QingboClient

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="qingbo")


def _idempotency_key(entry: Entry) -> Any:
    headers = {name.lower(): value for name, value in (entry.get("request_headers") or {}).items()}
    return headers.get("idempotency-key")


QINGBO = Profile(
    slug="qingbo",
    client=QingboClient,
    options={"aspect_ratio": "16:9", "n": 2},
    size=(1376, 768),  # gemini-3.1-flash-image-preview, 16:9, 1K
    submit="SubmitTask",
    poll="GetTask",
    pace=2.0,  # "poll every 2-5 s"
    poll_options={"wait": 0},
    idempotency_key=_idempotency_key,
    batch={"n": 2},
    callback=lambda url: {"callback_url": url},
    handler=QingboCallbackHandler,
)


class TestQingboClient(ClientSuite):
    profile = QINGBO

    def test_waits_on_the_server_with_a_fresh_idempotency_key_per_generation(self, nanobanana: Nanobanana) -> None:
        self.generate(nanobanana)
        self.generate(nanobanana)
        sent = submits(nanobanana, self.profile)
        assert [entry["request_headers"].get("prefer") for entry in sent] == ["wait=60", "wait=60"]
        keys = [_idempotency_key(entry) for entry in sent]
        assert None not in keys and len(set(keys)) == 2
        assert nanobanana.requests(operation="GetTask") == []  # the task finished inside the wait window

    @pytest.mark.nanobanana(options={"qingbo": {"insufficient_balance_status": 403}})
    def test_quota_not_enough_is_an_empty_wallet(self, nanobanana: Nanobanana) -> None:
        nanobanana.control.set_balance("qingbo", nanobanana.api_key(), 0)
        with pytest.raises(InsufficientCreditsError):
            self.generate(nanobanana)
        assert [entry["status"] for entry in submits(nanobanana, self.profile)] == [403]

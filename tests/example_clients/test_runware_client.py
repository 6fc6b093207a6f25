"""`simulator.example_clients.runware` against the simulated Runware REST API (every shared behaviour, both modes).

Runware specifics: one route (`POST /v1`) for submits and `getResponse` polls, `sync` delivery by default,
`async` + polling with backoff, and the client-chosen `taskUUID` as the idempotency key (a resend answers
`conflictTaskUUID` and the client collects the results with `getResponse`).
"""

from __future__ import annotations

import itertools
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from example_clients.client_suite import ClientSuite, Entry, Profile, generations, submits
from simulator.example_clients.runware import RunwareClient, RunwareWebhookHandler

if TYPE_CHECKING:
    from simulator.pytest_plugin.session import Nanobanana

pytestmark = pytest.mark.nanobanana(provider="runware")


def _task_uuid(entry: Entry) -> Any:
    body = entry.get("request_body")
    return body[0].get("taskUUID") if isinstance(body, list) and body and isinstance(body[0], dict) else None


RUNWARE = Profile(
    slug="runware",
    client=RunwareClient,
    options={"width": 1376, "height": 768, "number_results": 2},
    size=(1376, 768),
    submit="Tasks",
    poll="Tasks",
    pace=2.0,  # "exponential backoff from 1-2 s"
    poll_options={"delivery": "async"},
    idempotency_key=_task_uuid,
    batch={"number_results": 2},
    submit_match={"0.taskType": "imageInference"},
    poll_match={"0.taskType": "getResponse"},
    callback=lambda url: {"webhook_url": url},
    handler=RunwareWebhookHandler,
    url_ttl_option="default_url_ttl_seconds",
)


class TestRunwareClient(ClientSuite):
    profile = RUNWARE

    def test_async_delivery_polls_with_growing_gaps(self, nanobanana: Nanobanana) -> None:
        self.generate(nanobanana, delivery="async", model="google:4@2", width=None, height=None,
                      resolution="1K", reference_images=["https://example.com/reference.png"], number_results=1)
        polls = [entry for entry in nanobanana.requests("runware", "Tasks") if self.profile.is_poll(entry)]
        gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(polls)]
        assert len(polls) >= 3, "Pro takes 20-60 s: the client polled several times"
        assert gaps == sorted(gaps) and all(2.0 <= gap <= 10.0 for gap in gaps), gaps

    def test_a_resent_task_uuid_is_collected_not_regenerated(self, nanobanana: Nanobanana) -> None:
        task_uuid = str(uuid.uuid4())
        first = self.generate(nanobanana, task_uuid=task_uuid)
        second = self.generate(nanobanana, task_uuid=task_uuid)
        assert [image.id for image in second.images] == [image.id for image in first.images]
        assert generations(nanobanana, self.profile) == 1
        assert [entry["status"] for entry in submits(nanobanana, self.profile)] == [200, 400]  # conflictTaskUUID

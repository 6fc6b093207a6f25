"""The session the inspector tests look at: what a client with a few mistakes leaves behind on Civitai.

A generation meets a 429 from a fault rule (and retries after Retry-After), polls too fast, gets its webhook
refused once (a 500, then a retry that lands); a second submit breaks the request schema (an aspect ratio
Civitai does not take, answered with the nearest one); a third has its prompt blocked by the content filter.
Then the clock moves on so every task reaches its terminal state. This module holds no tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from conftest import nb2_body

from simulator.control_client import ControlClient
from simulator.testing.receiver import WebhookReceiver

KEY = "sk-inspector-secret-key-0042"
WORKFLOWS = "/v2/consumer/workflows"
RATE_LIMIT = {"name": "first-submit-429", "match": {"operation": "SubmitWorkflow"}, "when": {"times": 1},
              "do": {"error": "rate_limited", "retry_after": 2}}


@dataclass
class Session:
    workflow: dict[str, Any]
    blocked: dict[str, Any]
    rejected_seq: int


def run_session(base_url: str, control: ControlClient, receiver: WebhookReceiver, advance: bool = True) -> Session:
    """Drive the session against the Civitai simulator at `base_url` (its control plane is `control`)."""
    control.add_faults(RATE_LIMIT)
    receiver.script(500)
    body = nb2_body(aspectRatio="16:9", seed=42)
    body["callbacks"] = [{"url": receiver.url, "type": ["workflow:*"]}]
    with httpx.Client(base_url=f"{base_url}/civitai", headers={"Authorization": f"Bearer {KEY}"}) as api:
        assert api.post(WORKFLOWS, json=body).status_code == 429
        control.advance(2)
        workflow = api.post(WORKFLOWS, json=body).json()
        api.get(f"{WORKFLOWS}/{workflow['id']}")  # at once: sooner than the 2 s Civitai's guide asks for
        rejected = api.post(WORKFLOWS, json=nb2_body(aspectRatio="7:3"))
        assert rejected.status_code == 400
        blocked = api.post(WORKFLOWS, json=nb2_body(prompt="[sim:block] a banana")).json()
        if advance:
            control.advance(60)
            api.get(f"{WORKFLOWS}/{workflow['id']}")
            control.flush_webhooks()
    rejected_seq = control.journal(status=400)[-1]["seq"]
    return Session(workflow=workflow, blocked=blocked, rejected_seq=rejected_seq)

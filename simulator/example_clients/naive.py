"""DELIBERATELY NAIVE clients. Do not copy them: they are here so the rehearsals have something to catch.

`NaiveCivitaiClient` "works" on a good day, and does everything the careful `civitai` client avoids:

- ignores `Retry-After`: a 429 is retried at once, again and again;
- retries everything the same way, 400 / 401 / 403 (insufficient Buzz) and content blocks included;
- polls the workflow as fast as it can, with no pause and no use of `wait=`;
- resubmits after a dropped connection without `externalId`, so a lost answer becomes a second workflow
  (and a second charge);
- never refreshes an expired image URL, and silently drops images that were blocked in a batch.

For the other providers, `Naive` takes the manners out of a careful client while keeping its knowledge of
the protocol (`NaiveQingboClient`, `NaiveRunwareClient`, `NaiveRunwareSocketClient`, `NaiveCrunClient`,
`NaiveFoxapiClient`, `NaiveEvolinkClient`, `NaiveGeminiClient`): it never sleeps (no backoff, no `Retry-After`,
polls without a pause), retries every refusal up to 20 times, resends a submit whose answer was lost, and never
asks for a fresh URL. Whatever idempotency key the provider requires in the body stays, so those clients
resubmit safely by accident.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from simulator.example_clients.common import BaseClient, Image, NanoBananaError, Result, RetryPolicy
from simulator.example_clients.crun import CrunClient
from simulator.example_clients.evolink import EvolinkClient
from simulator.example_clients.foxapi import FoxapiClient
from simulator.example_clients.gemini import GeminiClient
from simulator.example_clients.qingbo import QingboClient
from simulator.example_clients.runware import RunwareClient
from simulator.example_clients.runware_ws import RunwareSocketClient

TERMINAL = {"succeeded", "failed", "expired", "canceled"}


class NaiveCivitaiClient:
    def __init__(self, api_key: str, *, base_url: str = "https://orchestration.civitai.com",
                 http: httpx.Client | None = None, max_tries: int = 20, max_polls: int = 10_000) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=30)
        self.max_tries = max_tries  # only so that a rehearsal ends; the pattern is "retry until it works"
        self.max_polls = max_polls

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        last = "no answer"
        for _ in range(self.max_tries):
            try:
                response = self.http.request(method, self.base_url + path, json=body,
                                             headers={"Authorization": f"Bearer {self.api_key}"})
            except httpx.HTTPError as exc:  # dropped connection: just send it again (a new workflow!)
                last = repr(exc)
                continue
            if response.status_code in (200, 202):
                workflow: dict[str, Any] = response.json()
                return workflow
            last = f"HTTP {response.status_code}: {response.text[:200]}"  # 400, 403, 429, 500: all "try again"
        raise RuntimeError(f"civitai request failed: {last}")

    def generate(self, prompt: str, *, model: str = "nano-banana-2", num_images: int = 1, **options: Any) -> Result:
        step_input = {"engine": "google", "model": model, "prompt": prompt, "numImages": num_images, **options}
        workflow = self._call("POST", "/v2/consumer/workflows", {"steps": [{"$type": "imageGen", "input": step_input}]})
        for _ in range(self.max_polls):  # as fast as possible
            if workflow["status"] in TERMINAL:
                break
            workflow = self._call("GET", f"/v2/consumer/workflows/{workflow['id']}")
        if workflow["status"] != "succeeded":
            raise RuntimeError(f"workflow {workflow['id']} {workflow['status']}")
        images = []
        for step in workflow["steps"]:
            for blob in step["output"]["images"]:
                if blob.get("url"):  # blocked images just disappear
                    response = self.http.get(blob["url"], follow_redirects=True)
                    response.raise_for_status()  # an expired URL is fatal
                    images.append(Image(response.content, blob["url"], response.headers.get("content-type", "")))
        return Result("civitai", workflow["id"], model, images)


# "Retry until it works", bounded only so that a rehearsal ends.
IMPATIENT = RetryPolicy(attempts=20, base_delay=0.0, max_delay=0.0, budget=math.inf, jitter=0.0)


def _never_sleep(seconds: float) -> None:
    """What a client without manners does instead of waiting."""


class Naive(BaseClient):
    """Mixed in before a careful client (`class NaiveX(Naive, XClient)`), it undoes that client's care."""

    def __init__(self, api_key: str, **options: Any) -> None:
        super().__init__(api_key, **{**options, "retry": IMPATIENT, "sleep": _never_sleep})

    @staticmethod
    def retryable(error: NanoBananaError) -> bool:
        return True  # 400, 401, 402, content blocks: "try again"

    def request(self, method: str, path: str, *, idempotent: bool = True, **options: Any) -> dict[str, Any]:
        return super().request(method, path, idempotent=True, **options)  # a lost answer: just send it again

    def wait_for(self, state: Any, fetch: Callable[[], Any], done: Callable[[Any], bool], pace: Iterator[float],
                 what: str, *, started: float) -> Any:
        return super().wait_for(state, fetch, done, itertools.repeat(0.0), what, started=started)  # no pause

    def download(self, url: str, *, refresh: Callable[[], str | None] | None = None) -> tuple[bytes, str]:
        return super().download(url)  # an expired link is the end of it


class NaiveQingboClient(Naive, QingboClient):
    pass


class NaiveRunwareClient(Naive, RunwareClient):
    pass


class NaiveRunwareSocketClient(Naive, RunwareSocketClient):
    pass


class NaiveCrunClient(Naive, CrunClient):
    pass


class NaiveFoxapiClient(Naive, FoxapiClient):
    pass


class NaiveEvolinkClient(Naive, EvolinkClient):
    pass


class NaiveGeminiClient(Naive, GeminiClient):
    pass

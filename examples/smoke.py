"""Quick self-check of the example clients against an in-process simulator (to be replaced by plugin-based tests).

    .venv/bin/python -m examples.smoke            # every provider
    .venv/bin/python -m examples.smoke civitai    # one

Each client gets `sleep` = advance the simulator's virtual clock and `clock` = read it, so queue time and
backoff pass instantly. Every check resets the simulator, arranges one situation (a fault rule, an empty
wallet, a blocked prompt, …), runs `generate()` and reads the journal. Exit status 1 if a check failed.
"""

from __future__ import annotations

import io
import itertools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image as PILImage

from examples import _common as c
from examples.civitai_client import CivitaiCallbackHandler, CivitaiClient
from examples.crun_client import CrunCallbackHandler, CrunClient
from examples.evolink_client import EvolinkCallbackHandler, EvolinkClient
from examples.foxapi_client import FoxapiClient
from examples.naive_client import NaiveCivitaiClient
from examples.qingbo_client import QingboCallbackHandler, QingboClient
from examples.runware_client import RunwareClient, RunwareWebhookHandler
from simulator.clock import VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.sim import Simulator
from simulator.testing import WebhookReceiver

KEY = "sim-key"
# provider: (client class, happy-path options, expected size, images, submit operation, callback option, handler)
PROVIDERS: dict[str, tuple[Any, ...]] = {
    "civitai": (CivitaiClient, {"aspect_ratio": "16:9", "num_images": 2}, (1376, 768), 2, "SubmitWorkflow",
                lambda url: {"callbacks": [{"url": url, "type": ["workflow:*"]}]}, CivitaiCallbackHandler),
    "qingbo": (QingboClient, {"aspect_ratio": "16:9", "n": 2}, (1376, 768), 2, "SubmitTask",
               lambda url: {"callback_url": url}, QingboCallbackHandler),
    "runware": (RunwareClient, {"width": 1376, "height": 768, "number_results": 2}, (1376, 768), 2, "Tasks",
                lambda url: {"webhook_url": url}, RunwareWebhookHandler),
    "crun": (CrunClient, {"aspect_ratio": "16:9"}, (1344, 768), 1, "CreateTask",
             lambda url: {"callback_url": url}, CrunCallbackHandler),
    "foxapi": (FoxapiClient, {"aspect_ratio": "16:9", "resolution": "1K"}, (1376, 768), 1, "CreateImageGeneration",
               None, None),
    "evolink": (EvolinkClient, {"size": "16:9", "quality": "1K"}, (1376, 768), 1, "CreateImageGeneration",
                lambda url: {"callback_url": url}, EvolinkCallbackHandler),
}
IDEMPOTENT = {"civitai", "qingbo", "runware"}


class Harness:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.control = ControlClient(server.url)

    def reset(self) -> float:
        self.control.clear_scenarios()  # a loaded scenario survives a reset
        self.control.reset()
        return self.control.now()

    def client(self, slug: str, **kwargs: Any) -> c.BaseClient:
        cls = PROVIDERS[slug][0]
        return cls(KEY, base_url=self.server.provider_url(slug), sleep=self.control.advance, clock=self.control.now,
                   **kwargs)

    def generate(self, slug: str, prompt: str = "a banana astronaut", client: Any = None, **extra: Any) -> c.Result:
        return (client or self.client(slug)).generate(prompt, **{**PROVIDERS[slug][1], **extra})

    def submit_rule(self, slug: str, do: dict[str, Any], when: dict[str, Any] | None = None) -> None:
        match: dict[str, Any] = {"provider": slug, "operation": PROVIDERS[slug][4]}
        if slug == "runware":
            match["body"] = {"0.taskType": "imageInference"}  # Runware's one route also carries getResponse polls
        self.control.add_faults({"match": match, "when": when or {}, "do": do})

    def submits(self, slug: str) -> list[dict[str, Any]]:
        entries = self.control.journal(provider=slug, operation=PROVIDERS[slug][4])
        if slug == "runware":
            entries = [e for e in entries if (e.get("request_body") or [{}])[0].get("taskType") == "imageInference"]
        return entries

    def tasks(self, slug: str) -> int:
        """Generations the provider started, counted as submits (Runware's engine tasks are per image)."""
        per_submit = PROVIDERS[slug][3] if slug == "runware" else 1
        return len(self.control.tasks(slug)) // per_submit


def expect_error(kind: type[Exception], run: Callable[[], object]) -> Exception:
    try:
        run()
    except kind as exc:
        return exc
    except Exception as exc:
        raise AssertionError(f"expected {kind.__name__}, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"expected {kind.__name__}, got a result")


# ------------------------------------------------------------------------------------------------ checks


def check_happy(h: Harness, slug: str) -> str:
    start = h.reset()
    result = h.generate(slug)
    sizes = [PILImage.open(io.BytesIO(image.data)).size for image in result.images]
    _, _, size, count, *_ = PROVIDERS[slug]
    assert sizes == [size] * count, f"sizes {sizes}, expected {count} x {size}"
    polls = [e["at"] for e in h.control.journal(provider=slug) if e["operation"] != PROVIDERS[slug][4]
             and "Download" not in e["operation"] and "Blob" not in e["operation"]]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(polls)]
    return (f"{count} x {size[0]}x{size[1]}, cost {result.cost}, {h.control.now() - start:.1f} s simulated, "
            f"poll gaps {gaps or 'none (server-side wait)'}")


def check_retry_after(h: Harness, slug: str) -> str:
    h.reset()
    h.submit_rule(slug, {"error": "rate_limited", "retry_after": 7}, {"times": 1})
    h.generate(slug)
    first, second = h.submits(slug)[:2]
    assert first["status"] == 429 and second["at"] - first["at"] >= 7, "retried before Retry-After"
    return f"429 then resent after {second['at'] - first['at']:.1f} s (Retry-After 7)"


def check_no_retry(h: Harness, slug: str) -> str:
    notes = []
    for label, arrange, kind in (
        ("empty wallet", lambda: h.control.set_balance(slug, KEY, 0), c.InsufficientCreditsError),
        ("401", lambda: h.submit_rule(slug, {"error": "unauthorized"}), c.AuthError),
        ("bad request", lambda: h.submit_rule(slug, {"error": "bad_request"}), c.ValidationError),
        ("submit-time block", lambda: h.submit_rule(slug, {"error": "content_blocked"}), c.ContentBlockedError),
    ):
        h.reset()
        arrange()
        expect_error(kind, lambda: h.generate(slug))
        sent = len(h.submits(slug))
        assert sent == 1, f"{label}: {sent} submits"
        notes.append(f"{label} → {kind.__name__}")
    h.reset()
    expect_error(c.ContentBlockedError, lambda: h.generate(slug, "a banana [sim:block]"))
    assert len(h.submits(slug)) == 1 and h.tasks(slug) == 1
    return ", ".join([*notes, "blocked task → ContentBlockedError"]) + "; one submit each"


def check_5xx_budget(h: Harness, slug: str) -> str:
    start = h.reset()
    h.submit_rule(slug, {"error": "service_unavailable"})
    expect_error(c.UpstreamError, lambda: h.generate(slug))
    at = [e["at"] - start for e in h.submits(slug)]
    policy = c.RetryPolicy()
    assert len(at) <= policy.attempts and at[-1] <= policy.budget, at
    return f"{len(at)} tries at {[round(t, 1) for t in at]} s, then UpstreamError"


def check_dropped_submit(h: Harness, slug: str) -> str:
    h.reset()
    h.submit_rule(slug, {"network": "reset"}, {"times": 1})
    if slug in IDEMPOTENT:
        h.generate(slug)
        outcome = "resent with its idempotency key, result returned"
    else:
        expect_error(c.SubmitUncertainError, lambda: h.generate(slug))
        outcome = "SubmitUncertainError (no idempotency key: not resent)"
    tasks, sent = h.tasks(slug), len(h.submits(slug))
    assert tasks == 1, f"{tasks} tasks created"
    return f"{outcome}; {sent} submit(s), {tasks} task"


def check_partial(h: Harness, slug: str) -> str:
    h.reset()
    h.submit_rule(slug, {"task": "partial_block", "images": [1]})
    result = h.generate(slug)
    assert len(result.images) == 1 and len(result.blocked) == 1, (len(result.images), result.blocked)
    return f"1 image + blocked {result.blocked[0]}"


def check_expired_url(h: Harness, slug: str) -> str:
    h.reset()
    h.control.set_options(slug, url_ttl_seconds=5)

    dawdled: set[str] = set()

    def slow_download(request: httpx.Request) -> None:  # the client dawdles 10 s before each first download
        path = request.url.path
        if "/blobs/" in path and not path.endswith("/refresh") and "/content/" not in path and path not in dawdled:
            dawdled.add(path)
            h.control.advance(10)

    with httpx.Client(timeout=30, event_hooks={"request": [slow_download]}) as http:
        result = h.generate(slug, client=h.client(slug, http=http))
    refreshes = len(h.control.journal(provider=slug, operation="RefreshBlob"))
    assert refreshes >= 1 and len(result.images) == 2
    return f"URL expired before download: {refreshes} blob refreshes, both images downloaded"


def check_webhooks(h: Harness, slug: str) -> str:
    h.reset()
    h.control.add_faults({"match": {"provider": slug, "operation": "webhook"}, "do": {"webhook": "duplicate"}})
    events: list[dict[str, Any]] = []
    with WebhookReceiver() as hook:
        h.generate(slug, **PROVIDERS[slug][5](hook.url))
        h.control.advance(60)
        h.control.flush_webhooks()
        handler = PROVIDERS[slug][6](events.append)
        accepted = [handler.handle(r.body) for r in hook.requests]
    assert len(hook.requests) > len(events) >= 1 and sum(accepted) == len(events), (len(hook.requests), len(events))
    return f"{len(hook.requests)} deliveries (every one duplicated) → {len(events)} events handled"


def check_naive(h: Harness, slug: str) -> str:
    notes = []

    def reset() -> None:
        h.reset()
        h.control.set_tick(0.25)  # the naive client never sleeps: let the clock creep on with each request

    reset()
    h.submit_rule(slug, {"error": "rate_limited", "retry_after": 7}, {"times": 1})
    naive = NaiveCivitaiClient(KEY, base_url=h.server.provider_url(slug))
    naive.generate("a banana astronaut", num_images=2)
    first, second = h.submits(slug)[:2]
    polls = h.control.journal(provider=slug, operation="GetWorkflow")
    notes.append(f"429 resent after {second['at'] - first['at']:.2f} s (Retry-After 7); {len(polls)} polls, "
                 f"{polls[-1]['at'] - polls[0]['at']:.0f} s")
    reset()
    h.control.set_balance(slug, KEY, 0)
    expect_error(RuntimeError, lambda: naive.generate("a banana astronaut"))
    notes.append(f"empty wallet: {len(h.submits(slug))} submits")
    reset()
    h.submit_rule(slug, {"network": "reset"}, {"times": 1})
    naive.generate("a banana astronaut")
    notes.append(f"dropped submit: {h.tasks(slug)} workflows")
    return "; ".join(notes)


SCENARIOS = ("rate-limit-storm", "flaky-upstream", "dropped-connections", "slow-queue", "expired-urls",
             "partial-batch-block", "content-blocked", "empty-wallet", "chaos")


def early_retries(h: Harness, slug: str) -> int:
    """429s answered with Retry-After that the next request (a sequential client's retry) did not honour."""
    entries = [e for e in h.control.journal(provider=slug, limit=100_000) if e.get("kind") == "http"]
    early = 0
    for answer, following in itertools.pairwise(entries):
        hint = (answer.get("response_headers") or {}).get("retry-after")
        if answer["status"] == 429 and hint and following["at"] - answer["at"] < float(hint) - 1e-6:
            early += 1
    return early


def check_scenarios(h: Harness, slug: str, runs: int = 4) -> str:
    lines = []
    for name in SCENARIOS:
        h.reset()
        h.control.load_scenario(name)
        outcomes: dict[str, int] = {}
        for _ in range(runs):
            try:
                result = h.generate(slug)
                label = "partial" if result.partial else "ok"
            except c.NanoBananaError as exc:
                label = type(exc).__name__
            outcomes[label] = outcomes.get(label, 0) + 1
        tasks, early = h.tasks(slug), early_retries(h, slug)
        assert tasks <= runs and early == 0, f"{name}: {tasks} generations for {runs} calls, {early} early retries"
        faulted = h.control.journal(provider=slug, faulted="true", limit=100_000)
        throttled = len(h.control.journal(provider=slug, status=429, limit=100_000))
        lines.append(f"{name} {dict(sorted(outcomes.items()))} ({len(faulted)} faulted, {throttled} x 429)")
    return "; ".join(lines)


CHECKS: list[tuple[str, Callable[[Harness, str], str], set[str]]] = [
    ("happy path", check_happy, set(PROVIDERS)),
    ("429 waits Retry-After", check_retry_after, set(PROVIDERS)),
    ("never retried", check_no_retry, set(PROVIDERS)),
    ("5xx bounded", check_5xx_budget, set(PROVIDERS)),
    ("dropped submit", check_dropped_submit, set(PROVIDERS)),
    ("partial batch", check_partial, {"civitai", "qingbo", "runware"}),
    ("expired URL", check_expired_url, {"civitai"}),
    ("webhook duplicates", check_webhooks, {"civitai", "qingbo", "runware", "crun", "evolink"}),
    ("NAIVE client", check_naive, {"civitai"}),
    ("scenarios x4", check_scenarios, set(PROVIDERS)),
]


def main(argv: list[str]) -> int:
    only = set(argv) or set(PROVIDERS)
    failures = 0
    with LiveServer(Simulator(clock=VirtualClock(autojump=True))) as server:
        harness = Harness(server)
        for slug in PROVIDERS:
            if slug not in only:
                continue
            print(slug)
            sys.stdout.flush()
            for name, check, providers in CHECKS:
                if slug not in providers:
                    continue
                try:
                    print(f"  ok   {name}: {check(harness, slug)}")
                except Exception as exc:
                    failures += 1
                    print(f"  FAIL {name}: {type(exc).__name__}: {exc}")
                    traceback.print_exc(limit=-3, file=sys.stdout)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

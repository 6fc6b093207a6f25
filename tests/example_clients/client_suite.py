"""What the six example-client suites share: a profile per provider and the behaviours every client must show.

Each `test_<slug>_client.py` declares its provider's `Profile` (how its client is called and what its docs
promise: image size, poll pace, idempotency, batches, callbacks) and subclasses `ClientSuite`, which holds
the tests common to every careful client. Only the public plugin surface is used: the `nanobanana` fixture
and marker, and the control plane it exposes, as a user of the package would write them.

Every client gets the fixture's `sleep` (the virtual clock moves by each pause instead of waiting) and its
clock (`nanobanana.now`, so `generation_timeout` and retry budgets are measured on the simulated timeline).
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
from PIL import Image as PILImage

from simulator.example_clients.common import (
    AuthError,
    BaseClient,
    CallbackHandler,
    ContentBlockedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    NanoBananaError,
    RetryPolicy,
    SubmitUncertainError,
    UpstreamError,
    ValidationError,
)

if TYPE_CHECKING:  # only the fixture's type; tests never import the simulator's internals
    from simulator.pytest_plugin.session import Nanobanana

Entry = dict[str, Any]
PROMPT = "a banana astronaut above the earth"
BLOCKED_PROMPT = "a banana astronaut [sim:block]"  # the simulator's content-filter trigger (README)
RETRY_AFTER = 7.0
# The shipped failure scenarios (contracts/scenarios/) but chaos, which has a test of its own, and
# webhook-outage, which does nothing to a client that registers no callback.
SCENARIOS = ("rate-limit-storm", "flaky-upstream", "dropped-connections", "slow-queue", "expired-urls",
             "partial-batch-block", "content-blocked", "empty-wallet")
SCENARIO_RUNS = 1
CHAOS_RUNS = 2


@dataclass(frozen=True)
class Profile:
    """One provider as its careful client sees it."""

    slug: str
    client: type[BaseClient]
    options: Mapping[str, Any]  # generate() keywords of the happy path
    size: tuple[int, int]  # the documented pixel size those options give
    submit: str  # the operation that creates work
    poll: str  # the operation that reads a task's state
    pace: float  # the shortest gap between polls the provider's docs ask for (seconds)
    poll_options: Mapping[str, Any] = field(default_factory=dict)  # generate() keywords that make the client poll
    # The idempotency key a submit carried, read from its journal entry; None: the provider offers none.
    idempotency_key: Callable[[Entry], Any] | None = None
    batch: Mapping[str, Any] | None = None  # generate() keywords of a two-image batch; None: one image per task
    submit_match: Mapping[str, Any] = field(default_factory=dict)  # extra `match.body` so a rule hits submits only
    poll_match: Mapping[str, Any] = field(default_factory=dict)  # the same for status reads
    callback: Callable[[str], Mapping[str, Any]] | None = None  # generate() keywords that register a callback URL
    handler: type[CallbackHandler] | None = None
    url_ttl_option: str = "url_ttl_seconds"  # the provider option giving result URLs' lifetime
    # Where the provider journals a resend under the same idempotency key as a violation (Runware refuses a
    # reused taskUUID with its documented 400 `conflictTaskUUID`); the resend is the careful path, not a bug.
    refresh_operation: str | None = None  # how an expired result URL is exchanged for a fresh one, if it can be

    @property
    def images(self) -> int:
        return int(self.options.get(self.count_option, 1)) if self.batch else 1

    @property
    def count_option(self) -> str:
        return next(iter(self.batch)) if self.batch else ""

    def is_submit(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") == self.submit and _matches(entry, self.submit_match)

    def is_poll(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("operation") == self.poll and _matches(entry, self.poll_match)


def _matches(entry: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    # Runware has one route for everything; a submit or a poll is told apart by what its first task is.
    return all(_at(entry.get("request_body"), path) == value for path, value in match.items())


def _at(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        elif isinstance(document, dict):
            document = document.get(part)
        else:
            return None
    return document


@dataclass(frozen=True)
class Refusal:
    """An answer a careful client must surface at once and never retry."""

    name: str
    arrange: Callable[[Nanobanana, Profile], object]
    error: type[NanoBananaError]
    prompt: str = PROMPT


def _forced(kind: str) -> Callable[[Nanobanana, Profile], None]:
    return lambda nanobanana, profile: submit_fault(nanobanana, profile, {"error": kind})


REFUSALS = [
    Refusal("empty-wallet", lambda nb, p: nb.control.set_balance(p.slug, nb.api_key(p.slug), 0),
            InsufficientCreditsError),
    # Another key is the only valid one: the client's own key is refused the way a revoked key is.
    Refusal("invalid-key", lambda nb, p: nb.control.set_tokens(p.slug, ["some-other-key"]), AuthError),
    Refusal("bad-request", _forced("bad_request"), ValidationError),
    Refusal("blocked-at-submit", _forced("content_blocked"), ContentBlockedError),
    Refusal("blocked-after-processing", lambda nb, p: None, ContentBlockedError, BLOCKED_PROMPT),
]


# -- helpers on the fixture ------------------------------------------------------------------------------


def add_fault(nanobanana: Nanobanana, profile: Profile, operation: str, do: Mapping[str, Any],
              when: Mapping[str, Any] | None = None) -> None:
    """A fault rule on the provider's submits (`operation="submit"`) or status reads (`"poll"`)."""
    name, body = (profile.submit, profile.submit_match) if operation == "submit" else (profile.poll, profile.poll_match)
    match: dict[str, Any] = {"provider": profile.slug, "operation": name}
    if body:
        match["body"] = dict(body)
    nanobanana.control.add_faults({"match": match, "when": dict(when or {}), "do": dict(do)})


def submit_fault(nanobanana: Nanobanana, profile: Profile, do: Mapping[str, Any],
                 when: Mapping[str, Any] | None = None) -> None:
    add_fault(nanobanana, profile, "submit", do, when)


def submits(nanobanana: Nanobanana, profile: Profile) -> list[Entry]:
    return [entry for entry in nanobanana.requests(profile.slug, profile.submit) if profile.is_submit(entry)]


def generations(nanobanana: Nanobanana, profile: Profile) -> int:
    """Generations the provider started (and charged). Runware's engine keeps one task per image."""
    tasks = nanobanana.tasks(profile.slug)
    per_generation = profile.images if profile.slug == "runware" else 1
    return len(tasks) // per_generation


def journal_lines(entries: list[Entry]) -> str:
    return "\n".join(f"  {entry['at']:.2f} {entry['method']} {entry['path']} → {entry['status']} "
                     f"[{entry.get('operation')}]" for entry in entries)


def image_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as image:
        return image.size


def early_retries(entries: list[Entry]) -> list[Entry]:
    """429s with Retry-After whose next request (a sequential client's retry) came sooner than it said."""
    early = []
    for answer, following in itertools.pairwise(entries):
        hint = (answer.get("response_headers") or {}).get("retry-after")
        if answer["status"] == 429 and hint and following["at"] - answer["at"] < float(hint) - 1e-6:
            early.append(answer)
    return early


@contextmanager
def dawdling_http(nanobanana: Nanobanana, seconds: float) -> Iterator[httpx.Client]:
    """An httpx client for the example client that lets `seconds` of clock pass before its first download.

    Downloads are the only requests the clients send without their API key (the signed URL is the
    credential), which is how the hook tells them apart. One pause expires every URL of the result at once.
    """
    paused = False

    def before(request: httpx.Request) -> None:
        nonlocal paused
        keyed = "authorization" in request.headers or "x-api-key" in request.headers
        if not keyed and not paused:
            paused = True
            nanobanana.advance(seconds)

    with httpx.Client(timeout=30, event_hooks={"request": [before]}) as http:
        yield http


# -- the behaviours every careful client must show ---------------------------------------------------------


class ClientSuite:
    """Tests common to the six careful clients; a module subclasses it as `Test<Provider>Client`."""

    profile: ClassVar[Profile]
    http: httpx.Client

    @pytest.fixture(autouse=True)
    def _shared_http(self, http: httpx.Client) -> None:
        self.http = http

    def client(self, nanobanana: Nanobanana, *, api_key: str | None = None, **options: Any) -> BaseClient:
        slug = self.profile.slug
        options.setdefault("http", self.http)
        return self.profile.client(
            api_key or nanobanana.api_key(slug), base_url=nanobanana.base_url(slug), sleep=nanobanana.sleep,
            clock=nanobanana.now, rng=random.Random(0), **options,
        )

    def generate(self, nanobanana: Nanobanana, prompt: str = PROMPT, *, client: BaseClient | None = None,
                 **options: Any) -> Any:
        with client or self.client(nanobanana) as used:
            return used.generate(prompt, **{**self.profile.options, **options})

    # -- success

    @pytest.mark.nanobanana(strict=True)
    def test_generates_images_of_the_documented_size(self, nanobanana: Nanobanana) -> None:
        """Happy path under strict checking: no undocumented header or query parameter either."""
        result = self.generate(nanobanana)
        assert [image_size(image.data) for image in result.images] == [self.profile.size] * self.profile.images
        assert not result.partial and result.task_id
        assert all(image.content_type.startswith("image/") for image in result.images)
        submitted = submits(nanobanana, self.profile)
        assert [entry["status"] for entry in submitted] == [200]
        assert generations(nanobanana, self.profile) == 1

    def test_polls_at_the_documented_pace_and_stops_when_done(self, nanobanana: Nanobanana) -> None:
        self.generate(nanobanana, **self.profile.poll_options)
        polls = [entry for entry in nanobanana.requests(self.profile.slug, self.profile.poll)
                 if self.profile.is_poll(entry)]
        assert polls, "the task took clock time, so the client polled"
        gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(polls)]
        assert all(gap >= self.profile.pace for gap in gaps), f"polled faster than every {self.profile.pace} s: {gaps}"
        # The last read showed the terminal state; reading on after it would only cost requests.
        finished = max(task["timeline"]["finished_at"] for task in nanobanana.tasks(self.profile.slug))
        assert [poll for poll in polls if poll["at"] > finished][1:] == []

    # -- 429 and 5xx

    def test_waits_out_retry_after_on_a_429(self, nanobanana: Nanobanana) -> None:
        submit_fault(nanobanana, self.profile, {"error": "rate_limited", "retry_after": RETRY_AFTER}, {"times": 1})
        self.generate(nanobanana)
        first, second = submits(nanobanana, self.profile)
        assert (first["status"], second["status"]) == (429, 200)
        assert second["at"] - first["at"] >= RETRY_AFTER
        assert generations(nanobanana, self.profile) == 1

    def test_gives_up_on_a_5xx_storm_within_its_retry_budget(self, nanobanana: Nanobanana) -> None:
        start = nanobanana.now()
        submit_fault(nanobanana, self.profile, {"error": "service_unavailable"})
        with pytest.raises(UpstreamError):
            self.generate(nanobanana)
        tries = submits(nanobanana, self.profile)
        policy = RetryPolicy()
        assert 2 <= len(tries) <= policy.attempts, journal_lines(tries)
        assert tries[-1]["at"] - start <= policy.budget
        gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(tries)]
        assert gaps[0] >= policy.base_delay and gaps == sorted(gaps), f"no exponential backoff: {gaps}"
        assert generations(nanobanana, self.profile) == 0

    def test_rides_out_a_short_5xx_burst(self, nanobanana: Nanobanana) -> None:
        submit_fault(nanobanana, self.profile, {"error": "bad_gateway"}, {"times": 2})
        result = self.generate(nanobanana)
        assert len(result.images) == self.profile.images
        assert [entry["status"] for entry in submits(nanobanana, self.profile)] == [502, 502, 200]
        assert generations(nanobanana, self.profile) == 1

    def test_gives_up_on_a_task_that_never_finishes(self, nanobanana: Nanobanana) -> None:
        """A task stuck in processing ends in the client's own timeout, on the clock, after steady polling."""
        timeout = 120.0
        submit_fault(nanobanana, self.profile, {"task": "never_finish"})
        with pytest.raises(GenerationTimeoutError):
            self.generate(nanobanana, client=self.client(nanobanana, generation_timeout=timeout),
                          **self.profile.poll_options)
        polls = [entry for entry in nanobanana.requests(self.profile.slug, self.profile.poll)
                 if self.profile.is_poll(entry)]
        assert polls and polls[-1]["at"] - submits(nanobanana, self.profile)[0]["at"] <= timeout
        assert generations(nanobanana, self.profile) == 1 and len(submits(nanobanana, self.profile)) == 1

    def test_the_generation_timeout_counts_from_the_first_submit(self, nanobanana: Nanobanana) -> None:
        """Time spent waiting out a 429 on the submit is part of the generation's time budget."""
        timeout, retry_after = 120.0, 60.0
        submit_fault(nanobanana, self.profile, {"error": "rate_limited", "retry_after": retry_after}, {"times": 1})
        submit_fault(nanobanana, self.profile, {"task": "never_finish"})
        with pytest.raises(GenerationTimeoutError):
            self.generate(nanobanana, client=self.client(nanobanana, generation_timeout=timeout),
                          **self.profile.poll_options)
        first, second = submits(nanobanana, self.profile)
        assert first["status"] == 429 and 200 <= second["status"] < 300
        last = nanobanana.requests(self.profile.slug)[-1]
        assert timeout - 30 <= last["at"] - first["at"] <= timeout, journal_lines([first, second, last])

    # -- refusals that must never be retried

    @pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
    def test_never_retries_a_refusal(self, nanobanana: Nanobanana, refusal: Refusal) -> None:
        refusal.arrange(nanobanana, self.profile)
        with pytest.raises(refusal.error):
            self.generate(nanobanana, refusal.prompt)
        sent = submits(nanobanana, self.profile)
        assert len(sent) == 1, f"{refusal.name}: resubmitted\n{journal_lines(sent)}"
        expected_generations = 1 if refusal.prompt == BLOCKED_PROMPT else 0
        assert generations(nanobanana, self.profile) == expected_generations

    # -- moderation of part of a batch

    def test_reports_a_partially_blocked_batch(self, nanobanana: Nanobanana) -> None:
        """Batches keep the good images and report the withheld one; one-image tasks are blocked outright."""
        if self.profile.batch is None:
            submit_fault(nanobanana, self.profile, {"task": "partial_block", "images": [0]})
            with pytest.raises(ContentBlockedError):
                self.generate(nanobanana)
            assert len(submits(nanobanana, self.profile)) == 1
            return
        submit_fault(nanobanana, self.profile, {"task": "partial_block", "images": [1]})
        result = self.generate(nanobanana, **self.profile.batch)
        assert len(result.images) == 1 and len(result.blocked) == 1, result.blocked
        assert result.partial
        assert image_size(result.images[0].data) == self.profile.size

    # -- dropped connections

    def test_a_dropped_submit_never_makes_a_second_generation(self, nanobanana: Nanobanana) -> None:
        submit_fault(nanobanana, self.profile, {"network": "reset"}, {"times": 1})
        key = self.profile.idempotency_key
        if key is None:  # no idempotency: the task may exist, so the client must not resend
            with pytest.raises(SubmitUncertainError):
                self.generate(nanobanana)
            assert len(submits(nanobanana, self.profile)) == 1
        else:  # idempotency: resend under the same key, and the provider returns the same generation
            result = self.generate(nanobanana)
            assert len(result.images) == self.profile.images
            sent = submits(nanobanana, self.profile)
            assert len(sent) == 2
            assert key(sent[0]) is not None and key(sent[0]) == key(sent[1]), "resent under another key"
        assert generations(nanobanana, self.profile) == 1

    def test_a_dropped_poll_is_read_again(self, nanobanana: Nanobanana) -> None:
        add_fault(nanobanana, self.profile, "poll", {"network": "reset"}, {"times": 1})
        result = self.generate(nanobanana, **self.profile.poll_options)
        assert len(result.images) == self.profile.images
        assert generations(nanobanana, self.profile) == 1
        assert len(nanobanana.journal(provider=self.profile.slug, faulted="true")) == 1

    # -- result URLs

    def test_an_expired_result_url(self, nanobanana: Nanobanana) -> None:
        """Civitai refreshes the blob; the others sign a link once, so the client reports it instead of looping."""
        nanobanana.control.set_options(self.profile.slug, **{self.profile.url_ttl_option: 60})
        with dawdling_http(nanobanana, 120) as http:
            client = self.client(nanobanana, http=http)
            if self.profile.refresh_operation:
                result = self.generate(nanobanana, client=client)
                assert [image_size(image.data) for image in result.images] == [self.profile.size] * self.profile.images
                nanobanana.assert_requests(operation=self.profile.refresh_operation, count=self.profile.images)
                return
            with pytest.raises(UpstreamError, match="refused"):
                self.generate(nanobanana, client=client)
        # One re-read of the task for a fresh link (it gives the same one), then the error: no download loop.
        downloads = nanobanana.requests(self.profile.slug, "DownloadImage")
        assert 1 <= len(downloads) <= 2 and {entry["status"] for entry in downloads} == {403}, journal_lines(downloads)
        assert len(submits(nanobanana, self.profile)) == 1

    # -- callbacks

    def test_duplicated_callbacks_are_handled_once(self, nanobanana: Nanobanana) -> None:
        if self.profile.callback is None or self.profile.handler is None:
            pytest.skip(f"{self.profile.slug} documents no callbacks for these models")
        nanobanana.control.add_faults({"match": {"provider": self.profile.slug, "operation": "webhook"},
                                       "do": {"webhook": "duplicate"}})
        receiver = nanobanana.receiver()
        self.generate(nanobanana, **self.profile.callback(receiver.url))
        nanobanana.advance(60)
        nanobanana.flush_webhooks()
        events: list[dict[str, Any]] = []
        handler = self.profile.handler(events.append)
        accepted = [handler.handle(request.body) for request in receiver.requests]
        assert len(receiver.requests) == 2 * len(events) >= 2, "every delivery arrived twice, each handled once"
        assert sum(accepted) == len(events)

    # -- scenarios

    @pytest.mark.nanobanana(scenario="chaos", seed=7)
    def test_survives_chaos(self, nanobanana: Nanobanana) -> None:
        """The marker's way: the scenario is in force from the start of the test."""
        self.assert_survives(nanobanana, CHAOS_RUNS)

    def test_survives_every_shipped_scenario(self, nanobanana: Nanobanana) -> None:
        """Each shipped scenario in turn (loaded through the control plane, which is cheaper than one test item
        each): a result or one of the client's own errors, never more generations than asked for, never a 429
        retried sooner than its Retry-After."""
        outcomes: dict[str, list[str]] = {}
        for name in SCENARIOS:
            nanobanana.control.clear_scenarios()
            nanobanana.control.load_scenario(name)
            # A new account per scenario: its wallet starts as the scenario says and no earlier request
            # counts towards its rate limits (clearing a scenario leaves existing wallets as they are).
            outcomes[name] = self.assert_survives(nanobanana, SCENARIO_RUNS, api_key=f"{nanobanana.api_key()}-{name}")
        # The scenarios really happened: some runs were refused, blocked or came back partial.
        assert {outcome for runs in outcomes.values() for outcome in runs} - {"ok"}, outcomes

    def assert_survives(self, nanobanana: Nanobanana, runs: int, api_key: str | None = None) -> list[str]:
        before = nanobanana.journal(kind="http")
        since = before[-1]["seq"] if before else 0
        generated = generations(nanobanana, self.profile)
        outcomes = []
        for _ in range(runs):
            try:
                result = self.generate(nanobanana, client=self.client(nanobanana, api_key=api_key))
                outcomes.append("partial" if result.partial else "ok")
            except NanoBananaError as exc:  # anything else (KeyError, TypeError …) is a client bug
                outcomes.append(type(exc).__name__)
        assert generations(nanobanana, self.profile) - generated <= runs, outcomes
        exchanges = [entry for entry in nanobanana.requests(self.profile.slug) if entry["seq"] > since]
        early = early_retries(exchanges)
        assert not early, f"retried before Retry-After:\n{journal_lines(early)}"
        return outcomes

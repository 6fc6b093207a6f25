"""`Nanobanana`: the simulator as one test sees it (the object the `nanobanana` fixture gives).

Everything goes through the control plane (`ControlClient`), in both modes, so what a test can do here
any language can do over `/_sim`. The rehearsal runner builds the same object around a user's adapter.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.control_client import ControlClient
from simulator.options import provider_data
from simulator.pytest_plugin import recording, request_check, request_report
from simulator.pytest_plugin.harness import Harness
from simulator.pytest_plugin.settings import MARKER, Settings
from simulator.testing import WebhookReceiver

Entry = dict[str, Any]


class Nanobanana:
    """A simulator reset for one test: where to point the client, the clock, the journal, assertions."""

    def __init__(self, harness: Harness, settings: Settings, *, here: Path | None = None) -> None:
        self.harness = harness
        self.settings = settings
        self.mode = harness.mode
        self.provider = settings.provider
        self.control: ControlClient = harness.control
        self._here = here  # the test file's folder: scenario files are found next to it
        self._receivers: list[WebhookReceiver] = []
        self._expected: list[str] | None = None
        self._started_at = 0.0

    # -- lifecycle (driven by the fixture) ------------------------------------------------------------

    def start(self) -> None:
        """Fresh state for the test: no scenario, tasks or journal; its seed, clock, scenario and options."""
        control, settings = self.control, self.settings
        if self.provider is not None:
            self.harness.sim.provider(self.provider)  # an unknown slug fails here, naming the served ones
        control.clear_scenarios()  # a loaded scenario survives reset by design; each test names its own
        control.reset(seed=settings.seed)
        if not settings.real_clock:
            control.set_autojump(settings.clock == "autojump")
            control.set_tick(settings.tick)
        for name in settings.scenarios:
            control.load_scenario(self._scenario_ref(name))
        # After the scenarios: options the test names itself are the more specific choice.
        for slug, values in settings.options.items():
            control.set_options(slug, **values)
        self._started_at = control.now()
        recording.install(self.harness, settings, self._here)
        self.harness.activate()

    def finish(self) -> None:
        self.harness.deactivate()
        recording.remove(self.harness)
        while self._receivers:
            self._receivers.pop().close()

    def _scenario_ref(self, name: str) -> str:
        """A scenario file (next to the test, or from the working directory) by absolute path, else the name
        of a shipped scenario; the simulator runs in this process, so it can read the file itself."""
        for base in (self._here, Path.cwd()):
            if base is not None and (base / name).is_file():
                return str((base / name).resolve())
        return name

    # -- where the client goes ------------------------------------------------------------------------

    def _slug(self, slug: str | None) -> str:
        chosen = slug or self.provider
        if chosen is None:
            raise ValueError(f"name a provider ({sorted(self.harness.sim.providers)}), or mark the test "
                             f"@pytest.mark.{MARKER}(provider=...)")
        self.harness.sim.provider(chosen)
        return chosen

    def base_url(self, slug: str | None = None) -> str:
        """Live: `http://127.0.0.1:PORT/<slug>`; in-process: `https://<the provider's real host>`."""
        return self.harness.base_url(self._slug(slug))

    def hosts(self, slug: str | None = None) -> list[str]:
        """The provider's real hostnames (routed to the simulator in in-process mode)."""
        return self.harness.hosts(self._slug(slug))

    def api_key(self, slug: str | None = None) -> str:
        """A key the simulated provider accepts (any non-empty key is valid unless a test sets a list)."""
        slug = self._slug(slug)
        digest = hashlib.sha256(f"nanobanana-sim:{slug}".encode()).hexdigest()
        # CRun keys are `ak_` + 32 characters (its CLI checks the format before sending): match it.
        return f"ak_{digest[:32]}" if slug == "crun" else f"sim-{slug}-{digest[:16]}"

    def auth_headers(self, slug: str | None = None) -> dict[str, str]:
        """The provider's documented authentication header carrying `api_key(slug)`."""
        slug = self._slug(slug)
        header = provider_data(slug).get("apiKeyHeader")
        key = self.api_key(slug)
        return {header: key} if header else {"Authorization": f"Bearer {key}"}

    # -- time -------------------------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's clock (POSIX seconds on the simulated timeline)."""
        return self.control.now()

    def elapsed(self) -> float:
        """Clock seconds since the test started."""
        return self.now() - self._started_at

    def advance(self, seconds: float) -> float:
        """Move the virtual clock on; everything due fires first (lifecycles, URL expiry, webhook retries)."""
        return self.control.advance(seconds)

    def sleep(self, seconds: float) -> None:
        """The sleep to inject into a client that sleeps between polls: it moves the virtual clock instead of
        waiting (with the real clock it really sleeps)."""
        if self.settings.real_clock:
            time.sleep(seconds)
        else:
            self.control.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """`sleep` for async clients (`asyncio.sleep`'s replacement)."""
        await asyncio.to_thread(self.sleep, seconds)

    # -- what happened ----------------------------------------------------------------------------------

    def journal(self, **filters: Any) -> list[Entry]:
        """Journal entries of this test (`ControlClient.journal` filters: kind, provider, operation, status …)."""
        return self.control.journal(**filters)

    def requests(self, provider: str | None = None, operation: str | None = None,
                 status: int | Sequence[int] | None = None) -> list[Entry]:
        """The HTTP exchanges the client had with the providers, oldest first."""
        statuses = [status] if isinstance(status, int) else list(status) if status is not None else None
        return self.journal(kind="http", provider=provider, operation=operation, status=statuses)

    def webhooks(self, provider: str | None = None, event: str | None = None,
                 outcome: str | None = None) -> list[Entry]:
        """Callback attempts; `event` is the provider's event, `outcome` delivered / retrying / abandoned /
        dropped / refused."""
        return [
            entry for entry in self.journal(kind="webhook", provider=provider)
            if (event is None or entry["detail"].get("event") == event)
            and (outcome is None or entry["detail"].get("outcome") == outcome)
        ]

    def tasks(self, provider: str | None = None) -> list[Entry]:
        """The engine's view of each task: phase, timeline, outputs, cost, failure."""
        return self.control.tasks(provider)

    def flush_webhooks(self) -> int:
        """Wait for callback attempts already under way; returns how many are still queued."""
        return self.control.flush_webhooks()

    def receiver(self, statuses: Iterable[int] = (), then: int = 200, path: str = "/hook") -> WebhookReceiver:
        """A callback receiver on 127.0.0.1 answering `statuses` in turn, then `then`; closed after the test."""
        receiver = WebhookReceiver(statuses=statuses, then=then, path=path)
        self._receivers.append(receiver)
        return receiver

    # -- the contract check -------------------------------------------------------------------------------

    def expect_violations(self, *paths: str) -> None:
        """This test sends invalid requests on purpose: violations at `paths` (any, if none is given) do not
        fail it; each path given must be broken by some request."""
        self._expected = [*(self._expected or []), *paths]

    def findings(self, *, strict: bool | None = None) -> list[request_check.Finding]:
        return request_check.check(
            self.journal(kind="http"), strict=self.settings.strict if strict is None else strict,
            allow_headers=self.settings.allow_headers, expected_paths=self._expected,
        )

    def contract_report(self) -> str | None:
        """Why this test breaks the provider's contract (or met a simulator answer that breaks it), or None.

        `contract=False` silences the first kind only: a broken answer invalidates any test."""
        broken_answers = request_report.self_check_report(self.journal())
        if not self.settings.contract:
            return broken_answers
        parts = [broken_answers] if broken_answers else []
        findings = self.findings()
        if findings:
            parts.append(request_report.render(findings))
        if self._expected:
            missing = request_check.missing_expected(self.journal(kind="http"), self._expected)
            if missing:
                parts.append(f"nanobanana: expected violations at {', '.join(missing)}, but no request broke them")
        return "\n\n".join(parts) or None

    def ignored_fields_report(self) -> str | None:
        """Outside strict mode, the fields the provider silently dropped: a warning, not a failure."""
        if not self.settings.contract or self.settings.strict:
            return None
        findings = request_check.ignored(self.journal(kind="http"))
        return request_report.ignored_report(findings) if findings else None

    def assert_no_violations(self, *, strict: bool | None = None) -> None:
        __tracebackhide__ = True
        findings = self.findings(strict=strict)
        if findings:
            raise AssertionError(request_report.render(findings))

    # -- assertions on the journal -------------------------------------------------------------------------

    def _line(self, entry: Mapping[str, Any]) -> str:
        offset = f"t+{entry['at'] - self._started_at:.3f}s"
        if entry.get("kind") == "webhook":
            detail = entry.get("detail", {})
            what = (f"{entry.get('method')} {entry.get('path')} → {entry.get('status')}  "
                    f"[{entry.get('provider')} webhook {detail.get('event')}, attempt {detail.get('attempt')}, "
                    f"{detail.get('outcome')}]")
        else:
            what = request_report.request_line(entry)
        return f"  #{entry['seq']:<5} {offset:<10} {what}"

    def _fail(self, message: str, context: Sequence[Mapping[str, Any]]) -> AssertionError:
        listing = "\n".join(self._line(entry) for entry in context) or "  (nothing)"
        return AssertionError(f"{message}\njournal:\n{listing}")

    @staticmethod
    def _criteria(**criteria: Any) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in criteria.items() if value is not None) or "any"

    def _check_count(self, found: Sequence[Entry], what: str, count: int | None, at_least: int | None,
                     at_most: int | None, context: Sequence[Entry]) -> None:
        __tracebackhide__ = True
        wrong = (
            (count is not None and len(found) != count)
            or (at_least is not None and len(found) < at_least)
            or (at_most is not None and len(found) > at_most)
        )
        if wrong:
            bounds = self._criteria(count=count, at_least=at_least, at_most=at_most)
            raise self._fail(f"expected {what} with {bounds}; found {len(found)}", context)

    def assert_requests(self, *, provider: str | None = None, operation: str | None = None,
                        status: int | Sequence[int] | None = None, count: int | None = None,
                        at_least: int | None = None, at_most: int | None = None) -> list[Entry]:
        """The matching requests, after checking how many there were (at least one if no bound is given)."""
        __tracebackhide__ = True
        found = self.requests(provider, operation, status)
        if count is None and at_least is None and at_most is None:
            at_least = 1
        what = f"requests ({self._criteria(provider=provider, operation=operation, status=status)})"
        self._check_count(found, what, count, at_least, at_most, self.requests())
        return found

    def assert_statuses(self, expected: Sequence[int], *, provider: str | None = None,
                        operation: str | None = None) -> None:
        """The statuses of the matching requests, in order, are exactly `expected`."""
        __tracebackhide__ = True
        found = self.requests(provider, operation)
        statuses = [entry["status"] for entry in found]
        if statuses != list(expected):
            criteria = self._criteria(provider=provider, operation=operation)
            raise self._fail(f"expected statuses {list(expected)} ({criteria}); got {statuses}", found)

    def assert_webhooks(self, *, provider: str | None = None, event: str | None = None,
                        outcome: str | None = None, count: int | None = None, at_least: int | None = None,
                        at_most: int | None = None) -> list[Entry]:
        __tracebackhide__ = True
        found = self.webhooks(provider, event, outcome)
        if count is None and at_least is None and at_most is None:
            at_least = 1
        what = f"webhook attempts ({self._criteria(provider=provider, event=event, outcome=outcome)})"
        self._check_count(found, what, count, at_least, at_most, self.journal(kind="webhook"))
        return found

    def intervals(self, *, provider: str | None = None, operation: str | None = None) -> list[float]:
        """Clock seconds between consecutive matching requests (e.g. how fast the client polled)."""
        starts = [entry["at"] for entry in self.requests(provider, operation)]
        return [later - earlier for earlier, later in itertools.pairwise(starts)]

    def assert_intervals(self, *, at_least: float | None = None, at_most: float | None = None,
                         provider: str | None = None, operation: str | None = None) -> list[float]:
        """Every gap between consecutive matching requests is within the bounds (clock seconds)."""
        __tracebackhide__ = True
        gaps = self.intervals(provider=provider, operation=operation)
        too_short = at_least is not None and any(gap < at_least for gap in gaps)
        too_long = at_most is not None and any(gap > at_most for gap in gaps)
        if too_short or too_long:
            criteria = self._criteria(provider=provider, operation=operation)
            raise self._fail(
                f"expected requests ({criteria}) spaced {self._criteria(at_least=at_least, at_most=at_most)} "
                f"clock seconds apart; gaps {[round(gap, 3) for gap in gaps]}",
                self.requests(provider, operation),
            )
        return gaps

"""The client rehearsals as a user meets them: an adapter fixture, `pytest --nanobanana-rehearse=PROVIDER`, a scorecard.

Each case runs a small test project in its own pytest session (pytester, inline) around the example clients:
the careful ones pass every rehearsal that applies to their provider, the deliberately naive Civitai client
fails the ones it should, with the reason and a journal excerpt in the scorecard.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.clock import VirtualClock
from simulator.providers import REGISTRY
from simulator.pytest_plugin.coverage import Catalogue
from simulator.pytest_plugin.rehearsals.checks import CHECKS
from simulator.pytest_plugin.rehearsals.evidence import client_requests
from simulator.pytest_plugin.rehearsals.files import Rehearsal, RehearsalError, rehearsals_dir, shipped
from simulator.pytest_plugin.rehearsals.guidance import Guidance
from simulator.sim import Simulator

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
RUN = ("-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning")
REHEARSALS = sorted(path.stem for path in rehearsals_dir().glob("*.yaml"))

# The shipped adapters around the example clients (simulator/example_clients/adapters.py).
CAREFUL = """
import pytest

from simulator.example_clients.adapters import careful


@pytest.fixture
def nanobanana_adapter():
    return careful


def test_unit_tests_of_the_client_are_not_run_by_a_rehearsal():
    raise AssertionError("deselected under --nanobanana-rehearse")
"""

NAIVE = """
import pytest

from simulator.example_clients.adapters import naive


@pytest.fixture
def nanobanana_adapter():
    return naive
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return pytester


def _scorecard(result: pytest.RunResult) -> str:
    output = result.stdout.str()
    assert "nanobanana rehearsal scorecard" in output, output
    return output.split("nanobanana rehearsal scorecard", 1)[1].split("short test summary info", 1)[0]


def _rows(scorecard: str) -> dict[str, str]:
    """Rehearsal name → PASS / FAIL / SKIP."""
    return dict((name, label) for label, name in re.findall(r"^  (PASS|FAIL|SKIP)  (\S+)", scorecard, re.M))


def _section(scorecard: str, name: str) -> str:
    """A rehearsal's lines in the scorecard, up to the next rehearsal."""
    return re.split(r"^  (?:PASS|FAIL|SKIP)  ", scorecard.split(f"  {name} ", 1)[1], flags=re.M)[0]


def _readme_example() -> tuple[str, str, list[str]]:
    """(file name, code, pytest arguments) of the adapter example in the README's "Rehearsing your client"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Rehearsing your client\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(# (test_\w+)\.py — rehearse with `pytest ([^`]*)`.*?)```", section, re.S)
    assert code is not None, "the README shows an adapter example"
    return code.group(2), code.group(1), code.group(3).split()


def test_the_readme_example_around_the_careful_civitai_client_passes_every_rehearsal(project: pytest.Pytester) -> None:
    name, code, args = _readme_example()
    project.makepyfile(**{name: code})
    result = project.runpytest_inprocess(*RUN, *args)
    result.assert_outcomes(passed=len(REHEARSALS))
    scorecard = _scorecard(result)
    assert _rows(scorecard) == dict.fromkeys(REHEARSALS, "PASS")
    assert f"civitai · adapter in {name}.py · {len(REHEARSALS)} passed, 0 failed" in scorecard
    # Each pass says what was seen, on the simulator's clock.
    assert "429 (Retry-After 7 s), next request 7.00 s later" in _section(scorecard, "retry-after-429")
    assert "followed by RefreshBlob for a fresh URL" in _section(scorecard, "refresh-expired-url")
    assert "resent 1 time(s) with the same externalId" in _section(scorecard, "idempotent-resubmit")
    assert "polls, 2.00 s apart at least (guidance ≥ 2 s)" in _section(scorecard, "poll-pace")
    assert "1 image(s) delivered, 1 reported blocked" in _section(scorecard, "partial-batch")
    assert "each of the 3 events acted on once" in _section(scorecard, "webhook-duplicates")
    assert "raised InsufficientCreditsError" in _section(scorecard, "no-retry-402")


def test_the_naive_client_fails_the_rehearsals_it_should(project: pytest.Pytester) -> None:
    project.makepyfile(test_naive=NAIVE)
    result = project.runpytest_inprocess(*RUN, "--nanobanana-rehearse=civitai")
    scorecard = _scorecard(result)
    rows = _rows(scorecard)
    assert {name for name, label in rows.items() if label == "PASS"} == {"blocked-task", "download-before-expiry"}
    assert rows["webhook-duplicates"] == "SKIP"
    assert "skipped by the adapter: the naive clients take no callbacks" in _section(scorecard, "webhook-duplicates")
    result.assert_outcomes(passed=2, failed=len(REHEARSALS) - 3, skipped=1)

    # No Retry-After: resent half a second later (the rehearsal's clock tick), with the 429 in the excerpt.
    retry = _section(scorecard, "retry-after-429")
    assert "✗ retry_after: sent the next request 0.00 s after a 429 that asked for Retry-After 7 s" in retry
    assert re.search(r"#1 +t\+0\.000s +POST /civitai/v2/consumer/workflows → 429 .*⚡ error rate_limited", retry)
    assert re.search(r"#2 +t\+0\.500s +POST /civitai/v2/consumer/workflows → 20[02]", retry)
    # Polls too fast: no pause at all against Civitai's 2 s guidance.
    polls = _section(scorecard, "poll-pace")
    assert re.search(r"✗ poll_pace: (\d+) of \1 polls came sooner than 2 s after the previous answer "
                     r"\(shortest 0\.00 s\); civitai: Google image generation recipe", polls)
    assert "GET /civitai/v2/consumer/workflows/" in polls and "… " in polls  # a long excerpt is shortened
    # Retries 402 (Civitai's 403 insufficient Buzz), 400, 401, 403 and content blocks until its own limit.
    for name, status in (("no-retry-402", 403), ("no-retry-400", 400), ("no-retry-401", 401), ("no-retry-403", 403),
                         ("no-retry-content-block", 400)):
        assert f"✗ submits: 20 submits (answered [{status}]); expected exactly 1" in _section(scorecard, name), name
    # A dropped connection becomes a second workflow: no externalId on either submit.
    dropped = _section(scorecard, "idempotent-resubmit")
    assert re.search(r"✗ generations: 2 generations \(\S+, \S+\) from one call to the adapter; expected at most 1; "
                     r"the submits carried externalId \[None, None\]", dropped)
    assert "✗ idempotency_key: resent the submit without externalId" in dropped
    assert "⚡ network reset" in dropped
    # And the rest of what the naive client gets wrong.
    assert "✗ backoff: 20 attempts; a client gives up after at most 10" in _section(scorecard, "backoff-5xx")
    assert "✗ reports_blocked: the adapter returned a list without `images` and `blocked`" \
        in _section(scorecard, "partial-batch")
    assert "did not ask for a fresh URL (RefreshBlob): the image was lost" in _section(scorecard, "refresh-expired-url")
    # The failing test itself carries the same explanation.
    result.stdout.fnmatch_lines(["*rehearsal civitai/retry-after-429 failed: retries a 429 no sooner than Retry-After"])


def test_careful_clients_of_the_other_providers_pass_in_process(project: pytest.Pytester) -> None:
    project.makepyfile(test_client=CAREFUL)
    slugs = ["qingbo", "runware", "crun", "foxapi", "evolink"]
    result = project.runpytest_inprocess(*RUN, "--nanobanana-mode=inprocess",
                                         *(f"--nanobanana-rehearse={slug}" for slug in slugs))
    scorecard = _scorecard(result)
    # Batches only where the provider makes them; callbacks everywhere but FoxAPI.
    not_applicable = {"crun": {"partial-batch"}, "foxapi": {"partial-batch", "webhook-duplicates"},
                      "evolink": {"partial-batch"}}
    skipped = sum(len(names) for names in not_applicable.values())
    result.assert_outcomes(passed=len(slugs) * len(REHEARSALS) - skipped, skipped=skipped, deselected=1)
    for slug in slugs:
        block = scorecard.split(f"{slug} · adapter in test_client.py", 1)[1].split(" · adapter in ", 1)[0]
        rows = _rows(block)
        assert {name for name, label in rows.items() if label == "SKIP"} == not_applicable.get(slug, set()), slug
        assert set(rows) == set(REHEARSALS)
    assert "n/a for foxapi: No callbacks for these models" in scorecard
    # Without idempotency a lost submit is surfaced, not resent; with it, resent under the same key.
    assert "1 generation created; n/a: No idempotency key; CRun's CLI never retries CreateTask" in scorecard
    assert "raised SubmitUncertainError" in scorecard
    assert "resent 1 time(s) with the same idempotency-key" in scorecard
    assert "resent 1 time(s) with the same 0.taskUUID" in scorecard
    assert "no polls: the client waited server-side" in scorecard  # Runware's sync delivery


# A WebSocket client that pings before and after every frame, as runware 0.5.24 does every 5 s: the pings,
# the authentication frame and the results the server pushes must not count as requests of the client's own.
CHATTY_SOCKET = """
import json

import pytest
from websockets.sync.client import connect

from simulator.pytest_plugin.rehearsals import AdapterResult

PING = json.dumps([{"taskType": "ping", "ping": True}])


@pytest.fixture
def nanobanana_adapter():
    def adapter(sim, prompt, **options):
        task = {"taskType": "imageInference", "taskUUID": "1b0c6d2e-9a41-4f38-8d1e-3f1f2b7a9c01",
                "model": "google:4@3", "positivePrompt": prompt, "width": 1024, "height": 1024}
        with connect(sim.base_url().replace("http", "ws", 1) + "/v1") as socket:
            socket.send(json.dumps([{"taskType": "authentication", "apiKey": sim.api_key()}]))
            socket.recv(timeout=10)
            for attempt in range(3):
                socket.send(PING)
                socket.recv(timeout=10)
                socket.send(json.dumps([task]))
                answer = json.loads(socket.recv(timeout=10))
                while answer.get("data") == [{"taskType": "ping", "pong": True}] or answer == {"data": []}:
                    answer = json.loads(socket.recv(timeout=10))
                socket.send(PING)
                socket.recv(timeout=10)
                if not answer.get("errors"):
                    return AdapterResult(images=len(answer["data"]))
                sim.sleep(WAIT)
        raise RuntimeError(answer)

    return adapter
"""


@pytest.mark.parametrize(("wait", "verdict"), [
    (1.5, "429 (no Retry-After on a WebSocket frame; guidance ≥ 1 s), next request 1.50 s later"),
    (0.2, "✗ retry_after: sent the next request 0.20 s after a 429 (no Retry-After on a WebSocket frame; "
          "guidance ≥ 1 s) (1 early retry); runware: a frame has no headers"),
])
def test_a_websocket_client_is_judged_on_its_own_frames(project: pytest.Pytester, wait: float, verdict: str) -> None:
    project.makepyfile(test_socket=CHATTY_SOCKET.replace("WAIT", str(wait)))
    result = project.runpytest_inprocess(*RUN, "--nanobanana-rehearse=runware", "-k", "retry-after")
    section = _section(_scorecard(result), "retry-after-429")
    assert verdict in section, section
    if wait > 1:
        result.assert_outcomes(passed=1, deselected=len(REHEARSALS) - 1)
        assert "1 generation created" in section
    else:
        result.assert_outcomes(failed=1, deselected=len(REHEARSALS) - 1)
        # The excerpt shows the refused frame and the resend, not the pings between them.
        assert re.search(r"WS /runware/v1 → 429 .*⚡ error rate_limited\n.*WS /runware/v1 → 200", section), section


def test_the_evidence_is_what_the_client_sent_whichever_transport() -> None:
    guidance = Guidance.load("runware")
    journal = [
        {"kind": "ws", "method": "WS", "provider": "runware", "request_body": [{"taskType": "authentication"}]},
        {"kind": "ws", "method": "WS", "provider": "runware", "request_body": [{"taskType": "ping", "ping": True}]},
        {"kind": "ws", "method": "WS", "provider": "runware", "operation": "Tasks",
         "request_body": [{"taskType": "imageInference"}]},
        {"kind": "ws", "method": "PUSH", "provider": "runware", "request_body": None},
        {"kind": "http", "method": "GET", "provider": "runware", "request_body": None},
        {"kind": "http", "method": "POST", "provider": "runware", "request_body": [{"taskType": "ping"}]},
        {"kind": "webhook", "method": "POST", "provider": "runware", "request_body": None},
        {"kind": "http", "method": "POST", "provider": "qingbo", "request_body": {}},
    ]
    kept, aside = client_requests(journal, guidance)
    # Over REST a ping is a request like any other; over the socket it is housekeeping.
    assert kept == [journal[2], journal[4], journal[5]] and aside == journal[:2]
    assert guidance.is_submit(kept[0]) and guidance.socket_retry == 1


def test_rehearsals_run_only_with_an_adapter_and_a_known_provider(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain="def test_plain():\n    pass\n")
    missing = project.runpytest_inprocess(*RUN, "--nanobanana-rehearse=qingbo")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*no collected test module sees a `nanobanana_adapter` fixture*"])
    unknown = project.runpytest_inprocess(*RUN, "--nanobanana-rehearse=dalle")
    assert "unknown provider ['dalle']; use one of ['civitai', 'crun', " in unknown.stderr.str()
    plain = project.runpytest_inprocess(*RUN)  # without the option, nothing changes
    plain.assert_outcomes(passed=1)
    assert "rehearsal scorecard" not in plain.stdout.str()


def test_k_selects_rehearsals_and_a_failing_adapter_is_judged_not_crashed(project: pytest.Pytester) -> None:
    project.makeconftest("""
import pytest


@pytest.fixture
def nanobanana_adapter():
    def adapter(sim, prompt, **options):
        raise RuntimeError("client not configured")

    return adapter
""")
    project.makepyfile(test_nothing="")  # a module with no tests of its own still carries the rehearsals
    result = project.runpytest_inprocess(*RUN, "--nanobanana-rehearse=qingbo", "-k", "retry-after or no-retry-401")
    result.assert_outcomes(failed=2, deselected=len(REHEARSALS) - 2)
    result.stdout.fnmatch_lines(["*test_nothing.py::rehearse[[]qingbo-no-retry-401[]]*"])
    scorecard = _scorecard(result)
    assert _rows(scorecard) == {"no-retry-401": "FAIL", "retry-after-429": "FAIL"}
    retry = _section(scorecard, "retry-after-429")
    assert "✗ outcome: the adapter raised RuntimeError: client not configured; this rehearsal should end in a result" \
        in retry
    assert "✗ retry_after: inconclusive: no answer with Retry-After reached the client" in retry
    # Raising is the outcome no-retry-401 wants, but nothing reached the provider to be refused.
    refused = _section(scorecard, "no-retry-401")
    assert "✗ submits: 0 submits (answered []); expected exactly 1" in refused
    assert "✓" not in refused and "outcome" not in refused  # the scorecard lists only what failed


# -- the data -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REHEARSALS)
def test_each_rehearsal_documents_itself_and_uses_known_expectations(name: str) -> None:
    path = rehearsals_dir() / f"{name}.yaml"
    rehearsal = Rehearsal.load(path)
    assert rehearsal.name == name, "the file is named after its rehearsal"
    assert rehearsal.description.startswith(f"{name} — "), "the comment header says what it rehearses"
    assert "Passes when" in rehearsal.description, "and what passing means"
    assert set(rehearsal.expect) <= set(CHECKS) and "outcome" in rehearsal.expect
    for rule in rehearsal.faults:  # finite faults: a client that never gives up still returns and is judged
        assert "times" in rule.get("when", {}) or rule["do"].get("task") == "slow" or "webhook" in rule["do"], rule


def test_the_rehearsal_format_lists_exactly_the_checks() -> None:
    schema = json.loads((ROOT / "schemas" / "_formats" / "rehearsal.json").read_text(encoding="utf-8"))
    assert set(schema["properties"]["expect"]["properties"]) == set(CHECKS)


@pytest.mark.parametrize(("change", "why"), [
    ("expect: {outcome: result, retry_afer: true}", "expect: unknown key(s) ['retry_afer']"),
    ("faults: [{match: {operation: $sumbit}, do: {error: rate_limited}}]", "is not one of ['$submit'"),
    ("faults: [{match: {operation: $submit}, do: {error: 7}}]", "do.error: names a kind"),
    ("tick: -1", "tick: -1 is less than the minimum of 0"),
])
def test_a_broken_rehearsal_file_stops_the_load_saying_where(change: str, why: str) -> None:
    text = "name: x\ntitle: t\nexpect: {outcome: any}\n" + change + "\n"
    if change.startswith("expect"):
        text = "name: x\ntitle: t\n" + change + "\n"
    with pytest.raises(RehearsalError, match=r"^broken: ") as caught:
        Rehearsal.parse(text, "broken")
    assert why in str(caught.value)


def test_the_issue_s_rehearsals_are_shipped() -> None:
    names = {rehearsal.name for rehearsal in shipped()}
    assert {"retry-after-429", "no-retry-400", "no-retry-401", "no-retry-402", "no-retry-403",
            "no-retry-content-block", "blocked-task", "backoff-5xx", "poll-pace", "download-before-expiry",
            "refresh-expired-url", "idempotent-resubmit", "partial-batch", "webhook-duplicates"} <= names


@pytest.mark.parametrize("slug", sorted(REGISTRY))
def test_client_guidance_names_operations_the_provider_serves(slug: str) -> None:
    guidance = Guidance.load(slug)
    served = set(Catalogue.of(Simulator(clock=VirtualClock(), providers=[slug]))[slug].operations)
    card = json.loads((ROOT / "schemas" / slug / "provider.json").read_text(encoding="utf-8"))["clientGuidance"]
    for role in ("submit_ops", "poll_ops", "download_ops", "refresh_ops"):
        operations = getattr(guidance, role)
        if (role, card["refreshUrl"], card["download"]) in (("refresh_ops", None, card["download"]),
                                                             ("download_ops", card["refreshUrl"], None)):
            continue  # answers carry their images inline (Google): no link to fetch or refresh
        assert operations and set(operations) <= served, (role, operations)
    assert guidance.min_poll > 0 and guidance.poll_doc, "the minimum poll interval cites the provider's docs"
    assert card["download"] is not None or card["downloadDoc"]
    for key in ("idempotency", "callbacks", "batch"):
        assert (card[key] is None and card[f"{key}Doc"]) or card[key]["doc"], f"{slug} {key}: cite the docs"


def test_google_s_429_is_judged_by_retry_info_and_inline_images_make_url_rehearsals_not_applicable(
        project: pytest.Pytester) -> None:
    """Google sends no Retry-After: the wait is `RetryInfo.retryDelay` in the error's details, read through
    `clientGuidance.retryAfter`; images come back inline, so the URL rehearsals say n/a with the reason."""
    project.makepyfile(test_client=CAREFUL)
    careful = _scorecard(project.runpytest_inprocess(*RUN, "--nanobanana-mode=inprocess",
                                                     "--nanobanana-rehearse=gemini", "test_client.py"))
    rows = _rows(careful)
    assert {name for name, label in rows.items() if label == "SKIP"} == {
        "download-before-expiry", "refresh-expired-url", "partial-batch", "webhook-duplicates"}
    assert set(rows.values()) == {"PASS", "SKIP"}, rows
    assert "429 (RetryInfo.retryDelay 7 s), next request 7.00 s later" in _section(careful, "retry-after-429")
    assert "n/a for gemini: images come back inline" in _section(careful, "refresh-expired-url")
    assert "raised ContentBlockedError: gemini: prompt blocked" in _section(careful, "no-retry-content-block")

    project.makepyfile(test_naive=NAIVE)
    naive = _scorecard(project.runpytest_inprocess(*RUN, "--nanobanana-mode=inprocess",
                                                   "--nanobanana-rehearse=gemini", "test_naive.py"))
    assert "✗ retry_after: sent the next request 0.00 s after a 429 that asked for RetryInfo.retryDelay 7 s" \
        in _section(naive, "retry-after-429")
    assert "✗ generations: 2 generations" in _section(naive, "idempotent-resubmit")
    assert _rows(naive)["no-retry-400"] == "FAIL"

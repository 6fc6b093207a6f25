"""The pytest plugin as a user meets it: small test files run in their own pytest sessions (pytester, inline).

Each file uses only the public fixture, marker and options, and a plain httpx client per provider
(`FLOWS` in test_plugin_dogfood.py); each is run in both modes where the mode matters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_plugin_dogfood import FLOWS, SLUGS

pytest_plugins = ["pytester"]

MODES = ["live", "inprocess"]

CLIENTS = """
import asyncio

import httpx
import pytest
from test_plugin_dogfood import FLOWS, SLUGS, agenerate, generate, is_image, send_wrong_field
"""


# Inline runs (fast); an unclosed socket or transport in the plugin surfaces as an error, not a warning.
RUN = ("-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning")


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(CLIENTS + source)
    return pytester.runpytest_inprocess(*RUN, *args)


@pytest.mark.parametrize("mode", MODES)
def test_a_plain_httpx_client_generates_with_every_provider_sync_and_async(pytester: pytest.Pytester,
                                                                         mode: str) -> None:
    result = _run(pytester, """
@pytest.mark.parametrize("slug", SLUGS)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_generates(nanobanana, slug, kind):
    image = generate(nanobanana, slug) if kind == "sync" else asyncio.run(agenerate(nanobanana, slug))
    assert is_image(image)
    if nanobanana.mode == "inprocess":
        assert nanobanana.base_url(slug) == "https://" + nanobanana.hosts(slug)[0]
    else:
        assert nanobanana.base_url(slug).startswith("http://127.0.0.1:")
""", f"--nanobanana-mode={mode}")
    result.assert_outcomes(passed=2 * len(SLUGS))


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_field_fails_the_test_with_a_report_that_points_at_the_field(pytester: pytest.Pytester,
                                                                            mode: str) -> None:
    result = _run(pytester, """
@pytest.mark.parametrize("slug", SLUGS)
def test_wrong_field(nanobanana, slug):
    assert send_wrong_field(nanobanana, slug).status_code in (400, 422)   # the client's own view: refused
""", f"--nanobanana-mode={mode}")
    result.assert_outcomes(failed=len(SLUGS))
    output = result.stdout.str()
    # Counted at line starts: on CI (env CI set) pytest repeats each failure message untruncated in its summary.
    headline = "nanobanana contract check: 1 request broke the provider's documented contract"
    assert sum(line.startswith(headline) for line in output.splitlines()) == len(SLUGS)
    for slug, flow in FLOWS.items():
        _, value, reported = flow.wrong
        report = output.split(f"test_wrong_field[{slug}]", 1)[1]
        assert f"✗ {reported}  [" in report, f"{slug}: the report names {reported}"
        assert json.dumps(value) in report or repr(value) in report, f"{slug}: the report shows what was sent"
        assert "expected:" in report and "rule file:      schemas/" in report
    # Each report shows the request: method, the path the client used, the status and body excerpt.
    civitai = output.split("test_wrong_field[civitai]", 1)[1]
    prefix = "/civitai" if mode == "live" else "orchestration.civitai.com"
    assert f"1. POST {prefix}/v2/consumer/workflows?wait=60 → 400  [civitai SubmitWorkflow]" in civitai
    assert '"aspectRatio": "16:10"' in civitai and "nearest valid:  '3:2'" in civitai


def test_strict_mode_catches_undocumented_headers_and_query_parameters(pytester: pytest.Pytester) -> None:
    source = """
import httpx

def send(nanobanana, headers=None, params=None):
    with httpx.Client(base_url=nanobanana.base_url("qingbo"), headers=nanobanana.auth_headers("qingbo")) as client:
        answer = client.post("/v1/tasks", json=FLOWS["qingbo"].body, headers=headers, params=params)
        assert answer.status_code == 200

def test_documented_headers(nanobanana):
    send(nanobanana, {"Prefer": "wait=60", "Idempotency-Key": "order-1"})

def test_tracing_header(nanobanana):
    send(nanobanana, {"X-Trace-Id": "abc"})

@pytest.mark.nanobanana(strict=True)
def test_marked_strict(nanobanana):
    send(nanobanana, params={"debug": "1"})

@pytest.mark.nanobanana(strict=False)
def test_marked_lenient(nanobanana):
    send(nanobanana, {"X-Trace-Id": "abc"})
"""
    lenient = _run(pytester, source)
    lenient.assert_outcomes(passed=3, failed=1)
    lenient.stdout.fnmatch_lines([
        "*test_marked_strict*", "*✗ query debug  [[]undocumented-query] qingbo documents no query parameter 'debug'*",
        "*expected:       (none documented)",
    ])
    strict = pytester.runpytest_inprocess(*RUN, "--nanobanana-strict", "--nanobanana-mode=inprocess")
    strict.assert_outcomes(passed=2, failed=2)
    strict.stdout.fnmatch_lines([
        "*test_tracing_header*",
        "1. POST www.qingbo.dev/v1/tasks → 200  [[]qingbo SubmitTask]",
        "*✗ header x-trace-id  [[]undocumented-header] qingbo documents no 'x-trace-id' header on SubmitTask",
        "*expected:       one of authorization, idempotency-key, prefer",
        "*rule file:      schemas/qingbo/provider.json (documentedRequest)",
    ])
    allowed = pytester.runpytest_inprocess(*RUN, "--nanobanana-strict", "--nanobanana-allow-header", "X-Trace-Id")
    allowed.assert_outcomes(passed=3, failed=1)


def test_a_field_the_provider_silently_ignores_warns_and_fails_in_strict_mode(pytester: pytest.Pytester) -> None:
    source = """
def send(nanobanana, slug, path, body):
    with httpx.Client(base_url=nanobanana.base_url(slug), headers=nanobanana.auth_headers(slug)) as client:
        assert client.post(path, json=body).status_code == 200  # the provider took it: the client cannot tell

def test_evolink_aspect_ratio(nanobanana):
    body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a wide banner", "aspect_ratio": "16:9"}
    send(nanobanana, "evolink", "/v1/images/generations", body)

@pytest.mark.nanobanana(options={"runware": {"unknown_parameters": "ignore"}})
def test_runware_num_images(nanobanana):
    task = {"taskType": "imageInference", "taskUUID": "6ec9a6b1-8d3e-4a5c-9f1d-2b7e4c8a9d10", "model": "google:4@3",
            "positivePrompt": "a cat", "width": 1024, "height": 1024, "num_images": 2}
    send(nanobanana, "runware", "/v1", [task])
"""
    lenient = _run(pytester, source)
    lenient.assert_outcomes(passed=2, warnings=2)
    lenient.stdout.fnmatch_lines([
        "*test_a_field_the_provider_silently_ignores_warns_and_fails_in_strict_mode.py:*: IgnoredFieldWarning: "
        "nanobanana contract check: 1 request carried fields the provider silently ignores*",
        "*! aspect_ratio  [[]ignored-field] evolink does not document 'aspect_ratio' and ignores it: the real API "
        "answers as if it was never sent: did you mean 'size' (the aspect ratio)",
        "*sent:           '16:9'",
        "*did you mean:   'size'",
    ])
    assert "did you mean 'numberResults' (the number of images)" in lenient.stdout.str()
    strict = pytester.runpytest_inprocess(*RUN, "--nanobanana-strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines([
        "*nanobanana contract check: 1 request broke the provider's documented contract",
        "*✗ aspect_ratio  [[]ignored-field] evolink does not document 'aspect_ratio' and ignores it*",
    ])


def test_the_marker_and_options_choose_seed_scenario_and_clock(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", first_submit_429="""
name: first-submit-429
faults:
  - match: {operation: SubmitTask}
    when: {times: 1}
    do: {error: rate_limited, retry_after: 3}
""")
    result = _run(pytester, """
import httpx

pytestmark = pytest.mark.nanobanana("qingbo")

def client(nanobanana):
    return httpx.Client(base_url=nanobanana.base_url(), headers=nanobanana.auth_headers())

def test_command_line_defaults(nanobanana):
    info = nanobanana.control.info()
    assert info["seed"] == 5 and info["clock"]["autojump"] is True and info["clock"]["tick"] == 0
    assert nanobanana.control.scenarios()["loaded"] == ["empty-wallet"]
    with client(nanobanana) as c:
        assert c.post("/v1/tasks", json=FLOWS["qingbo"].body).status_code == 402

@pytest.mark.nanobanana(seed=7, scenario="first_submit_429.yaml")
def test_marker_seed_and_scenario_file(nanobanana):
    assert nanobanana.control.info()["seed"] == 7
    with client(nanobanana) as c:
        refused = c.post("/v1/tasks", json=FLOWS["qingbo"].body)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
        nanobanana.sleep(3)
        waited = c.post("/v1/tasks", json=FLOWS["qingbo"].body, headers={"Prefer": "wait=60"})
        assert waited.json()["status"] == "completed"
    nanobanana.assert_statuses([429, 200], operation="SubmitTask")
    nanobanana.assert_intervals(at_least=3, operation="SubmitTask")

@pytest.mark.nanobanana(scenario=None, clock="virtual")
def test_manual_clock_moves_only_when_told(nanobanana):
    with client(nanobanana) as c:
        task = c.post("/v1/tasks", json=FLOWS["qingbo"].body).json()
        assert c.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "queued"
        nanobanana.advance(600)
        assert c.get(f"/v1/tasks/{task['task_id']}").json()["status"] == "completed"
    assert nanobanana.elapsed() == 600

@pytest.mark.nanobanana(scenario=None, clock="virtual", tick=20)
def test_tick_lets_a_client_poll_without_sleeping(nanobanana):
    with client(nanobanana) as c:
        task = c.post("/v1/tasks", json=FLOWS["qingbo"].body).json()
        polls = 0
        while task["status"] not in ("completed", "failed"):
            task = c.get(f"/v1/tasks/{task['task_id']}").json()
            polls += 1
    assert task["status"] == "completed"
    assert nanobanana.elapsed() == 20 * (polls + 1)
    assert nanobanana.intervals(operation="GetTask") == [20] * (polls - 1)

@pytest.mark.nanobanana(scenario=None)
def test_sleep_and_asleep_advance_the_virtual_clock(nanobanana):
    start = nanobanana.now()
    nanobanana.sleep(12)
    asyncio.run(nanobanana.asleep(8))
    assert nanobanana.now() - start == 20 == nanobanana.elapsed()

@pytest.mark.nanobanana(scenario=None, clock="real")
def test_real_clock(nanobanana):
    assert nanobanana.control.info()["clock"]["mode"] == "real"
    with client(nanobanana) as c:
        assert c.get("/v1/tasks/task-wave0").status_code == 404
""", "--nanobanana-seed=5", "--nanobanana-scenario=empty-wallet")
    result.assert_outcomes(passed=6)


def test_the_contract_check_can_be_turned_off_or_expected(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
@pytest.mark.nanobanana(contract=False)
def test_off(nanobanana):
    assert send_wrong_field(nanobanana, "foxapi").status_code == 422

def test_expected(nanobanana):
    nanobanana.expect_violations("output_format")
    assert send_wrong_field(nanobanana, "foxapi").status_code == 422

def test_expected_but_not_broken(nanobanana):
    nanobanana.expect_violations("size")
    assert is_image(generate(nanobanana, "evolink"))

def test_own_failure_carries_the_report(nanobanana):
    send_wrong_field(nanobanana, "evolink")
    assert False, "the client gave up"

def test_unknown_route(nanobanana):
    with httpx.Client(base_url=nanobanana.base_url("evolink"), headers=nanobanana.auth_headers("evolink")) as c:
        assert c.get("/v1/images").status_code == 404

def test_helpers_show_the_journal(nanobanana):
    generate(nanobanana, "crun")
    nanobanana.assert_requests(operation="CreateTask", count=2)

@pytest.mark.nanobanana(colour="blue")
def test_unknown_marker_keyword(nanobanana):
    pass

@pytest.mark.nanobanana("midjourney")
def test_unknown_provider(nanobanana):
    pass
""", "--nanobanana-mode=inprocess")
    result.assert_outcomes(passed=2, failed=4, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_unknown_marker_keyword*",
        "@pytest.mark.nanobanana: unknown keyword 'colour'; use [[]'allow_headers', 'clock', *",
        "*ERROR at setup of test_unknown_provider*",
        "nanobanana: provider 'midjourney' is not served; serving [[]'civitai', *",
        "*test_expected_but_not_broken*", "nanobanana: expected violations at size, but no request broke them",
        "*test_own_failure_carries_the_report*", "*AssertionError: the client gave up*",
        "*nanobanana contract*", "*✗ size  [[]enum]*",
        "*test_unknown_route*", "*✗ GET /v1/images  [[]route] evolink has no such route",
        "*test_helpers_show_the_journal*",
        "*expected requests (operation='CreateTask') with count=2; found 1",
        "*journal:", "*  #* t+0.000s * POST api.crun.ai/api/v1/client/job/CreateTask → 200  [[]crun CreateTask]",
    ])


def test_coverage_prints_routes_statuses_errors_and_lifecycle_modes(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
def test_runware_and_civitai(nanobanana):
    generate(nanobanana, "runware")
    generate(nanobanana, "civitai")

def test_a_refusal(nanobanana):
    nanobanana.expect_violations()
    send_wrong_field(nanobanana, "civitai")
    nanobanana.control.add_faults({"match": {"operation": "GetWorkflow"}, "do": {"error": "rate_limited"}})
    with httpx.Client(base_url=nanobanana.base_url("civitai"), headers=nanobanana.auth_headers("civitai")) as c:
        assert c.get("/v2/consumer/workflows/x").status_code == 429
        assert c.get("/v2/consumer/workflows", params={"take": 1}).status_code == 200
""", "--nanobanana-coverage-json=coverage.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*= nanobanana contract coverage =*",
        "2 test(s) used the simulator",
        "civitai (2 test(s))",
        "  routes     5/16: SubmitWorkflow (2), GetBlob (1), GetBlobContent (1), GetWorkflow (1), QueryWorkflows (1)",
        "             not exercised: UpdateWorkflow, *",
        "  statuses   200 (3), 308 (1), 400 (1), 429 (1)",
        "  errors     validation (1), forced:rate_limited (1)",
        "  lifecycle  wait (1)",
        "*",
        "  tasks      succeeded (1)",
        "runware (1 test(s))",
        "  routes     2/2: Tasks (1), DownloadImage (1)",
        "*",
        "  lifecycle  sync (1)",
        "*",
        "not exercised: crun, evolink, foxapi, gemini, qingbo",
        "written to coverage.json",
    ])
    written = json.loads((pytester.path / "coverage.json").read_text())
    assert written["providers"]["runware"]["lifecycle"] == {"sync": 1}
    assert "async" in written["providers"]["runware"]["lifecycle_not_exercised"]
    assert written["providers"]["civitai"]["errors"] == {"validation": 1, "forced:rate_limited": 1}
    assert written["format"] == "nanobanana-sim contract coverage"


def test_the_coverage_option_never_takes_or_destroys_a_user_s_file(pytester: pytest.Pytester) -> None:
    test_file = pytester.makepyfile(test_it="def test_it(nanobanana):\n    nanobanana.base_url('qingbo')\n")
    source = test_file.read_text()
    notes = pytester.path / "notes.json"
    notes.write_text('{"mine": true}\n')
    # The flag takes no value: the test file after it is the file to test, not the report's name.
    pytester.runpytest_inprocess(*RUN, "--nanobanana-coverage", "test_it.py").assert_outcomes(passed=1)
    for wrong, why in [
        ("test_it.py", "must end in .json"),
        (".", "is a folder"),
        ("notes.json", "refusing to overwrite notes.json: it is not a coverage report"),
        ("missing/coverage.json", "the folder missing does not exist"),
    ]:
        refused = pytester.runpytest_inprocess(*RUN, "--nanobanana-coverage-json", wrong, "test_it.py")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR, wrong
        assert why in refused.stderr.str(), (wrong, refused.stderr.str())
    assert test_file.read_text() == source and notes.read_text() == '{"mine": true}\n'
    # A report of its own kind is replaced by the next run's.
    for _ in range(2):
        pytester.runpytest_inprocess(*RUN, "--nanobanana-coverage-json=cov.json").assert_outcomes(passed=1)
        assert json.loads((pytester.path / "cov.json").read_text())["tests"] == 1


def _readme_examples() -> list[tuple[str, str, list[str], str | None]]:
    """(file name, code, pytest arguments, expected report) of each runnable example in "Testing your client"."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Testing your client\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    examples = []
    for index, (language, code) in enumerate(blocks):
        header = re.match(r"# (test_\w+\.py) — run with `pytest([^`]*)`(.*)", code)
        if language != "python" or header is None:
            continue
        fails = "fails" in header.group(3)
        report = blocks[index + 1][1] if fails else None
        examples.append((header.group(1), code, header.group(2).split(), report))
    return examples


README_EXAMPLES = _readme_examples()


@pytest.mark.parametrize(("name", "code", "args", "report"), README_EXAMPLES, ids=[e[0] for e in README_EXAMPLES])
def test_the_readme_examples_run_as_printed(pytester: pytest.Pytester, name: str, code: str, args: list[str],
                                            report: str | None) -> None:
    pytester.makepyfile(**{name.removesuffix(".py"): code})
    result = pytester.runpytest_inprocess(*RUN, *args)
    if report is None:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([line.replace("[", "[[]") for line in report.strip().splitlines()])


def test_the_readme_shows_an_example_for_each_mode() -> None:
    modes = {"inprocess" if 'mode="inprocess"' in code else "live" for _, code, _, _ in README_EXAMPLES}
    assert modes == {"live", "inprocess"}
    assert any(report for *_, report in README_EXAMPLES)

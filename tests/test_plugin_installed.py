"""The pytest plugin exactly as a user meets it: the wheel in a fresh virtualenv, pytest in a subprocess, an empty
folder outside the checkout, nothing but `pip install <the wheel> pytest`.

The rest of the suite drives pytest in-process after importing `simulator` in its own order, which is how a
circular import that crashed every `--nanobanana-rehearse` run from a plain install stayed green. Here
every option and marker the README shows runs from the install, and each test asserts on what the user
sees: the exit code, the report text, the files written. The wheel is built once per content hash of the
tree and the virtualenv once per wheel (tests/support_envs.py); the runs that take longest go in parallel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support_envs import EnvironmentUnavailable, project_wheel, python_env

ROOT = Path(__file__).resolve().parents[1]
SLUGS = ("civitai", "qingbo", "runware", "crun", "foxapi", "evolink", "gemini")
TIMEOUT = 600
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Run:
    code: int
    out: str

    def rows(self, slug: str) -> dict[str, str]:
        """A provider's scorecard block: rehearsal name → PASS / FAIL / SKIP."""
        card = self.out.split("nanobanana rehearsal scorecard", 1)[1]
        block = re.split(rf"^{slug} · adapter in ", card, flags=re.M)[1]
        block = re.split(r"^\S+ · adapter in |^=+", block, flags=re.M)[0]
        return dict((name, label) for label, name in re.findall(r"^  (PASS|FAIL|SKIP)  (\S+)", block, re.M))


class User:
    """A user's empty project folder and the virtualenv they installed the wheel and pytest into."""

    def __init__(self, python: Path, folder: Path) -> None:
        self.python, self.folder = python, folder
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def start(self, *args: str) -> subprocess.Popen[str]:
        # Only what a shell would have: no PYTHONPATH, no checkout on the path, the venv's own python.
        env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
        return subprocess.Popen([str(self.python), "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=self.folder,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    @staticmethod
    def wait(process: subprocess.Popen[str]) -> Run:
        out, _ = process.communicate(timeout=TIMEOUT)
        return Run(process.returncode, out)

    def pytest(self, *args: str) -> Run:
        return self.wait(self.start(*args))


@pytest.fixture(scope="module")
def python() -> Iterator[Path]:
    try:
        yield python_env([project_wheel(), "pytest>=8"], name="plugin-user")
    except EnvironmentUnavailable as exc:
        pytest.skip(f"cannot install the wheel here: {exc}")


@pytest.fixture
def user(python: Path, tmp_path: Path) -> User:
    assert not tmp_path.is_relative_to(ROOT)
    return User(python, tmp_path / "project")


def _readme_examples() -> list[tuple[str, str, list[str], str | None]]:
    """(file name, code, pytest arguments, expected report) of every pytest example in "Testing your client"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Testing your client\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    examples = []
    for index, (language, code) in enumerate(blocks):
        header = re.match(r"# (test_\w+\.py) — (?:run|rehearse) with `pytest([^`]*)`(.*)", code)
        if language == "python" and header is not None:
            report = blocks[index + 1][1] if "fails" in header.group(3) else None
            examples.append((header.group(1), code, header.group(2).split(), report))
    return examples


README_EXAMPLES = _readme_examples()


def test_the_readme_has_pytest_examples_of_every_kind() -> None:
    args = " ".join(arg for _, _, command, _ in README_EXAMPLES for arg in command)
    codes = "".join(code for _, code, _, _ in README_EXAMPLES)
    assert "--nanobanana-rehearse" in args and 'mode="inprocess"' in codes and "from simulator.example_clients" in codes
    assert any(report for *_, report in README_EXAMPLES)


@pytest.mark.parametrize(("name", "code", "args", "report"), README_EXAMPLES, ids=[e[0] for e in README_EXAMPLES])
def test_every_readme_example_runs_as_printed_from_the_install(user: User, name: str, code: str, args: list[str],
                                                              report: str | None) -> None:
    user.write(name, code)
    run = user.pytest(*args)
    if report is None:
        assert run.code == 0, run.out
        assert re.search(r"\d+ passed", run.out) and not re.search(r"\d+ errors?\b|INTERNALERROR", run.out), run.out
    else:
        assert run.code == 1, run.out
        for line in report.strip().splitlines():
            assert line.strip() in run.out, (line, run.out)
    if "--nanobanana-rehearse" in " ".join(args):
        for slug in (arg.partition("=")[2] for arg in args if arg.startswith("--nanobanana-rehearse=")):
            rows = run.rows(slug)
            assert rows and "FAIL" not in rows.values(), (slug, rows)


CAREFUL = """
    import pytest
    from simulator.example_clients.adapters import careful


    @pytest.fixture
    def nanobanana_adapter():
        return careful
"""
NAIVE = CAREFUL.replace("careful", "naive")


def test_every_provider_is_rehearsed_with_a_careful_and_a_naive_adapter(python: Path, tmp_path: Path) -> None:
    careful, naive = User(python, tmp_path / "careful"), User(python, tmp_path / "naive")
    careful.write("conftest.py", CAREFUL)
    careful.write("test_my_client.py", "def test_own():\n    raise AssertionError('not run by a rehearsal')\n")
    naive.write("test_naive.py", NAIVE)
    rehearse = [f"--nanobanana-rehearse={slug}" for slug in SLUGS]
    # Both runs at once (one per core): together they are the longest part of this module.
    runs = [careful.start(*rehearse), naive.start(*rehearse, "--nanobanana-mode=inprocess")]
    good, bad = (User.wait(process) for process in runs)
    assert good.code == 0, good.out
    assert "1 deselected" in good.out and "INTERNALERROR" not in good.out + bad.out
    assert bad.code == 1, bad.out
    for slug in SLUGS:
        passed = good.rows(slug)
        assert len(passed) == 14 and set(passed.values()) <= {"PASS", "SKIP"}, (slug, passed)
        failed = bad.rows(slug)
        # Every naive client resends a 429 at once and retries a refusal it cannot fix.
        assert failed["retry-after-429"] == failed["no-retry-400"] == "FAIL", (slug, failed)
        assert f"rehearsal {slug}/no-retry-400 failed" in bad.out


def test_runware_is_rehearsed_over_websocket_from_the_install(python: Path, tmp_path: Path) -> None:
    careful, naive = User(python, tmp_path / "careful"), User(python, tmp_path / "naive")
    careful.write("test_socket.py", CAREFUL.replace("careful", "careful_socket"))
    naive.write("test_socket.py", CAREFUL.replace("careful", "naive_socket"))
    runs = [careful.start("--nanobanana-rehearse=runware"), naive.start("--nanobanana-rehearse=runware"),
            careful.start("--nanobanana-rehearse=runware", "--nanobanana-mode=inprocess")]
    good, bad, in_process = (User.wait(process) for process in runs)
    assert good.code == 0, good.out
    passed = good.rows("runware")
    assert passed == dict.fromkeys(passed, "PASS") and len(passed) == 14, passed
    assert "429 (no Retry-After on a WebSocket frame; guidance ≥ 1 s), next request" in good.out
    assert bad.code == 1 and "INTERNALERROR" not in bad.out, bad.out
    failed = bad.rows("runware")
    should_fail = {"retry-after-429", "no-retry-400", "no-retry-401", "no-retry-402", "no-retry-403",
                   "no-retry-content-block", "blocked-task", "backoff-5xx", "refresh-expired-url", "partial-batch"}
    assert {name for name, label in failed.items() if label == "FAIL"} == should_fail, failed
    assert failed["webhook-duplicates"] == "SKIP"
    assert "✗ retry_after: sent the next request 0.00 s after a 429 (no Retry-After on a WebSocket frame" in bad.out
    assert re.search(r"WS /runware/v1 → 400 +\[runware Tasks\] +⚡ error bad_request", bad.out), bad.out
    # In-process mode has no socket: the adapter says so on every line instead of failing.
    assert in_process.code == 0, in_process.out
    assert set(in_process.rows("runware").values()) == {"SKIP"}
    assert "in-process mode is HTTP only: rehearse a WebSocket client with --nanobanana-mode=live" in in_process.out


def test_coverage_goes_to_the_terminal_and_to_a_json_file_and_never_over_a_user_s_file(user: User) -> None:
    test_file = user.write("test_x.py", """
        import httpx

        def test_one(nanobanana):
            client = httpx.Client(base_url=nanobanana.base_url("qingbo"), headers=nanobanana.auth_headers("qingbo"))
            body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a cat"}
            assert client.post("/v1/tasks", json=body, headers={"Prefer": "wait=60"}).status_code == 200
    """)
    source = test_file.read_text()
    shown = user.pytest("--nanobanana-coverage", "test_x.py")  # the flag takes no value: test_x.py is the test
    assert shown.code == 0 and "nanobanana contract coverage" in shown.out and "qingbo (1 test(s))" in shown.out
    assert "written to" not in shown.out and test_file.read_text() == source
    written = user.pytest("--nanobanana-coverage-json", "coverage.json", "test_x.py")
    assert written.code == 0 and "written to coverage.json" in written.out, written.out
    report = json.loads((user.folder / "coverage.json").read_text())
    assert report["format"] == "nanobanana-sim contract coverage" and report["providers"]["qingbo"]["tests"] == 1
    for wrong in ("test_x.py", ".", "notes.json"):
        (user.folder / "notes.json").write_text("{}\n")
        refused = user.pytest(f"--nanobanana-coverage-json={wrong}")
        assert refused.code == 4 and "--nanobanana-coverage-json" in refused.out, refused.out
        assert "Traceback" not in refused.out
    assert test_file.read_text() == source and (user.folder / "notes.json").read_text() == "{}\n"


def test_strict_mode_fails_a_field_the_provider_ignores_that_the_default_run_warns_about(user: User) -> None:
    user.write("test_evolink.py", """
        import httpx

        def test_wide(nanobanana):
            client = httpx.Client(base_url=nanobanana.base_url("evolink"), headers=nanobanana.auth_headers("evolink"))
            body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a wide banner", "aspect_ratio": "16:9"}
            assert client.post("/v1/images/generations", json=body).status_code == 200
    """)
    lenient = user.pytest()
    assert lenient.code == 0 and "1 passed, 1 warning" in lenient.out, lenient.out
    assert "IgnoredFieldWarning" in lenient.out and "did you mean 'size' (the aspect ratio)" in lenient.out
    strict = user.pytest("--nanobanana-strict")
    assert strict.code == 1, strict.out
    assert "✗ aspect_ratio  [ignored-field] evolink does not document 'aspect_ratio' and ignores it" in strict.out


def test_markers_scenario_seed_self_check_and_in_process_flag(user: User) -> None:
    user.write("first-429.yaml", """
        # the first submit of every provider is refused with a 429
        faults: [{match: {operation: SubmitTask}, when: {times: 1}, do: {error: rate_limited, retry_after: 3}}]
    """)
    user.write("test_options.py", """
        import httpx
        import pytest

        BODY = {"model": "gemini-3.1-flash-image-preview", "prompt": "a cat"}


        def submit(nanobanana, wait=60):
            with httpx.Client(base_url=nanobanana.base_url("qingbo"), headers=nanobanana.auth_headers("qingbo")) as c:
                return c.post("/v1/tasks", json=BODY, headers={"Prefer": f"wait={wait}"} if wait else {})


        @pytest.mark.nanobanana(scenario=None)
        def test_seed_and_mode(nanobanana):
            with open("seen.txt", "a") as seen:
                seen.write(f"{nanobanana.mode} {submit(nanobanana).json()['task_id']}\\n")


        def test_scenario_from_the_command_line(nanobanana):
            assert submit(nanobanana).status_code in (402, 403)


        @pytest.mark.nanobanana("qingbo", scenario="first-429.yaml", seed=3)
        def test_marker_scenario_file(nanobanana):
            assert [submit(nanobanana).status_code for _ in range(2)] == [429, 200]


        @pytest.mark.nanobanana(clock="virtual", tick=5)
        def test_marker_clock(nanobanana):
            before = nanobanana.now()
            submit(nanobanana, wait=0)
            assert nanobanana.now() - before == 5


        @pytest.mark.nanobanana(contract=False)
        def test_marker_contract_off(nanobanana):
            with httpx.Client(base_url=nanobanana.base_url("qingbo"), headers=nanobanana.auth_headers("qingbo")) as c:
                assert c.post("/v1/tasks", json={"prompt": 1}).status_code == 400


        def test_self_check_mode(nanobanana):
            assert nanobanana.control.self_check()["mode"] == "strict"
    """)
    common = ("--nanobanana-scenario=empty-wallet", "--nanobanana-self-check=strict")
    runs = [user.pytest(*common, "--nanobanana-seed=7"), user.pytest(*common, "--nanobanana-seed=7"),
            user.pytest(*common, "--nanobanana-seed=0", "--nanobanana-mode=inprocess")]
    for run in runs:
        assert run.code == 0 and "6 passed" in run.out, run.out
    first, again, other = (user.folder / "seen.txt").read_text().splitlines()
    assert first == again and first.startswith("live ")  # the same seed and requests, the same task ID
    assert other.startswith("inprocess ") and other.split()[1] != first.split()[1]


def test_a_mistake_is_a_clear_usage_error_not_a_traceback(user: User) -> None:
    user.write("test_plain.py", "def test_plain():\n    pass\n")
    for args, said in [
        (("--nanobanana-rehearse=qingbo",), "no collected test module sees a `nanobanana_adapter` fixture"),
        (("--nanobanana-rehearse=dalle",), "unknown provider ['dalle']"),
        (("--nanobanana-coverage=x.json",), "--nanobanana-coverage: ignored explicit argument 'x.json'"),
    ]:
        run = user.pytest(*args)
        assert run.code in (2, 4) and said in run.out and "Traceback" not in run.out, (args, run.out)

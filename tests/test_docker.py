"""The container image: every provider on 0.0.0.0 inside it, the control plane behind a token, the README's curl
answered from outside.

Without a Docker daemon the image's own command (its ENTRYPOINT, CMD and ENV, read from the Dockerfile) is run
directly; where a daemon answers, the image is built and run, and the README's curl goes through the published port.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support_cli import run, served

from simulator.banner import LAST_LINE

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
TAG = "nanobanana-sim:test"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_command() -> list[str]:
    stage = dict(final_stage())
    return [*json.loads(stage["ENTRYPOINT"]), *json.loads(stage["CMD"])]


def readme_curl(base: str) -> str:
    """The README's first curl command, aimed at `base` instead of the default port."""
    readme = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "curl -s -X POST" in b)
    return block.replace("http://127.0.0.1:8000", base)


def test_the_base_image_is_a_pinned_python_slim_and_the_server_runs_as_no_root() -> None:
    steps = instructions()
    base = next(rest for keyword, rest in steps if keyword == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", base), base
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!simulator/" in ignored  # only what the wheel is built from goes to the daemon


def test_the_image_command_serves_every_provider_on_all_interfaces_with_a_random_token() -> None:
    command = image_command()
    assert command == ["nanobanana-sim", "serve"]
    env = image_environment()
    assert env["NANOBANANA_HOST"] == "0.0.0.0" and env["NANOBANANA_CONTROL_TOKEN"] == "random"
    # A free port, and the clock sped up so the curl's ?wait=60 needs no real queue time.
    with served(*command[2:], env={**env, "NANOBANANA_PORT": "0", "NANOBANANA_SPEED": "1000"}) as server:
        assert "(bound to 0.0.0.0:" in server.banner[0]
        [control] = [line for line in server.banner if line.strip().startswith("control")]
        token = re.search(r"token (\S+) \(send 'Authorization: Bearer (\S+)'\)", control)
        assert token is not None and token.group(1) == token.group(2) and len(token.group(1)) >= 20
        answer = subprocess.run(["bash", "-c", readme_curl(server.base)], capture_output=True, text=True, timeout=60)
        assert json.loads(answer.stdout)["status"] == "succeeded"


def test_the_image_command_without_a_token_is_refused_saying_how_to_set_one() -> None:
    env = {**image_environment(), "NANOBANANA_PORT": "0", "NANOBANANA_CONTROL_TOKEN": ""}
    result = run(*image_command()[1:], env=env)
    assert result.returncode == 2 and "NANOBANANA_CONTROL_TOKEN=TOKEN" in result.stderr


def test_the_readme_shows_docker_run_with_the_published_port() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "docker build -t nanobanana-sim ." in readme
    assert "docker run --rm -p 8000:8000 nanobanana-sim" in readme


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker daemon answers here ({(info.stderr.strip().splitlines() or ['docker info failed'])[-1]})"
    return None


@pytest.mark.slow
def test_the_built_image_answers_the_readme_curl_from_outside_the_container() -> None:
    reason = _docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    build = subprocess.run(["docker", "build", "-q", "-t", TAG, str(ROOT)], capture_output=True, text=True,
                           timeout=900)
    assert build.returncode == 0, build.stderr
    container = subprocess.run(["docker", "run", "-d", "-p", "127.0.0.1::8000", "-e", "NANOBANANA_SPEED=1000", TAG],
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        port = subprocess.run(["docker", "port", container, "8000/tcp"], capture_output=True, text=True,
                              check=True).stdout.split(":")[-1].strip()
        deadline = time.monotonic() + 120  # a bound on a hang, not a speed assertion
        logs = ""
        while LAST_LINE not in logs:
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
            logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True).stdout
        assert "(bound to 0.0.0.0:8000" in logs and re.search(r"_sim  token \S+", logs)
        answer = subprocess.run(["bash", "-c", readme_curl(f"http://127.0.0.1:{port}")], capture_output=True,
                                text=True, timeout=60)
        assert json.loads(answer.stdout)["status"] == "succeeded"
        subprocess.run(["docker", "stop", container], capture_output=True, check=True, timeout=60)
        status = subprocess.run(["docker", "wait", container], capture_output=True, text=True).stdout.strip()
        assert status == "0"
        goodbye = subprocess.run(["docker", "logs", container], capture_output=True, text=True).stdout
        assert "nanobanana-sim stopped on SIGTERM" in goodbye
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


"""`nanobanana-sim` as a user meets it: the console script in a subprocess, its exit codes, what it prints."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import socket
import subprocess

import httpx
import pytest
from PIL import Image
from support_cli import CLI, run, served

from simulator.faults.scenario import shipped
from simulator.options import provider_data
from simulator.providers import available


def curl_command(lines: list[str]) -> str:
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
    end = next(i for i, line in enumerate(lines) if line.strip().startswith("-d "))
    return "\n".join(lines[start:end + 1])


def test_the_console_script_is_the_one_this_virtualenv_installed() -> None:
    assert CLI.is_file(), f"{CLI} is missing: install the project into this virtualenv (make test does)"
    assert re.fullmatch(r"nanobanana-sim \S+\n", run("--version").stdout)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_banner_shows_the_setup_and_its_curl_command_works_as_printed() -> None:
    with served("--port", "0", "--speed", "1000", "--seed", "3") as server:
        banner = "\n".join(server.banner)
        assert re.match(r"nanobanana-sim \S+ serving on http://127\.0\.0\.1:\d+$", server.banner[0])
        for slug in available():
            assert f"{server.base}/{slug}" in banner
        assert re.search(r"^clock +real, 1000x faster than the providers' timings", banner, re.M)
        assert re.search(r"^seed +3$", banner, re.M)
        assert re.search(r"^scenarios +none$", banner, re.M)
        result = subprocess.run(["bash", "-c", curl_command(server.banner)], capture_output=True, text=True,
                                timeout=60)
        workflow = json.loads(result.stdout)
        assert workflow["status"] == "succeeded"
        url = workflow["steps"][0]["output"]["images"][0]["url"]
        # Civitai's blob URL answers 308 to the signed content, as the real blob host does: hence `curl -L`.
        assert httpx.get(url).status_code == 308
        download = subprocess.run(["curl", "-sL", url], capture_output=True, timeout=60)
        image = Image.open(io.BytesIO(download.stdout))
        assert (image.format, image.size) == ("JPEG", (1376, 768))


def test_real_timings_are_the_default_and_the_banner_says_how_to_speed_them_up() -> None:
    with served("--port", "0") as server:
        clock = next(line for line in server.banner if line.startswith("clock"))
        assert "real, the providers' own timings (--speed 50 makes them fifty times faster)" in clock


def test_a_stop_signal_ends_with_a_goodbye_and_status_0() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with served("--port", "0", "--virtual-clock") as server:
            httpx.get(f"{server.base}/qingbo/v1/tasks/nope", headers={"Authorization": "Bearer k"})
            out = server.stop(sig)
        assert server.returncode == 0, server.log
        assert re.fullmatch(rf"nanobanana-sim stopped on {sig.name} after [\d.]+ s: 1 request\(s\) served\n", out)
        assert not any("Traceback" in line for line in server.log), server.log


def test_provider_at_the_root_is_in_the_banner_and_serves_there() -> None:
    with served("--port", "0", "--provider", "crun", "--virtual-clock") as server:
        assert any(re.fullmatch(r"  root +\S+/ is crun \(--provider\)", line) for line in server.banner)
        answer = httpx.get(f"{server.base}/api/v1/client/account/balance", headers={"x-api-key": "k"})
        assert answer.status_code == 200 and answer.json()["code"] == 200


def test_serve_with_a_scenario_puts_it_in_force() -> None:
    with served("--port", "0", "--virtual-clock", "--seed", "7", "--scenario", "empty-wallet") as server:
        assert any(re.fullmatch(r"scenarios +empty-wallet \(GET /_sim/faults\)", line) for line in server.banner)
        response = httpx.post(f"{server.base}/crun/api/v1/client/job/CreateTask", headers={"x-api-key": "k"},
                              json={"model": "google/nano-banana", "input": {"prompt": "p"}})
        assert response.status_code == 402


def test_task_and_journal_capacity_bound_what_the_server_keeps() -> None:
    with served("--port", "0", "--virtual-clock", "--task-capacity", "2", "--journal-capacity", "3") as server:
        http = httpx.Client(base_url=f"{server.base}/qingbo", headers={"Authorization": "Bearer k"})
        body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a cat"}
        first = http.post("/v1/tasks", json=body).json()["task_id"]
        assert http.get(f"/v1/tasks/{first}").status_code == 200
        httpx.post(f"{server.base}/_sim/clock/advance", json={"seconds": 600})  # every task finishes
        later = [http.post("/v1/tasks", json=body).json()["task_id"] for _ in range(2)]
        info = httpx.get(f"{server.base}/_sim/").json()
        assert info["tasks_retention"] == {"capacity": 2, "retired": 1} and info["tasks"] == 2
        assert info["journal"]["entries"] == 3 and info["journal"]["dropped"] == 1
        # The retired task is gone as the provider says of an unknown one; the kept ones read back.
        assert http.get(f"/v1/tasks/{first}").json()["error"]["code"] == "task_not_found"
        assert all(http.get(f"/v1/tasks/{task}").status_code == 200 for task in later)


@pytest.mark.parametrize(("args", "says"), [
    (["--task-capacity", "0"], "--task-capacity: takes a whole number from 1 to 100000000, not 0"),
    (["--journal-capacity", "many"], "--journal-capacity: takes a whole number"),
    (["--option", "civitai.nope=1"], "civitai has no option 'nope'"),
    (["--option", "nodots"], "takes PROVIDER.OPTION=VALUE"),
    (["--port", "70000"], "takes a whole number from 0 to 65535, not 70000"),
    (["--log-format", "xml"], "takes one of text, json, not 'xml'"),
])
def test_a_bad_flag_value_is_refused_with_what_is_wrong(args: list[str], says: str) -> None:
    result = run("serve", *args)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_unknown_scenario_is_refused_with_the_shipped_names() -> None:
    result = run("serve", "--port", "0", "--scenario", "no-such-thing")
    assert result.returncode == 2
    assert "no-such-thing" in result.stderr and "chaos" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_refused_not_raised() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


# -- contradictory or inert combinations ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--autojump"], {}, "--autojump has no effect without --virtual-clock: write --virtual-clock --autojump"),
    (["--tick", "2"], {}, "--tick has no effect without --virtual-clock: write --virtual-clock --tick SECONDS"),
    (["--virtual-clock", "--speed", "50"], {}, "--speed has no effect with --virtual-clock: a virtual clock moves "
                                               "only when advanced"),
    (["--speed", "50"], {"NANOBANANA_VIRTUAL_CLOCK": "1"}, "--speed has no effect with NANOBANANA_VIRTUAL_CLOCK"),
    ([], {"NANOBANANA_AUTOJUMP": "yes"}, "NANOBANANA_AUTOJUMP has no effect without --virtual-clock"),
    (["--quiet", "--log-level", "debug"], {}, "--quiet hides the access log and --log-level asks for debug lines"),
    (["--host", "0.0.0.0"], {}, "--host 0.0.0.0 would open the control plane"),
    (["--host", "0.0.0.0", "--control-token", "random", "--quiet"], {},
     "--quiet hides the banner, the only place a random control token is shown"),
])
def test_contradictory_or_inert_combinations_are_refused_saying_what_to_write(
    args: list[str], env: dict[str, str], says: str
) -> None:
    result = run("serve", "--port", "0", *args, env=env)
    assert result.returncode == 2, result.stdout
    assert says in result.stderr and result.stdout == ""


def test_config_refuses_what_serve_would_refuse() -> None:
    result = run("config", "--autojump")
    assert result.returncode == 2 and "write --virtual-clock --autojump" in result.stderr and result.stdout == ""


def test_an_explicit_default_contradicts_nothing() -> None:
    assert run("config", "--virtual-clock", "--speed", "1", "--tick", "0").returncode == 0
    assert run("config", "--no-autojump", "--quiet", "--log-level", "error").returncode == 0


def test_binding_beyond_loopback_takes_a_token_and_the_refusal_says_how_to_set_one() -> None:
    refused = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "--control-token TOKEN or NANOBANANA_CONTROL_TOKEN=TOKEN" in refused.stderr
    assert "or bind 127.0.0.1" in refused.stderr
    with served("--host", "0.0.0.0", "--port", "0", "--virtual-clock", env={"NANOBANANA_CONTROL_TOKEN": "s3cret"}) \
            as server:
        assert "(bound to 0.0.0.0:" in server.banner[0] and "reachable from the network" in server.banner[0]
        control = next(line for line in server.banner if line.strip().startswith("control"))
        assert "s3cret" not in "\n".join(server.banner)  # a token the user chose is never printed
        assert control.endswith("(send 'Authorization: Bearer <your control token>')")


# -- what is shipped --------------------------------------------------------------------------------------------


def test_scenarios_lists_every_shipped_scenario_on_one_line_each() -> None:
    result = run("scenarios")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for entry in shipped():
        [line] = [line for line in lines if line.split(" ", 1)[0] == entry["name"]]
        assert len(line.split()) > 3  # the name, then what it rehearses
    assert "chaos" in result.stdout and "a seeded random mix of everything" in result.stdout


def test_scenarios_name_prints_the_whole_file_and_an_unknown_name_is_refused() -> None:
    result = run("scenarios", "empty-wallet")
    assert result.returncode == 0 and result.stdout.startswith("# empty-wallet") and "wallets:" in result.stdout
    unknown = run("scenarios", "nope")
    assert unknown.returncode == 2 and "shipped: " in unknown.stderr and "chaos" in unknown.stderr


def test_options_lists_every_named_option_on_one_line_each() -> None:
    result = run("options")
    assert result.returncode == 0
    for slug in available():
        for name, spec in provider_data(slug)["options"].items():
            [line] = [line for line in result.stdout.splitlines() if line.startswith(f"{slug}.{name}=")]
            assert spec["doc"] in line
    only = run("options", "crun").stdout.splitlines()
    assert only[0].startswith("crun.") and not any(line.startswith("civitai.") for line in only)
    assert "crun.callback_retry_delays=[5,10,30,60]" in run("options", "crun").stdout  # pasteable as --option


def test_the_scenario_help_points_at_the_scenarios_command_not_the_source_tree() -> None:
    help_text = run("serve", "--help").stdout
    assert "nanobanana-sim scenarios" in help_text and "contracts/scenarios" not in help_text
    assert "[NANOBANANA_PORT; default 8000]" in help_text and "--config" in help_text

"""A plain, non-editable install of the wheel carries its schemas and contracts and serves."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMOKE = textwrap.dedent("""
    import os, httpx, simulator
    from simulator.resources import schemas_dir, contracts_dir
    from simulator.clock import VirtualClock
    from simulator.live import LiveServer
    from simulator.sim import Simulator
    assert simulator.__file__.startswith(os.environ["SITE"]), simulator.__file__
    assert "_data" in str(schemas_dir()) and contracts_dir().is_dir()
    body = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "imagen4",
            "prompt": "p", "resolution": "1K"}}]}
    with LiveServer(Simulator(clock=VirtualClock(autojump=True))) as server:
        base = server.url + "/civitai/v2/consumer/workflows"
        headers = {"Authorization": "Bearer k"}
        bad = httpx.post(base, json=body, headers=headers)
        assert bad.status_code == 400 and "steps[0].input.resolution" in bad.json()["errors"], bad.text
        del body["steps"][0]["input"]["resolution"]
        good = httpx.post(base + "?wait=60", json=body, headers=headers)
        assert good.json()["status"] == "succeeded", good.text
    print("wheel ok")
""")


# A user's whole test file: the plugin comes from the installed package's entry point, nothing else.
USER_TEST = textwrap.dedent("""
    import httpx
    from simulator.resources import schemas_dir

    def test_generates_an_image(nanobanana):
        assert "_data" in str(schemas_dir())  # the installed wheel, not a checkout
        client = httpx.Client(base_url=nanobanana.base_url("evolink"), headers=nanobanana.auth_headers("evolink"))
        body = {"model": "gemini-3.1-flash-image-preview", "prompt": "a cat"}
        task = client.post("/v1/images/generations", json=body).json()
        while task["status"] not in ("completed", "failed"):
            nanobanana.sleep(3)
            task = client.get(f"/v1/tasks/{task['id']}").json()
        assert client.get(task["results"][0]).headers["content-type"] == "image/jpeg"
""")


@pytest.mark.slow
def test_wheel_installs_and_serves_without_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = wheels.glob("nanobanana_sim-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, wheel],
        check=True, capture_output=True, timeout=300,
    )
    result = subprocess.run(
        [sys.executable, "-c", SMOKE], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(site), "SITE": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "wheel ok" in result.stdout
    project = tmp_path / "user-project"
    project.mkdir()
    (project / "test_client.py").write_text(USER_TEST)
    for mode in ("live", "inprocess"):
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--nanobanana-mode={mode}"],
            cwd=project, capture_output=True, text=True, timeout=120,
            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        )
        assert run.returncode == 0 and "1 passed" in run.stdout, (mode, run.stdout, run.stderr)

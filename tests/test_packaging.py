"""A plain, non-editable install of the wheel carries its schemas and contracts and serves.

The plugin from the same wheel, in a fresh virtualenv, is tests/test_plugin_installed.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support_envs import project_wheel

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


@pytest.mark.slow
def test_wheel_installs_and_serves_without_the_checkout(tmp_path: Path) -> None:
    wheel = project_wheel()
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

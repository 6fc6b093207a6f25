"""The README's two commands as make runs them: `make serve` installs only what serving needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_installs_no_dev_extras_and_make_test_does(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    serve = subprocess.run(["make", "-n", "serve", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
    installs = [line for line in serve.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{venv}/bin/python -m pip install --quiet -e ."], serve.stdout
    assert f"{venv}/bin/nanobanana-sim serve" in serve.stdout
    test = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
    assert "pip install --quiet -e '.[dev]'" in test.stdout


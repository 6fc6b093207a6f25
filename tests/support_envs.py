"""Cached environments for the tests that run what users install, not the code this checkout imports.

- `python_env(requirements)`: a virtualenv holding exactly those requirements (an official SDK, pytest and
  the project's wheel, …), created once per requirement set and reused across runs.
- `node_env(packages)`: an npm folder holding those packages, installed from the npm registry with the
  machine's Node.js; None when Node.js or npm is missing, so the caller can skip with that reason.
- `project_wheel()`: the project built as a wheel once per content hash of the files that go into it.

Everything lives under `~/.cache/nanobanana-sim-tests` (or `$NANOBANANA_TEST_CACHE`), keyed by what was asked
for, so a second run on the same machine installs nothing. Each entry is built under a file lock (parallel
test workers wait for one another instead of racing) and only counts once its marker file is written, so an
interrupted install is redone rather than half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NANOBANANA_TEST_CACHE", Path.home() / ".cache" / "nanobanana-sim-tests"))
READY = ".ready"
# What goes into the wheel (pyproject's force-include and packages): a change to any of it is a new wheel.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "simulator", "schemas", "contracts")
INSTALL_TIMEOUT = 900


class EnvironmentUnavailable(RuntimeError):
    """The environment could not be built here (no network to a registry, no Node.js); the message says why."""


def _key(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: Sequence[str | Path], cwd: Path | None = None) -> None:
    try:
        done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentUnavailable(f"{' '.join(map(str, command))} took over {INSTALL_TIMEOUT} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise EnvironmentUnavailable(f"{' '.join(map(str, command))} failed:\n" + "\n".join(tail))


def python_env(requirements: Sequence[str | Path], *, name: str = "env") -> Path:
    """The `python` of a virtualenv holding `requirements` (pip specifiers or wheel paths), built once."""
    specs = [str(requirement) for requirement in requirements]
    home = CACHE / "python" / f"{name}-{sys.version_info.major}.{sys.version_info.minor}-{_key(specs)}"
    python = home / "bin" / "python"
    with _locked(home):
        if not (home / READY).exists():
            shutil.rmtree(home, ignore_errors=True)
            _run([sys.executable, "-m", "venv", home])
            _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *specs])
            (home / READY).write_text("\n".join(specs) + "\n")
    return python


def node_env(packages: Sequence[str], *, name: str = "node") -> Path:
    """A folder whose `node_modules` holds `packages` (npm specifiers), built once; run scripts from it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise EnvironmentUnavailable("Node.js and npm are not installed on this machine")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    home = CACHE / "node" / f"{name}-{version}-{_key(list(packages))}"
    with _locked(home):
        if not (home / READY).exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            (home / "package.json").write_text('{"name": "nanobanana-sim-test-env", "private": true}\n')
            _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages], cwd=home)
            (home / READY).write_text("\n".join(packages) + "\n")
    return home


def _tree_hash() -> str:
    digest = hashlib.sha256()
    for source in WHEEL_SOURCES:
        path = ROOT / source
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def project_wheel() -> Path:
    """The project's wheel for the checkout as it is now (rebuilt only when a file that goes into it changed)."""
    home = CACHE / "wheels" / _tree_hash()
    with _locked(home):
        wheels = sorted(home.glob("nanobanana_sim-*.whl"))
        if not (home / READY).exists() or not wheels:
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                  "-w", home, ROOT])
            (home / READY).write_text("")
            wheels = sorted(home.glob("nanobanana_sim-*.whl"))
    [wheel] = wheels
    return wheel

"""Run the Google SDK driver scripts of this folder in their cached environments and return what they printed.

The SDK versions the proof tests pin live in `gemini-sdks.json` beside this file. Each driver takes a base URL,
a scenario name and options as JSON, and prints one JSON object (`{"ok": true, ...}` or `{"ok": false,
"error": {...}}`). Node resolves packages from the script's own folder, so the Node drivers (and the helper
modules they import) are copied into the npm folder before they run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from support_envs import node_env, python_env

HERE = Path(__file__).resolve().parent
PINS: dict[str, Any] = json.loads((HERE / "gemini-sdks.json").read_text(encoding="utf-8"))
TIMEOUT = 120


def _result(command: list[str], cwd: Path | None = None) -> dict[str, Any]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command[:3])} exited {done.returncode}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def python_sdk() -> Path:
    return python_env(PINS["python"], name="gemini-python")


def node_sdks() -> Path:
    return node_env(PINS["node"], name="gemini-js")


def run_python(base_url: str, scenario: str, **options: Any) -> dict[str, Any]:
    """google-genai (sync and async) against `base_url` (the SDK's `http_options.base_url`)."""
    return _result([str(python_sdk()), str(HERE / "gemini_python.py"), base_url, scenario, json.dumps(options)])


def run_node(script: str, base_url: str, scenario: str, **options: Any) -> dict[str, Any]:
    """`gemini_js.mjs` (@google/genai) or `ai_sdk_google.mjs` (@ai-sdk/google + ai) against `base_url`."""
    home = node_sdks()
    for module in HERE.glob("*.mjs"):  # the driver and the helpers it imports
        shutil.copyfile(module, home / module.name)
    return _result(["node", str(home / script), base_url, scenario, json.dumps(options)], cwd=home)

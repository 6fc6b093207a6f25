"""Run the Runware SDK drivers of this folder in their cached environments and return what they printed.

Pins live in `runware-sdks.json`. Each driver takes the WebSocket URL and options as JSON and prints one JSON
object (`{"ok": true, "images": [...]}` or `{"ok": false, "error": {...}}`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sdk.drivers import _result
from support_envs import node_env, python_env

HERE = Path(__file__).resolve().parent
PINS: dict[str, Any] = json.loads((HERE / "runware-sdks.json").read_text(encoding="utf-8"))
# What each SDK is called in test ids, and how it is run.
SDKS = ("runware", "runware-sdk", "sdk-js")


def run(sdk: str, url: str, **options: Any) -> dict[str, Any]:
    """The driver of `sdk` (one of SDKS) against the WebSocket URL `url`."""
    if sdk == "sdk-js":
        home = node_env(PINS["node"], name="runware-js")
        shutil.copyfile(HERE / "runware_js.mjs", home / "runware_js.mjs")
        return _result(["node", str(home / "runware_js.mjs"), url, json.dumps(options)], cwd=home)
    python = python_env(PINS[sdk], name=sdk)
    script = "runware_ws05.py" if sdk == "runware" else "runware_ws18.py"
    return _result([str(python), str(HERE / script), url, json.dumps(options)])

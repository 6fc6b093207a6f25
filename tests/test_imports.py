"""Every module of the package imports on its own, first, in a fresh interpreter's state.

pytest loads the plugin's modules in whatever order a user's run reaches them (`--nanobanana-rehearse` reached
the fault checks before the engine, and a circular import crashed every run); the suite itself imports
`simulator` in its usual order long before, so only a fresh start per module finds such a cycle.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import simulator

PACKAGE = Path(simulator.__file__).resolve().parent

# One interpreter, with the package forgotten before each import: third-party modules stay loaded (they
# cannot take part in a cycle of ours), so every module of the package is tried first in about a second.
EACH_FIRST = textwrap.dedent("""
    import importlib, sys, traceback
    failed = []
    for name in sys.argv[1:]:
        for loaded in [m for m in sys.modules if m == "simulator" or m.startswith("simulator.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name + ":\\n" + traceback.format_exc(limit=-3))
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
""")


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":  # runs the command line when imported
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_each_module_imports_first() -> None:
    modules = _modules()
    assert "simulator.faults.scenario" in modules and "simulator.pytest_plugin" in modules
    done = subprocess.run([sys.executable, "-c", EACH_FIRST, *modules], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

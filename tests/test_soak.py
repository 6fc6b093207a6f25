"""`make soak`, short: 200 concurrent clients against `serve --scenario chaos`, then the audit (benchmarks/soak.py).

Asserted: every accepted task ends and reads back through its provider's route, and every 5xx is one a fault
rule explains. The figures (throughput, memory) are printed by `make soak` and judged there, never here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"^(?P<name>soak\.[\w.]+) (?P<value>-?\d+(?:\.\d+)?) (?P<unit>\S+)$")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc (Linux)")]


def test_under_chaos_no_accepted_task_is_lost_and_no_5xx_is_unexplained() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--duration", "5", "--clients", "200"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    figures = {}
    for line in done.stdout.splitlines():
        found = FIGURE.match(line)
        assert found, f"not `name value unit`: {line!r}"
        figures[found["name"]] = float(found["value"])
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert figures["soak.clients"] == 200 and figures["soak.tasks.accepted"] > 0, done.stdout
    assert figures["soak.tasks.lost"] == 0 and figures["soak.responses.5xx_unexplained"] == 0, done.stdout
    assert "soak: 200 clients under chaos for 5 s done" in done.stderr, done.stderr[-3000:]  # its progress
    assert figures["soak.responses.5xx"] > 0, "the chaos scenario forced no 5xx: the audit checked nothing"

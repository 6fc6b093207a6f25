"""`make bench` still runs: its smoke version (a few hundred requests, pyload, no Prism, no wrk) end to end.

Only that it runs and prints parseable figures is checked: speed is judged by `make bench`, never here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(
    r"^(?P<name>[\w.:-]+) (?P<value>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?) (?P<unit>req/s|ms|MB|KB|B|ratio|count)$"
)

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the benchmark reads memory from /proc (Linux)")
def test_smoke_benchmark_prints_every_section_as_name_value_unit() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--smoke", "--providers", "civitai"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bench: throughput done" in done.stderr, done.stderr[-3000:]  # long sections report their progress
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    figures = {}
    for line in lines:
        found = FIGURE.match(line)
        assert found, f"not `name value unit`: {line!r}"
        figures[found["name"]] = float(found["value"])
    for name in ("bare.get.rps", "sim.civitai.poll.rps", "sim.civitai.submit.of_bare", "sim.civitai.invalid.p99",
                 "image.jpeg.1024x1024.first_of_naive", "image.render_load.p99", "waiters.count", "tasks.per_task"):
        assert name in figures, f"{name} missing from:\n{done.stdout}"
    assert figures["bare.get.rps"] > 0 and figures["waiters.count"] > 0 and figures["tasks.count"] > 0

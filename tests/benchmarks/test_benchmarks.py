"""Smoke runs of the benchmark scripts (``--quick``), so that they do not rot.

They assert only that each script runs and prints its comparison; the figures themselves are
in docs/benchmarks.md, from full runs.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("bench_simulate.py", ["--quick"], "ratio (per sample)"),
        ("bench_render.py", ["--quick"], "render only:"),
        ("bench_detect.py", ["--quick"], "(b) sevi detector"),
        ("bench_synth.py", ["--quick"], "ratio"),
        ("bench_fit.py", ["--quick", "speed"], "ratio fit / exact evaluation"),
    ],
)
def test_benchmark_runs(script, args, expect):
    res = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert expect in res.stdout


def test_nn_vs_fit_refuses_missing_run(tmp_path):
    res = subprocess.run([sys.executable, str(BENCH / "bench_nn_vs_fit.py"), "--workdir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert "no such file" in res.stderr and "Traceback" not in res.stderr

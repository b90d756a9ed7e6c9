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
        ("bench_survey.py", ["--frames", "16", "--electrons", "40"], "identical: True"),
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


def _bench_module(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_full_size_pooled_summary():
    """The pooled ratio is that of root-mean-square distances, not the mean of the files' ratios."""
    pooled = _bench_module("bench_full_size").pooled

    def run(cal, true, expected, fit_expected, residual):
        return {"rows": [{"calibrated": cal, "true": true, "ratio": cal / true, "expected": expected,
                          "fit_expected": fit_expected, "residual": residual}]}

    # file 1: calibrated 3 against true 1 (ratio 3); file 2: 1 against 3 (ratio 1/3)
    (p,) = pooled([run(3.0, 1.0, 5.0, 4.0, 3.0), run(1.0, 3.0, 5.0, 4.0, 3.0)])
    assert p["ratios"] == [3.0, 1.0 / 3.0]
    assert p["ratio"] == pytest.approx(1.0)  # sqrt((9 + 1) / (1 + 9)), where the files' mean ratio is 1.67
    assert p["expected_ratio"] == pytest.approx(1.25)
    assert p["residual"] == pytest.approx(1.0)  # |b_cal - b_true|^2 = 9 = E_cal^2 - E_fit^2 in each file

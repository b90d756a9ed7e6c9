"""Tests of sevi_lib.report.markdown: the whole report from a run's files."""

import datetime

import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import truth_dtype, write_answer, write_h5
from sevi_lib.report.markdown import build_report, parse_pairs

NOW = datetime.datetime(2026, 1, 2, 3, 4)


@pytest.fixture
def run_files(tmp_path):
    beta = np.array([[1.0, 0.5], [0.3, 0.1]])
    write_answer(tmp_path / "fit.h5", [0.5, 0.8], beta)
    write_answer(tmp_path / "nn.h5", [0.5, 0.8], beta + 0.01)
    truth = np.zeros(2, dtype=truth_dtype(2))
    truth["R"], truth["sigma_R"], truth["beta"] = [0.5, 0.8], 0.007, beta
    write_h5(tmp_path / "truth.h5", Truth=truth)
    (tmp_path / "summary.txt").write_text("frames: 3\n")
    (tmp_path / "score.tsv").write_text("method\td_0\td_1\nfit\t0.1\t0.2\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,train_mean,val_mean,t_epoch,samples_per_s\n1,0.9,0.8,5.0,7.0\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "fit.tsv").write_text("s\tmax_rss\n3.0\t100\n")
    return tmp_path


def test_all_sections_in_order(run_files):
    t = run_files
    text = build_report(t / "out" / "report.md", frames="f.h5", detect_summary=t / "summary.txt",
                        count_map_png=t / "map.png", answers={"fit": t / "fit.h5", "nn": t / "nn.h5"},
                        final="fit", truth=t / "truth.h5", score=t / "score.tsv", runs={"pretrain": t / "run"},
                        benchmarks=t / "bench", now=NOW)
    assert text.startswith("# sevi report\n\nWritten 2026-01-02 03:04 for `f.h5`.")
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## Detection", "## Answers side by side", "## Score", "## Network training",
                     "## Where the time went"]
    assert "![count map](../map.png)" in text and "is **fit**'s" in text


def test_no_runs_no_training_section(run_files):
    text = build_report(run_files / "r.md", answers={"fit": run_files / "fit.h5"}, runs={}, now=NOW)
    assert "## Network training" not in text and "## Answers side by side" in text


def test_nothing_given_is_a_title_only():
    assert build_report("r.md", now=NOW) == "# sevi report\n\nWritten 2026-01-02 03:04.\n"


def test_pairs():
    assert parse_pairs(["a=x", "b=y=z"], "--answer") == {"a": "x", "b": "y=z"}
    assert parse_pairs([], "--run") == {}
    with pytest.raises(InputError, match="--run: expected NAME=PATH"):
        parse_pairs(["a"], "--run")

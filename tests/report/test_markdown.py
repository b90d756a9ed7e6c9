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


def test_camera_figure_follows_the_count_map_in_the_detection_section(run_files):
    t = run_files
    text = build_report(t / "out" / "report.md", detect_summary=t / "summary.txt", count_map_png=t / "map.png",
                        camera_png=t / "camera.png", now=NOW)
    assert text.index("![count map](../map.png)") < text.index("![camera spot model](../camera.png)")
    assert "camera spot model" not in build_report(t / "r.md", detect_summary=t / "summary.txt", now=NOW)


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


def test_three_shells_centre_and_background_are_listed(tmp_path):
    # lab data: every shell in the answers table, the fitted centre and background with errors
    beta = np.array([[1.0, 0.5], [-0.4, 0.1], [0.3, 0.1]])
    write_answer(tmp_path / "fit.h5", [0.3, 0.55, 0.8], beta)
    side = {"method": "unbinned", "R": [0.3, 0.55, 0.8], "sigma_R": [0.006, 0.007, 0.008],
            "se_sigma_R": [1e-4] * 3, "se_R": [1e-4] * 3, "se_beta": [[0.01, 0.01]] * 3, "weights": [1e5, 1e5, 1e5], "expected_distance": [0.01] * 3,
            "floor": [0.009] * 3, "constraint_active": [False] * 3, "n_iter": 9, "converged": True,
            "centre": [3.0 / 512, -2.0 / 512], "centre_se": [0.01 / 512, 0.02 / 512],
            "background": 2500.0, "background_se": 60.0, "background_per_frame": 2.5, "background_per_frame_se": 0.06,
            "shell_search": {"test": "Z >= 5", "peaks": [{"R": 0.3, "significance": 80.0, "accepted": True},
                                                          {"R": 0.55, "significance": 60.0, "accepted": True},
                                                          {"R": 0.8, "significance": 70.0, "accepted": True},
                                                          {"R": 0.95, "significance": 1.2, "accepted": False}]}}
    (tmp_path / "fit.json").write_text(__import__("json").dumps(side))
    text = build_report(tmp_path / "r.md", answers={"fit": tmp_path / "fit.h5"}, fit_sidecar=tmp_path / "fit.json",
                        now=NOW)
    assert "x0 = +3.000 ± 0.010 px, z0 = -2.000 ± 0.020 px" in text
    assert "2500.0 ± 60.0 electrons over the screen (2.5000 ± 0.0600 per frame)" in text
    assert "3 shell(s) fitted; Z >= 5." in text
    assert "| 0.9500 | 1.2 | no |" in text
    assert all(f"Shell {j} (smaller radius first)" in text for j in range(3))


def test_old_sidecar_without_centre_has_no_geometry_section(run_files):
    (run_files / "fit.json").write_text('{"method": "unbinned", "R": [0.5, 0.8]}')
    text = build_report(run_files / "r.md", answers={"fit": run_files / "fit.h5"}, now=NOW)
    assert "## Image centre" not in text


def test_network_ensemble_section_lists_members_answer_errors_and_final(tmp_path):
    import json

    members = np.array([[[0.98, 0.83] + [0.0] * 10, [0.70, 0.60] + [0.0] * 10],
                        [[0.99, 0.84] + [0.0] * 10, [0.71, 0.61] + [0.0] * 10]])
    se = np.full((2, 12), 0.004)
    doc = {"R": [0.5, 0.8], "beta": members.mean(0).tolist(), "se": se.tolist(),
           "beta_network": members.mean(0).tolist(), "se_network": (2 * se).tolist(), "members": members.tolist(),
           "M": 2, "combined": True, "weight_network": np.full((2, 12), 0.2).tolist()}
    (tmp_path / "nn.json").write_text(json.dumps(doc))
    write_answer(tmp_path / "nn.h5", np.array([0.5, 0.8]), members.mean(0))
    text = build_report(tmp_path / "report.md", answers={"nn": str(tmp_path / "nn.h5")}, final="fit",
                        nn_sidecar=str(tmp_path / "nn.json"), now=datetime.datetime(2026, 12, 6))
    section = text.split("## Network ensemble")[1]
    assert "| 0 | member 0 | 0.9800 | 0.8300 |" in section and "| 1 | member 1 | 0.7100 | 0.6100 |" in section
    assert "| 0 | ensemble of 2 (network alone) | 0.9850 ± 0.0080 | 0.8350 ± 0.0080 |" in section
    assert "shrunk towards the fit (answer `nn`) | 0.9850 ± 0.0040" in section
    assert "`results/final.h5` is **fit**'s answer" in section and "beta_2 0.20" in section
    assert "0.9850 ± 0.0040" in text.split("## Answers side by side")[1]  # the nn column carries its errors


def test_calibration_section_gives_each_shells_corrected_electrons(tmp_path):
    import json

    cal = {"R": [0.5, 0.8], "weights": [105000.0, 99000.0], "se_weights": [400.0, 350.0],
           "expected_distance": [0.004, 0.003],
           "bias": {"R": [1e-4, 2e-5], "ln_weights": [float(np.log(0.95)), float(np.log(1.0))],
                    "beta": [[0.02, 0.01], [0.0, 0.0]]},
           "bias_se": {"R": [1e-5, 1e-5], "beta": [[0.002, 0.002], [0.001, 0.001]]},
           "uncorrected": {"weights": [99750.0, 99000.0], "expected_distance": [0.0038, 0.003]},
           "calibration": {"frames_per_pass": 2000, "seconds": 12.0}, "passes": [{}]}
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    text = build_report(tmp_path / "r.md", calibration=tmp_path / "cal.json", now=NOW)
    rows = [line for line in text.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert "electrons (fit -> corrected)" in text
    assert "| 0.9500 | 99750 -> 105000 ± 400 |" in rows[0] and "| 1.0000 | 99000 -> 99000 ± 350 |" in rows[1]
    assert "2000 frames per pass simulated" in text and "top-up" not in text
    cal["passes"] = [{"top_up_frames": 1500}]
    cal["calibration"]["settings"] = {"max_added_error": 0.1}
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    text = build_report(tmp_path / "r.md", calibration=tmp_path / "cal.json", now=NOW)
    assert "2000 frames per pass and 1500 more (a top-up" in text and "by more than 10 %" in text

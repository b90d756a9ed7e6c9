"""The Snakemake workflow on the small `.test` configuration: a real end-to-end run, then dry
runs that check which jobs an edited config value reruns (params reach exactly their stage)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sevi_lib.core.io import read_answer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def snakemake(workdir, *args, check=True):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    res = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def planned_jobs(workdir, *args):
    """Rule name -> job count of a dry run."""
    res = snakemake(workdir, "-n", *args)
    out = res.stdout + res.stderr
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    block = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def _copy_workflow(dest):
    for name in ("Snakefile", "workflow", "config", ".test", "profiles"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A finished run of the .test configuration in a copy of the workflow."""
    wd = _copy_workflow(tmp_path_factory.mktemp("wf"))
    snakemake(wd, "--configfile", ".test/config/config.yaml")
    return wd


def _override(wd, doc):
    path = wd / "override.yaml"
    path.write_text(yaml.safe_dump(doc))
    return ["--configfile", ".test/config/config.yaml", "override.yaml"]


def test_default_dry_run_lists_synthesis(tmp_path):
    jobs = planned_jobs(_copy_workflow(tmp_path))
    assert jobs["simulate"] == 1 and jobs["detect"] == 10 and jobs["score"] == 1


def test_real_data_skips_synthesis_and_score(tmp_path):
    wd = _copy_workflow(tmp_path)
    import h5py

    from sevi_lib.core.io import FINAL_IMAGE_DTYPE
    with h5py.File(wd / "frames.h5", "w") as f:  # a valid, empty FinalImage (checked at start)
        f.create_dataset("FinalImage", shape=(0,), dtype=FINAL_IMAGE_DTYPE)
    jobs = planned_jobs(wd, "--config", "test_images=frames.h5")
    assert "simulate" not in jobs and "score" not in jobs and jobs["detect"] == 10


def test_end_to_end_outputs(ran):
    final, fit = read_answer(ran / "results/final.h5"), read_answer(ran / "results/answer/fit_calibrated.h5")
    np.testing.assert_array_equal(final, fit)  # answer.method: fit, calibrated
    assert np.all(np.diff(final["R"]) > 0)
    rows = (ran / "results/score.tsv").read_text().splitlines()
    assert rows[0].split("\t")[0] == "method" and [r.split("\t")[0] for r in rows[1:]] == ["fit", "fit_uncorrected", "nn"]
    report = (ran / "results/report.md").read_text()
    for section in ("## Detection", "## Answers side by side", "## Detector calibration", "## Score",
                    "## Network ensemble", "## Network training"):
        assert section in report
    assert "member 0 round 0" in report and "member 1 round 0" in report
    assert "![camera spot model](detect/camera.png)" in report
    assert (ran / "results/detect/camera.png").read_bytes()[:4] == b"\x89PNG"
    assert planned_jobs(ran, "--configfile", ".test/config/config.yaml") == {}  # nothing left to do


def test_detector_threshold_reruns_detection_not_synthesis(ran):
    jobs = planned_jobs(ran, *_override(ran, {"detect": {"threshold": 12}}))
    assert "simulate" not in jobs
    assert jobs["detect"] == 3 and jobs["accumulate"] == 1 and jobs["fit"] == 1


def test_simulation_value_reruns_synthesis(ran):
    jobs = planned_jobs(ran, *_override(ran, {"simulation": {"seed": 7}}))
    assert jobs["simulate"] == 1 and jobs["detect"] == 3


def test_training_setting_reruns_training_and_prediction_only(ran):
    jobs = planned_jobs(ran, *_override(ran, {"nn": {"train": {"lr": 0.002}}}))
    assert set(jobs) == {"pretrain", "finetune", "predict", "score", "report", "all"}


def test_ensemble_members_are_separate_gpu_jobs_with_their_own_seeds_and_shards(tmp_path):
    wd = _copy_workflow(tmp_path)
    res = snakemake(wd, "-n", "-p", *_override(wd, {"nn": {"members": 3, "finetune": {"rounds": 2}}}))
    out = res.stdout
    jobs = re.findall(r"rule finetune:\n(?:    .*\n)*?    wildcards: m=(\d+), r=(\d+)\n(?:    threads: .*\n)?    resources: ([^\n]*)", out)
    assert sorted((m, r) for m, r, _ in jobs) == [(str(m), str(r)) for m in range(3) for r in range(2)]
    assert all("gpu=1" in resources for _, _, resources in jobs)
    commands = [ln for ln in out.splitlines() if ln.startswith("Shell command: ") and "sevi train " in ln]
    finetune = [c for c in commands if "--init-from" in c]
    seeds = {re.search(r"--run-dir results/nn/finetune/m(\d)/round(\d)", c).groups(): re.search(r" --seed (\d+)", c)[1]
             for c in finetune}
    assert {m: s for (m, _), s in seeds.items()} == {"0": "0", "1": "1", "2": "2"}
    assert all(f"--train results/nn/finetune/data/m{m}_round{r}_0.h5" in c
               for c in finetune for m, r in [re.search(r"finetune/m(\d)/round(\d)", c).groups()])
    ensemble = [ln for ln in out.splitlines() if ln.startswith("Shell command: ") and "sevi nn ensemble " in ln]
    assert len(ensemble) == 1 and all(f"results/nn/finetune/m{m}/round1/best.pt" in ensemble[0] for m in range(3))
    assert "--prior-sidecar results/answer/fit.json" in ensemble[0]


def test_spot_model_reruns_the_survey_and_everything_after_it(ran):
    jobs = planned_jobs(ran, *_override(ran, {"detect": {"spot_model": {"sigma_px": 7.7, "gain": "gamma"}}}))
    assert "simulate" not in jobs and jobs["survey"] == 1 and jobs["camera_png"] == 1
    assert jobs["detect"] == 3 and jobs["accumulate"] == 1 and jobs["fit"] == 1 and jobs["report"] == 1


def test_spot_model_reaches_the_survey_not_the_detector(tmp_path):
    wd = _copy_workflow(tmp_path)
    res = snakemake(wd, "-n", "-p", *_override(wd, {"detect": {"spot_model": {"sigma_px": 5, "gain": "gamma"}}}))
    commands = [ln for ln in res.stdout.splitlines() if ln.startswith("Shell command: ")]
    survey = [c for c in commands if " sevi survey " in f" {c[15:]}"]
    detect = [c for c in commands if "sevi detect " in c or "sevi calibrate " in c or "sevi calibrate-shard " in c]
    assert len(survey) == 1 and """--spot-model '{"gain":"gamma","sigma_px":5}'""" in survey[0]
    assert len(detect) == 3 + 1 + 3 and not [c for c in detect if "spot" in c]
    assert [c for c in commands if "sevi plot-camera results/detect/camera.json --out results/detect/camera.png" in c]


@pytest.mark.parametrize("fraction", [0.0, 0.25])
def test_synthesis_reads_the_camera_only_with_detector_like_maps(tmp_path, fraction):
    wd = _copy_workflow(tmp_path)
    res = snakemake(wd, "-n", "-p", *_override(wd, {"nn": {"detector_fraction": fraction}}))
    synth = [ln for ln in res.stdout.splitlines() if ln.startswith("Shell command: ") and "sevi nn synth " in ln]
    assert synth and all(("--camera results/detect/camera.json" in c) == (fraction > 0) for c in synth)


def test_calibration_setting_reruns_calibration_and_what_follows(ran):
    jobs = planned_jobs(ran, *_override(ran, {"calibrate": {"seed": 3}}))
    assert set(jobs) == {"calibrate_shard", "calibrate", "final", "score", "report", "all"}
    assert jobs["calibrate_shard"] == 3  # calibrate.shards 0: as many as detect.shards


def test_calibration_shards_and_their_commands(tmp_path):
    """calibrate.shards sets the shard jobs; each gets its index, the count and every calibration
    and detector value; the combining job reads all of them and gets the same values."""
    wd = _copy_workflow(tmp_path)
    doc = {"calibrate": {"shards": 4, "seed": 7}, "detect": {"threshold": 12}}
    res = snakemake(wd, "-n", "-p", *_override(wd, doc))
    commands = [ln[15:] for ln in res.stdout.splitlines() if ln.startswith("Shell command: ")]
    shards = [c for c in commands if "sevi calibrate-shard " in c]
    combine = [c for c in commands if "sevi calibrate " in c]
    assert sorted(int(re.search(r"--shard (\d+) --shards 4 ", c).group(1)) for c in shards) == [0, 1, 2, 3]
    assert len(combine) == 1 and all("--seed 7" in c and "--threshold 12" in c for c in shards + combine)
    assert all(f"results/calibrate/shards/shard_{i}.h5" in combine[0] for i in range(4))
    assert "--shard-files" in combine[0] and "--shards " not in combine[0]


def test_fit_setting_reruns_fit_and_what_follows(ran):
    jobs = planned_jobs(ran, *_override(ran, {"fit": {"max_iter": 31}}))
    # the fitted centre is drawn on the count map and recentres the network's input
    assert {"fit", "final", "score", "report", "count_map_png", "centre_map"} <= set(jobs)
    assert not {"simulate", "survey", "detect", "accumulate", "pretrain"} & set(jobs)


@pytest.mark.parametrize("doc, message", [
    ({"detect": {"threshold": "high"}}, "threshold"),
    ({"simulation": {"n_frames": 0}}, "n_frames"),
    ({"fit": {"method": "abel"}}, "abel"),
    ({"detect": {"thresold": 10}}, "thresold"),
    ({"nn": {"pretrain": {"train": {"lrr": 0.1}}}}, "lrr"),
    ({"nn": {"train": {"epoch": 3}}}, "epoch"),
    ({"nn": {"finetune": {"prior": {"R_widht": 0.01}}}}, "R_widht"),
    ({"nn": {"predict": {"devcie": "cpu"}}}, "devcie"),
    ({"calibrate": {"block": 4}}, "block"),
    ({"calibrate": {"n_shards": 4}}, "n_shards"),
    ({"calibrate": {"shards": -1}}, "shards"),
    ({"fit": {"n_bta": 4}}, "n_bta"),
    ({"detect": {"spot_model": "wide"}}, "wide"),
    ({"detect": {"spot_model": {"sigma_px": 5, "colour": "red"}}}, "colour"),
])
def test_bad_config_is_refused_by_the_schema(tmp_path, doc, message):
    wd = _copy_workflow(tmp_path)
    res = snakemake(wd, "-n", *_override(wd, doc), check=False)
    assert res.returncode != 0 and message in res.stdout + res.stderr


def _one_error_line(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("sevi: error:")]
    return lines[0] if len(lines) == 1 else res.stdout[-2000:] + res.stderr[-2000:]


@pytest.mark.parametrize("key", ["test_images", "truth"])
def test_missing_user_file_is_refused_before_any_job(ran, key):
    """Issue 11: a path that does not exist stops the run at once (not 'Nothing to be done')."""
    res = snakemake(ran, "--configfile", ".test/config/config.yaml", "--config", f"{key}=/nonexistent.h5", check=False)
    assert res.returncode == 2
    assert _one_error_line(res) == f"sevi: error: config {key}: /nonexistent.h5: no such file"


def test_empty_test_images_means_the_default(tmp_path):
    jobs = planned_jobs(_copy_workflow(tmp_path), "--config", "test_images=", "truth=")
    assert jobs["simulate"] == 1


def test_editing_read_size_or_threads_reruns_nothing(ran):
    assert planned_jobs(ran, *_override(ran, {"detect": {"chunk": 5, "threads": 2}, "fit": {"threads": 1}})) == {}


def test_snakefile_from_another_folder_finds_its_config(ran, tmp_path):
    jobs = planned_jobs(tmp_path, "-s", str(ran / "Snakefile"))
    assert jobs["simulate"] == 1 and jobs["detect"] == 10


def test_user_file_with_spaces_fit_only_and_new_contents(ran, tmp_path):
    """Paths with spaces reach every command quoted; answer.methods [fit] runs (no network, report
    without training runs); another file at the same path reruns detection and what follows."""
    import h5py

    data = tmp_path / "my data"
    data.mkdir()
    frames, truth = data / "frames 1.h5", data / "truth 1.h5"
    shutil.copy(ran / "results/simulate/frames.h5", frames)
    shutil.copy(ran / "results/simulate/truth.h5", truth)
    (tmp_path / "wd").mkdir()
    wd = _copy_workflow(tmp_path / "wd")
    args = [*_override(wd, {"test_images": str(frames), "truth": str(truth),
                            "answer": {"methods": ["fit"], "method": "fit"}})]
    snakemake(wd, *args)
    rows = (wd / "results/score.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["fit", "fit_uncorrected"]
    report = (wd / "results/report.md").read_text()
    assert "## Detector calibration" in report and "## Network training" not in report
    # the same detections as the default run on the same frames
    import numpy as np
    from sevi_lib.core.io import read_detected
    np.testing.assert_array_equal(read_detected(wd / "results/detect/electrons.h5")["x"],
                                  read_detected(ran / "results/detect/electrons.h5")["x"])
    assert planned_jobs(wd, *args) == {}
    with h5py.File(frames, "a") as f:  # new contents at the same path (older time stamps too)
        f.attrs["note"] = "another acquisition"
    os.utime(frames, (1, 1))
    jobs = planned_jobs(wd, *args)
    assert jobs["detect"] == 3 and jobs["accumulate"] == 1 and jobs["fit"] == 1


def test_snakemake_html_report_after_a_run(ran):
    """`snakemake --report` (no --cores) builds one self-contained page of the marked results."""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", ".test/config/config.yaml", "--report",
           "results/report.html"]
    res = subprocess.run(cmd, cwd=ran, env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    page = ran / "results/report.html"
    assert page.stat().st_size > 100_000, res.stdout[-2000:] + res.stderr[-2000:]
    text = page.read_text(errors="replace")
    for marked in ("count_map.png", "fit.png", "score.tsv", "loss.png", "report.md"):
        assert marked in text

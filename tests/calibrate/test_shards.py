"""Calibration shards (issue 20): the answer is the same for any shard count, and bad shard sets are refused."""

import json

import numpy as np
import pytest

from sevi_lib.calibrate import (
    CalibrationSettings,
    ResponseSample,
    calibrate,
    combine_shards,
    join_samples,
    simulate_response,
    simulate_shard,
)
from sevi_lib.cli import main
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_answer, write_answer, write_h5
from sevi_lib.core.shells import Shells
from sevi_lib.detect.camera import CameraSurvey, write_survey
from sevi_lib.fit import fit_electrons
from sevi_lib.simulate.electrons import simulate_electrons
from sevi_lib.simulate.settings import SimulationSettings

N_FRAMES = 300
SETTINGS = ["--frames", "40", "--blocks", "4", "--chunk", "6", "--seed", "2"]
#: sidecar keys that are timings or paths (they differ from run to run; everything else must not)
TIMING = {"seconds", "simulate_detect_seconds", "fit_seconds", "frames_per_second", "shard_seconds", "input",
          "shards"}


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory):
    """A fit (Answer + sidecar) of one peaked shell with a flat background, its electron file and a camera."""
    d = tmp_path_factory.mktemp("fit")
    sh = Shells([0.5], [0.007], [[1.0, 0.6, 0.25, 0.05]])
    e = simulate_electrons(sh, SimulationSettings(n_frames=N_FRAMES, electrons_per_shell=[30.0], detection_loss=0.0,
                                                 seed=5, stray_electrons=2.0)).detected
    fit = fit_electrons(e["x"], e["z"], n_beta=4, n_shells=1)
    write_answer(d / "fit.h5", fit.R, fit.beta)
    (d / "fit.json").write_text(json.dumps(fit.to_dict()))
    write_h5(d / "electrons.h5", attrs={"n_frames": N_FRAMES}, DetectedElectrons=e)
    write_survey(d / "camera.json", CameraSurvey(read_noise=1.5, read_noise_se=0.01, pedestal=0.0, pedestal_se=0.01,
                                                 hot_pixels=((100, 200), (512, 512)), hot_levels=(200.0, 150.0)))
    return d, fit


def _inputs(d):
    return [str(d / "fit.h5"), str(d / "fit.json"), "--electrons", str(d / "electrons.h5"),
            "--camera", str(d / "camera.json"), "--quiet"]


def _shards(d, out, k, *extra):
    files = []
    for i in range(k):
        files.append(str(out / f"shard_{i}_of_{k}.h5"))
        assert main(["calibrate-shard", *_inputs(d), "--shard", str(i), "--shards", str(k), *SETTINGS, *extra,
                     "--out", files[-1]]) == 0
    return files


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in TIMING}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


@pytest.fixture(scope="module")
def runs(fit_files, tmp_path_factory):
    """The calibration of the fit unsharded, from 1 shard and from 3 shards (CLI, same settings)."""
    d, _ = fit_files
    out = tmp_path_factory.mktemp("cal")
    res = {}
    assert main(["calibrate", *_inputs(d), *SETTINGS, "--out", str(out / "none.h5"),
                 "--out-sidecar", str(out / "none.json")]) == 0
    for k in (1, 3):
        files = _shards(d, out, k)
        # shards in any order
        assert main(["calibrate", *_inputs(d), *SETTINGS, "--shard-files", *files[::-1],
                     "--out", str(out / f"k{k}.h5"), "--out-sidecar", str(out / f"k{k}.json")]) == 0
    for name in ("none", "k1", "k3"):
        res[name] = (read_answer(out / f"{name}.h5"), json.loads((out / f"{name}.json").read_text()))
    return out, res


@pytest.mark.parametrize("name", ["k1", "k3"])
def test_the_answer_does_not_depend_on_the_shard_count(runs, name):
    """Bit for bit: Answer table and every number of the sidecar besides timings and paths."""
    _, res = runs
    table, side = res[name]
    ref_table, ref_side = res["none"]
    assert table.tobytes() == ref_table.tobytes()
    assert _strip(side) == _strip(ref_side)
    assert side["calibration"]["shards"] == int(name[1:]) and side["passes"][0]["detected_electrons"] > 0


def test_join_samples_refuses_gaps_overlaps_and_other_sets():
    def piece(a, b, n=10, blocks=2):
        x = np.arange(a, b, dtype=np.float64)
        blk = (np.arange(a, b) * blocks // n).astype(np.int16)
        return ResponseSample(x, x, blk, x, x, blk, n, blocks, 1.0, a, b)

    whole = join_samples([piece(4, 10), piece(0, 4)])
    assert (whole.frame_start, whole.frame_stop, whole.seconds) == (0, 10, 2.0)
    assert np.array_equal(whole.true_x, np.arange(10.0))
    for parts, message in (([piece(0, 4), piece(5, 10)], "frames 4 .. 4 missing"),
                           ([piece(0, 5), piece(4, 10)], "overlaps"),
                           ([piece(0, 4), piece(4, 9)], "not at 10"),
                           ([piece(0, 4), piece(4, 10, blocks=3)], "3 blocks")):
        with pytest.raises(InputError, match=message):
            join_samples(parts, names=["a.h5", "b.h5"])


def test_empty_shards_when_fewer_frames_than_shards(fit_files):
    _, fit = fit_files
    st = CalibrationSettings(frames=2, blocks=2, progress_seconds=0)
    parts = [simulate_shard(fit, N_FRAMES, i, 4, settings=st)[0] for i in range(4)]
    assert [(p.frame_start, p.frame_stop) for p in parts] == [(0, 0), (0, 1), (1, 1), (1, 2)]
    whole = join_samples(parts)
    assert (whole.frame_start, whole.frame_stop) == (0, 2) and whole.true_x.size > 40


def test_further_passes_run_in_the_combining_job(fit_files):
    """iterations = 1: pass 0 from 2 shards, pass 1 simulated by the combining job; as unsharded."""
    _, fit = fit_files
    st = CalibrationSettings(frames=8, blocks=2, progress_seconds=0, iterations=1)
    parts = [simulate_shard(fit, N_FRAMES, i, 2, settings=st) for i in range(2)]
    a = combine_shards(fit, N_FRAMES, [p[0] for p in parts], [p[1] for p in parts], settings=st)
    b = calibrate(fit, N_FRAMES, settings=st)
    assert len(a["passes"]) == 2 and a["passes"][1]["bias"] == b["passes"][1]["bias"] and a["beta"] == b["beta"]


def test_a_shard_of_a_range_is_that_range_of_the_whole(fit_files):
    _, fit = fit_files
    sh = Shells([0.5], [0.007], [[0.5, 0.1]])
    whole = simulate_response(sh, 9, [30.0], seed=4, chunk=4, blocks=3)
    part = simulate_response(sh, 9, [30.0], seed=4, chunk=2, blocks=3, start=3, stop=7)
    lo = np.searchsorted(whole.true_block, 1)  # frames 3..5 are block 1
    assert part.true_block[0] == 1 and np.array_equal(part.true_x[: 10], whole.true_x[lo: lo + 10])


@pytest.mark.parametrize("case", ["missing-shard", "other-seed", "other-detector", "not-a-shard", "bad-shard-index",
                                  "shard-twice"])
def test_bad_shard_sets_are_one_line_errors(fit_files, runs, tmp_path, capsys, case):
    d, _ = fit_files
    out, _ = runs
    three = [str(out / f"shard_{i}_of_3.h5") for i in range(3)]
    target = ["--out", str(tmp_path / "cal.h5"), "--out-sidecar", str(tmp_path / "cal.json")]
    if case == "missing-shard":
        rc = main(["calibrate", *_inputs(d), *SETTINGS, "--shard-files", *three[:2], *target])
        want = "shard_0_of_3.h5: shard 0 of 3, but 2 shard files are given"
    elif case == "other-seed":
        rc = main(["calibrate", *_inputs(d), *SETTINGS, "--seed", "9", "--shard-files", *three, *target])
        want = "of other inputs or settings (differs in: seed)"
    elif case == "other-detector":
        rc = main(["calibrate", *_inputs(d), *SETTINGS, "--threshold", "12", "--shard-files", *three, *target])
        want = "(differs in: detector)"
    elif case == "not-a-shard":
        rc = main(["calibrate", *_inputs(d), *SETTINGS, "--shard-files", str(d / "electrons.h5"), *target])
        want = "electrons.h5: not a calibration shard"
    elif case == "bad-shard-index":
        rc = main(["calibrate-shard", *_inputs(d), *SETTINGS, "--shard", "3", "--shards", "3",
                   "--out", str(tmp_path / "s.h5")])
        want = "shard 3 of 3 does not exist"
    else:
        rc = main(["calibrate", *_inputs(d), *SETTINGS, "--shard-files", three[0], three[1], three[1], *target])
        want = "shard 1 again"
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("sevi: error:") and want in err[0], err
    assert not (tmp_path / "cal.h5").exists() and not (tmp_path / "s.h5").exists()

"""``sevi calibrate``: the stage end to end on real rendering + detection (tiny), and its user errors."""

import json

import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import read_answer, write_answer, write_h5
from sevi_lib.core.shells import Shells
from sevi_lib.fit import fit_electrons
from sevi_lib.simulate.electrons import simulate_electrons
from sevi_lib.simulate.settings import SimulationSettings

N_FRAMES = 400


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory):
    """A fit (Answer + sidecar) of 400 frames of one peaked shell, and its electron file."""
    d = tmp_path_factory.mktemp("fit")
    sh = Shells([0.5], [0.007], [[1.0, 0.6, 0.25, 0.05]])
    e = simulate_electrons(sh, SimulationSettings(n_frames=N_FRAMES, electrons_per_shell=[30.0], detection_loss=0.0,
                                                 seed=5)).detected
    fit = fit_electrons(e["x"], e["z"], n_beta=4, n_shells=1)
    write_answer(d / "fit.h5", fit.R, fit.beta)
    (d / "fit.json").write_text(json.dumps(fit.to_dict()))
    write_h5(d / "electrons.h5", attrs={"n_frames": N_FRAMES}, DetectedElectrons=e)
    return d, fit


def _run(d, *extra):
    return main(["calibrate", str(d / "fit.h5"), str(d / "fit.json"), "--electrons", str(d / "electrons.h5"),
                 "--quiet", *extra])


def test_calibrate_writes_the_corrected_answer(fit_files, tmp_path):
    d, fit = fit_files
    out, side = tmp_path / "cal.h5", tmp_path / "cal.json"
    assert _run(d, "--out", str(out), "--out-sidecar", str(side), "--frames", "48", "--blocks", "2",
                "--chunk", "16", "--seed", "1") == 0
    res = json.loads(side.read_text())
    table = read_answer(out)
    assert table["beta"].dtype == np.float64 and table.shape == (1,)
    assert np.allclose(table["beta"][0], res["beta"][0]) and np.allclose(table["R"], res["R"])
    assert np.allclose(res["uncorrected"]["beta"], fit.beta)
    assert np.allclose(np.array(res["beta"]), fit.beta - np.array(res["bias"]["beta"]))
    assert np.all(np.array(res["se_beta"]) >= fit.se_beta)
    cal = res["calibration"]
    assert cal["frames_per_pass"] == 48 and cal["data_frames"] == N_FRAMES
    assert cal["detector"]["threshold"] == 10
    p = res["passes"][0]
    assert p["true_electrons"] > 48 * 25  # ~30 electrons per frame simulated
    assert abs(p["simulated"]["electrons_per_frame"][0] - fit.weights[0] / N_FRAMES) < 1e-9


@pytest.mark.parametrize("case", ["same-as-input", "stale-sidecar", "no-frames", "bad-setting", "bad-detector"])
def test_user_errors_are_one_line(fit_files, tmp_path, capsys, case):
    d, fit = fit_files
    out, side = str(tmp_path / "cal.h5"), str(tmp_path / "cal.json")
    if case == "same-as-input":
        rc = _run(d, "--out", str(d / "fit.h5"), "--out-sidecar", side)
    elif case == "stale-sidecar":
        write_answer(tmp_path / "other.h5", fit.R, fit.beta + 0.01)
        rc = main(["calibrate", str(tmp_path / "other.h5"), str(d / "fit.json"), "--n-frames", "10",
                   "--out", out, "--out-sidecar", side])
    elif case == "no-frames":
        rc = main(["calibrate", str(d / "fit.h5"), str(d / "fit.json"), "--out", out, "--out-sidecar", side])
    elif case == "bad-setting":
        rc = _run(d, "--out", out, "--out-sidecar", side, "--blocks", "1")
    else:
        rc = _run(d, "--out", out, "--out-sidecar", side, "--threshold", "0")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("sevi: error:")
    assert not (tmp_path / "cal.h5").exists()

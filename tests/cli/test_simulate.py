"""Tests of ``sevi simulate``: happy path from YAML and flags, bad input exits 2 leaving nothing."""

import h5py
import numpy as np
import pytest
import yaml

from sevi_lib.cli import main

SIM = {
    "seed": 3,
    "n_frames": 3,
    "electrons_per_shell": [5, 4],
    "detection_loss": 0.1,
    "shells": [
        {"R": 0.8, "sigma_R": 0.008, "beta": [1.0, 0.85, 0.55]},
        {"R": 0.5, "sigma_R": 0.007, "beta": [-0.3]},
    ],
}


def _yaml(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _run(tmp_path, *extra):
    return main(["simulate", "--frames", str(tmp_path / "out" / "f.h5"), "--truth", str(tmp_path / "out" / "t.h5"),
                 "--no-progress", *extra])


def test_simulate_from_workflow_config(tmp_path, capsys):
    params = _yaml(tmp_path / "config.yaml", {"simulation": SIM, "other_stage": {"x": 1}})
    assert _run(tmp_path, "--params", params) == 0
    assert "3 frames" in capsys.readouterr().out
    with h5py.File(tmp_path / "out" / "t.h5", "r") as f:
        truth = f["Truth"][()]
        assert f["DetectedElectrons"].shape[0] > 0
    np.testing.assert_array_equal(truth["R"], [0.5, 0.8])  # sorted, smaller radius first
    np.testing.assert_array_equal(truth["beta"][0], [-0.3, 0, 0])
    with h5py.File(tmp_path / "out" / "f.h5", "r") as f:
        assert f["FinalImage"].shape == (3,)


def test_flags_override_and_section_alone(tmp_path):
    params = _yaml(tmp_path / "sim.yaml", SIM)
    assert _run(tmp_path, "--params", params, "--n-frames", "2", "--R", "0.4", "0.7", "--seed", "5") == 0
    with h5py.File(tmp_path / "out" / "f.h5", "r") as f:
        assert f["FinalImage"].shape == (2,)
    with h5py.File(tmp_path / "out" / "t.h5", "r") as f:
        np.testing.assert_array_equal(f["Truth"]["R"], [0.4, 0.7])
        assert f.attrs["seed"] == 5


def test_flags_only(tmp_path):
    assert _run(tmp_path, "--R", "0.5", "0.8", "--sigma-R", "0.007", "0.008", "--beta", "1,0.5", "-0.2",
                "--n-frames", "1", "--electrons-per-shell", "3") == 0


BAD = [
    (["--params", "{missing}"], "cannot read"),
    (["--params", "{broken}"], "not valid YAML"),
    (["--params", "{good}", "--beta", "-1.0", "0"], "unphysical"),
    (["--params", "{good}", "--R", "0.5"], "1 values given for 2 shells"),
    (["--params", "{good}", "--detection-loss", "1.5"], "detection_loss"),
    (["--params", "{good}", "--electrons-per-shell", "1", "2", "3"], "electrons_per_shell"),
    (["--params", "{good}", "--seed", "-4"], "seed"),
    (["--params", "{good}", "--beta", "1,x", "0"], "comma-separated"),
    (["--params", "{noshells}"], "no shells"),
    (["--R", "0.5", "0.8"], "lacks sigma_R, beta"),
    (["--params", "{good}", "--R", "-0.5", "0.8"], "radius"),
    (["--params", "{good}", "--read-noise", "-1"], "read_noise must be >= 0"),
    (["--params", "{good}", "--read-noise", "nan"], "read_noise must be finite"),
    (["--params", "{good}", "--stray-electrons", "-0.5"], "stray_electrons must be >= 0"),
    (["--params", "{good}", "--hot-pixels", "-1"], "hot_pixels"),
    (["--params", "{good}", "--centre-offset", "[1]"], "centre_offset must be two numbers"),
    (["--params", "{good}", "--centre-offset", "[1, 2, 3]"], "centre_offset must be two numbers"),
    (["--params", "{good}", "--centre-offset", "[1, Infinity]"], "centre_offset must be finite"),
    (["--params", "{lab_bad}"], "read_noise must be >= 0"),
    (["--params", "{good}", "--spot-sigma-px", "0.2"], "spot sigma_px must be in [0.5, 40] px"),
    (["--params", "{good}", "--spot-sigma-px", "wide"], "--spot-sigma-px: 'wide' is not a number"),
    (["--params", "{good}", "--spot-gain", "poisson"], "--spot-gain: must be one of normal, gamma"),
    (["--params", "{good}", "--spot-gain", "gamma", "--spot-gain-cv", "0"], "spot gain_cv must be in [0.01, 3]"),
    (["--params", "{good}", "--spot-rho-sd", "nan"], "spot rho_sd must be a finite number"),
    (["--params", "{good}", "--spot", '{{"width": 3}}'], "unknown spot-model key(s) width"),
    (["--params", "{good}", "--spot", "[3]"], "--spot: expected a JSON mapping"),
    (["--params", "{spot_bad}"], "spot gain_mean must be in (0, 1e5]"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_exits_2_and_leaves_nothing(tmp_path, capsys, argv, message):
    names = {
        "missing": str(tmp_path / "nope.yaml"),
        "broken": str(tmp_path / "broken.yaml"),
        "good": str(tmp_path / "good.yaml"),
        "noshells": str(tmp_path / "noshells.yaml"),
        "lab_bad": str(tmp_path / "lab_bad.yaml"),
        "spot_bad": str(tmp_path / "spot_bad.yaml"),
    }
    (tmp_path / "broken.yaml").write_text("simulation: [unclosed\n")
    _yaml(tmp_path / "good.yaml", {"simulation": SIM})
    _yaml(tmp_path / "noshells.yaml", {"simulation": {"n_frames": 2}})
    _yaml(tmp_path / "lab_bad.yaml", {"simulation": {**SIM, "read_noise": -2}})
    _yaml(tmp_path / "spot_bad.yaml", {"simulation": {**SIM, "spot": {"gain": "gamma", "gain_mean": -5}}})
    before = set(tmp_path.iterdir())
    assert _run(tmp_path, *[a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sevi: error:") and message in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert set(tmp_path.iterdir()) - before <= {tmp_path / "out"}


def test_same_output_paths_rejected(tmp_path, capsys):
    params = _yaml(tmp_path / "good.yaml", SIM)
    same = str(tmp_path / "x.h5")
    assert main(["simulate", "--frames", same, "--truth", same, "--params", params, "--no-progress"]) == 2
    assert "same file" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    assert "--electrons-per-shell" in capsys.readouterr().out


@pytest.mark.parametrize("where, message", [("dir", "is a directory"), ("under_file", "is not a directory"),
                                            ("proc", "cannot write")])
def test_unwritable_output_refused_before_the_work(tmp_path, capsys, where, message):
    params = _yaml(tmp_path / "good.yaml", SIM)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    frames = {"dir": tmp_path / "adir", "under_file": tmp_path / "afile" / "f.h5", "proc": "/proc/sevi-test/f.h5"}[where]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["simulate", "--frames", str(frames), "--truth", str(tmp_path / "t.h5"), "--params", params,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sevi: error: {frames}: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not any((tmp_path / "adir").iterdir())


def test_defaults_are_the_workflows(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--n-frames V (default 3000)" in out and "--threads V (default 2)" in out


LAB = {"centre_offset": [3.4, -2.7], "stray_electrons": 3.0, "read_noise": 1.5, "hot_pixels": 12}


@pytest.mark.parametrize("shells", [
    [{"R": 0.6, "sigma_R": 0.01, "beta": [0.8]}],
    [{"R": 0.3, "sigma_R": 0.006, "beta": [1.2, 0.5]}, {"R": 0.55, "sigma_R": 0.007, "beta": [-0.6, 0.1]},
     {"R": 0.8, "sigma_R": 0.008, "beta": [0.7, 0.6]}],
])
def test_lab_camera_from_the_config_section_with_k_shells(tmp_path, shells):
    """K = 1 and K = 3 shells with every lab-camera effect from the YAML section (no electrons_per_shell)."""
    from sevi_lib.core.io import read_camera_truth

    sim = {"seed": 4, "n_frames": 2, "shells": shells, **LAB}
    assert _run(tmp_path, "--params", _yaml(tmp_path / "lab.yaml", {"simulation": sim})) == 0
    with h5py.File(tmp_path / "out" / "t.h5", "r") as f:
        assert len(f["Truth"]) == len(shells) and list(f["Truth"]["SphereId"]) == list(range(len(shells)))
        assert (f["DetectedElectrons"]["ElectronId"] == -1).any()
        np.testing.assert_array_equal(f.attrs["electrons_per_shell"], [40.0] * len(shells))
    cam = read_camera_truth(tmp_path / "out" / "t.h5")
    assert cam["centre"] == (3.4 / 512, -2.7 / 512) and cam["hot_pixels"].shape == (12, 3)
    assert (cam["stray_electrons"], cam["read_noise"]) == (3.0, 1.5)


def test_lab_camera_flags(tmp_path):
    from sevi_lib.core.io import read_camera_truth

    params = _yaml(tmp_path / "good.yaml", SIM)
    assert _run(tmp_path, "--params", params, "--centre-offset", "[-1.5, 2]", "--stray-electrons", "2",
                "--read-noise", "0.5", "--hot-pixels", "3", "--gzip-level", "2") == 0
    cam = read_camera_truth(tmp_path / "out" / "t.h5")
    assert cam["centre"] == (-1.5 / 512, 2 / 512) and cam["hot_pixels"].shape == (3, 3)
    with h5py.File(tmp_path / "out" / "f.h5", "r") as f:
        assert f["FinalImage"].compression_opts == 2


def test_help_lists_the_lab_camera(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag in ("--centre-offset V (default [0.0, 0.0])", "--stray-electrons V (default 0.0)",
                 "--read-noise V (default 0.0)", "--hot-pixels V (default 0)"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [(["--hot-pixels", "2.5"], "--hot-pixels: '2.5' is not a int"),
                                           (["--centre-offset", "1 2"], "--centre-offset: '1 2' is not a JSON")])
def test_unparsable_flag_values_exit_2(tmp_path, capsys, argv, message):
    """Values argparse cannot parse: its usage line and one error line, exit 2, nothing written."""
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path, "--params", _yaml(tmp_path / "good.yaml", SIM), *argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_spot_model_from_the_section_and_flags(tmp_path, capsys):
    """The section's spot: mapping, --spot (JSON) and the --spot-* flags merge key by key, flags last."""
    from sevi_lib.core.io import read_camera_truth
    from sevi_lib.core.spots import SpotModel

    spot = {"sigma_px": 5, "gain": "gamma", "gain_mean": 120, "gain_cv": 0.45}
    params = _yaml(tmp_path / "spot.yaml", {"simulation": {**SIM, "spot": spot}})
    assert _run(tmp_path, "--params", params, "--spot", '{"rho_sd": 0.2, "gain_cv": 0.6}',
                "--spot-gain-cv", "0.3", "--spot-sigma-sd-px", "0.4") == 0
    got = read_camera_truth(tmp_path / "out" / "t.h5")["spot"]
    assert got == SpotModel(sigma_px=5.0, sigma_sd_px=0.4, rho_sd=0.2, gain="gamma", gain_mean=120.0, gain_cv=0.3)
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--spot-gain {normal,gamma}" in out and "(default 7.68)" in out and "--spot V (default {})" in out


def test_spot_model_changes_the_frames_and_the_default_does_not(tmp_path):
    frames = {}
    for name, extra in (("default", []), ("flags", ["--spot-gain", "normal", "--spot-sigma-px", "7.68"]),
                        ("gamma", ["--spot-gain", "gamma", "--spot-gain-cv", "0.5"])):
        assert main(["simulate", "--frames", str(tmp_path / f"{name}.h5"), "--truth", str(tmp_path / f"t{name}.h5"),
                     "--no-progress", "--params", _yaml(tmp_path / "good.yaml", SIM), *extra]) == 0
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            frames[name] = f["FinalImage"][()]
    assert np.array_equal(frames["default"], frames["flags"])  # the published values, spelled out
    assert not np.array_equal(frames["default"], frames["gamma"])

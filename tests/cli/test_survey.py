"""``sevi survey --spot-model`` / ``--plot`` and ``sevi plot-camera`` (a handful of small rendered frames)."""

import json

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import FINAL_IMAGE_DTYPE
from sevi_lib.simulate.render import draw_spot_params, render_frame


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """6 published-camera frames of 60 electrons each (the survey measures the spot model from ~230 spots)."""
    rng = np.random.default_rng(1)
    rows = np.zeros(6, dtype=FINAL_IMAGE_DTYPE)
    rows["ImageId"] = np.arange(6)
    for i in range(6):
        x, z = rng.uniform(-0.9, 0.9, (2, 60))
        rows["Image"][i] = render_frame(x, z, *draw_spot_params(60, rng))
    path = tmp_path_factory.mktemp("survey") / "frames.h5"
    with h5py.File(path, "w") as f:
        f["FinalImage"] = rows
    return path


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sevi: error:"), err
    assert all(w in err[0] for w in words), err[0]


def test_given_spot_model_is_used_and_plotted(frames, tmp_path, capsys):
    cam, png = tmp_path / "camera.json", tmp_path / "camera.png"
    assert main(["survey", str(frames), "--out", str(cam), "--spot-model", '{"sigma_px": 5}', "--plot", str(png)]) == 0
    err = capsys.readouterr().err
    d = json.loads(cam.read_text())
    assert d["settings"]["spot_model"] == '{"sigma_px": 5}' and d["spot_model_source"] == "given"
    assert d["spot_model"]["sigma_px"] == 5 and d["spot"]["n_spots"] >= 20
    # the frames' spots are 7.68 px wide: the given model is contradicted, and said so
    assert any("spot width" in w for w in d["warnings"]) and "WARNING: the given spot model contradicts" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    # sevi plot-camera draws the same survey from its JSON
    again = tmp_path / "again.png"
    assert main(["plot-camera", str(cam), "--out", str(again)]) == 0
    assert again.stat().st_size > 20_000 and f"{again}: spot model of" in capsys.readouterr().out


@pytest.mark.parametrize("value, words", [
    ("wide", ["spot_model must be measured, published or a JSON mapping", "'wide'"]),
    ('{"sigma_px": 5, "colour": 1}', ["colour"]),
])
def test_bad_spot_model_is_one_line_and_exit_2_before_any_work(frames, tmp_path, capsys, value, words):
    cam = tmp_path / "camera.json"
    assert main(["survey", str(frames), "--out", str(cam), "--spot-model", value]) == 2
    one_line_error(capsys, *words)
    assert not cam.exists()


def test_plot_refusals(frames, tmp_path, capsys):
    cam = tmp_path / "camera.json"
    # --plot onto the input or onto --out: refused before the survey
    assert main(["survey", str(frames), "--out", str(cam), "--plot", str(frames)]) == 2
    one_line_error(capsys, str(frames), "is the input")
    assert main(["survey", str(frames), "--out", str(cam), "--plot", str(cam)]) == 2
    one_line_error(capsys, str(cam))
    assert not cam.exists()
    # plot-camera: not a survey, a missing file, output onto the input
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["plot-camera", str(bad), "--out", str(tmp_path / "p.png")]) == 2
    one_line_error(capsys, "bad.json", "not a camera survey")
    assert main(["plot-camera", str(tmp_path / "none.json"), "--out", str(tmp_path / "p.png")]) == 2
    one_line_error(capsys, "none.json")
    assert main(["plot-camera", str(bad), "--out", str(bad)]) == 2
    one_line_error(capsys, "bad.json")
    assert bad.read_text() == "[1, 2]" and not (tmp_path / "p.png").exists()


def test_spot_model_from_more_frames_than_the_noise_sample(frames, tmp_path, capsys):
    """``--spot-fraction``: a measured model's sample is read from the file in chunks, with progress.

    The published camera's frames keep the first sample: its model is the published one's exact
    values, which the first sample's check decides.
    """
    from sevi_lib.core.spots import SpotModel

    lab = SpotModel(sigma_px=5.0, sigma_sd_px=0.3, rho_sd=0.1, gain="gamma", gain_mean=120.0, gain_cv=0.45)
    rng = np.random.default_rng(2)
    rows = np.zeros(6, dtype=FINAL_IMAGE_DTYPE)
    rows["ImageId"] = np.arange(6)
    for i in range(6):
        x, z = rng.uniform(-0.9, 0.9, (2, 60))
        rows["Image"][i] = render_frame(x, z, *draw_spot_params(60, rng, lab))
    path = tmp_path / "lab.h5"
    with h5py.File(path, "w") as f:
        f["FinalImage"] = rows
    cam = tmp_path / "camera.json"
    assert main(["survey", str(path), "--out", str(cam), "--n-sample", "2", "--spot-fraction", "1"]) == 0
    err = capsys.readouterr().err
    d = json.loads(cam.read_text())
    assert d["spot_model_source"] == "measured"
    assert len(d["frames_sampled"]) == 2 and d["spot"]["n_frames"] == 6
    assert "spot model: 6/6 frames" in err and "isolated spots of 6 frames" in err
    assert main(["survey", str(path), "--out", str(cam), "--n-sample", "2", "--spot-fraction", "0"]) == 0
    few = json.loads(cam.read_text())
    assert few["spot"]["n_frames"] == 2 and few["spot"]["n_spots"] < d["spot"]["n_spots"]
    assert main(["survey", str(frames), "--out", str(cam), "--n-sample", "2", "--spot-fraction", "1"]) == 0
    published = json.loads(cam.read_text())
    assert published["spot_model_source"] == "published" and published["spot"]["n_frames"] == 2

from pathlib import Path

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_answer
from sevi_lib.core.maps import count_map, radial_profile
from sevi_lib.nn.predict import predict_answer, radii_from_map
from sevi_lib.nn.priors import pretrain_prior
from sevi_lib.nn.synth import synthesize
from sevi_lib.nn.views import View
from sevi_lib.simulate.electrons import sample_shell


def _map(R, sigma_R, betas, n=60000, seed=1):
    m = np.zeros((1024, 1024))
    for j, (r, s, b) in enumerate(zip(R, sigma_R, betas)):
        _, _, x, z = sample_shell(r, s, np.asarray(b, dtype=np.float64), n, seed + j)
        count_map(x, z, out=m)
    return m


def test_radial_profile_conserves_counts():
    m = _map([0.5], [0.007], [[0.5]], n=5000)
    rho, prof = radial_profile(m)
    assert prof.sum() == 5000 and rho[0] == pytest.approx(1 / 1024)


@pytest.mark.parametrize(
    "betas, sigma_R",
    [
        ([[1.0, 0.85, 0.55, 0.25], [1.0, 0.85, 0.55, 0.25]], [0.005, 0.0095]),
        ([[-0.9, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], [0.0095, 0.005]),
    ],
)
def test_radii_from_map(betas, sigma_R):
    R = [0.4512, 0.7731]
    est = radii_from_map(_map(R, sigma_R, betas))
    # calibrated edge position: within 0.002 (one pixel = 0.00195) of the true radius
    np.testing.assert_allclose(est, R, atol=0.002)


def test_radii_from_map_needs_two_shells():
    with pytest.raises(InputError, match="1 separated radial peak"):
        radii_from_map(_map([0.6], [0.007], [[0.2]], n=20000))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from sevi_lib.nn.settings import TrainConfig
    from sevi_lib.nn.trainer import train

    d = tmp_path_factory.mktemp("net")
    view = View("fold", 8)
    prior = pretrain_prior({"electrons": [3000, 4000]})
    synthesize(d / "train.h5", prior, view, 8, seed=1, key="t")
    synthesize(d / "val.h5", prior, view, 4, seed=1, key="v")
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False, device="cpu", threads=1)
    out = train(cfg, [d / "train.h5"], [d / "val.h5"], d / "run")
    return out["best_checkpoint"], view


def test_predict_answer_and_cli(tiny_checkpoint, tmp_path):
    ckpt, view = tiny_checkpoint
    m = _map([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [0.3, 0.1]], n=20000)
    R, beta = predict_answer(ckpt, m, view=view, device="cpu")
    assert beta.shape == (2, 12) and R.shape == (2,) and R[0] < R[1]
    np.testing.assert_array_equal(predict_answer(ckpt, m, device="cpu")[1], beta)  # view from the checkpoint
    with pytest.raises(InputError, match="trained on view"):
        predict_answer(ckpt, m, view=View("full", 16), device="cpu")
    np.save(tmp_path / "map.npy", m)
    rc = main(["nn", "predict", str(ckpt), str(tmp_path / "map.npy"), "--out", str(tmp_path / "nn.h5"),
               "--view", '{"name": "fold", "downsample": 8}', "--device", "cpu"])
    assert rc == 0
    table = read_answer(tmp_path / "nn.h5")
    np.testing.assert_allclose(table["beta"], beta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(table["R"], R)
    # a view other than the training one is refused with one line
    rc = main(["nn", "predict", str(ckpt), str(tmp_path / "map.npy"), "--out", str(tmp_path / "x.h5"),
               "--view", '{"name": "fold", "downsample": 4}', "--device", "cpu"])
    assert rc == 2 and not (tmp_path / "x.h5").exists()


def test_cli_bad_count_map(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((10, 10)))
    rc = main(["nn", "predict", "x.pt", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "a.h5")])
    assert rc == 2 and "1024 x 1024" in capsys.readouterr().err


def test_predict_cli_writes_rows_sorted_by_R(tiny_checkpoint, tmp_path):
    ckpt, _ = tiny_checkpoint
    m = _map([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [0.3, 0.1]], n=20000)
    np.save(tmp_path / "map.npy", m)
    with h5py.File(tmp_path / "fit.h5", "w") as f:  # rows stored larger radius first
        table = np.zeros(2, dtype=[("SphereId", "<i8"), ("R", "<f8"), ("beta", "<f8", (12,))])
        table["SphereId"], table["R"] = [0, 1], [0.8, 0.5]
        f["Answer"] = table
    rc = main(["nn", "predict", str(ckpt), str(tmp_path / "map.npy"), "--out", str(tmp_path / "nn.h5"),
               "--radii-from", str(tmp_path / "fit.h5"), "--device", "cpu"])
    assert rc == 0
    got = read_answer(tmp_path / "nn.h5")
    assert list(got["R"]) == [0.5, 0.8] and list(got["SphereId"]) == [0, 1]
    assert np.all(np.isfinite(got["beta"]))


def test_predict_file_refuses_a_non_finite_prediction(tmp_path, monkeypatch):
    import sevi_lib.nn.predict as predict_module

    np.save(tmp_path / "map.npy", np.full((1024, 1024), 0.01))
    monkeypatch.setattr(predict_module, "predict_answer",
                        lambda *a, **k: (np.array([0.4, 0.7]), np.array([[np.nan, 0.1], [0.2, 0.1]])))
    with pytest.raises(InputError, match="non-finite beta"):
        predict_module.predict_file("x.pt", tmp_path / "map.npy", tmp_path / "nn.h5")
    assert not (tmp_path / "nn.h5").exists()


def test_radii_of_a_close_pair_come_from_the_shell_search():
    """Two shells 5.6 sigma_R apart, closer than the 0.03 the profile's peaks must stand apart (one
    peak); the fit's shell search separates them, each within 1.5 sigma_R (its peak sits about
    one sigma_R inside R)."""
    from sevi_lib.core.maps import count_map
    from sevi_lib.nn.predict import radii_from_map
    from sevi_lib.simulate.electrons import sample_shell

    R, s = np.array([0.50, 0.528]), 0.005
    xs, zs = [], []
    for j, (r, n) in enumerate(zip(R, (40_000, 20_000))):
        _, _, x, z = sample_shell(r, s, np.r_[0.5, 0.1, np.zeros(10)], n, 7 + j)
        xs.append(x)
        zs.append(z)
    got = radii_from_map(count_map(np.concatenate(xs), np.concatenate(zs)), n_shells=2)
    assert np.all(np.abs(got - R) < 1.5 * s), got


def test_ensemble_cli_shrinks_members_towards_the_fit(tiny_checkpoint, tmp_path):
    """``sevi nn ensemble``: two members (here the same network twice: no spread), calibration on
    the validation shard; the Answer is the ensemble mean shrunk towards the fit's answer, which
    must be the centre the calibration shard was drawn around."""
    import json

    from sevi_lib.nn.synth import read_shard_attrs

    ckpt, _ = tiny_checkpoint
    calib = str(Path(ckpt).parent.parent / "val.h5")
    m = _map([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [0.3, 0.1]], n=20000)
    np.save(tmp_path / "map.npy", m)
    prior = np.array(read_shard_attrs(calib)["prior_json"]["beta_mu"])  # rows by R
    side = {"R": [0.8, 0.5], "se_R": [1e-4, 1e-4], "sigma_R": [0.008, 0.007], "centre": [0.0, 0.0],
            "beta": prior[::-1].tolist(), "se_beta": [[0.01] * 12, [0.02] * 12]}
    (tmp_path / "fit.json").write_text(json.dumps(side))
    args = ["nn", "ensemble", str(ckpt), str(ckpt), "--count-map", str(tmp_path / "map.npy"), "--calib", calib,
            "--out", str(tmp_path / "nn.h5"), "--sidecar", str(tmp_path / "nn.json"),
            "--prior-sidecar", str(tmp_path / "fit.json"), "--device", "cpu"]
    assert main(args) == 0
    doc = json.loads((tmp_path / "nn.json").read_text())
    assert doc["M"] == 2 and doc["combined"] and np.all(np.array(doc["spread"]) == 0)
    _, alone = predict_answer(ckpt, m, device="cpu")
    np.testing.assert_allclose(doc["beta_network"], alone, rtol=1e-6, atol=1e-7)
    s = np.array(doc["weight_network"])
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(doc["beta"], s * alone + (1 - s) * prior, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(read_answer(tmp_path / "nn.h5")["beta"], doc["beta"], rtol=1e-12)
    side["beta"][0][0] += 0.01  # not the centre the calibration shard was drawn around: refused
    (tmp_path / "fit.json").write_text(json.dumps(side))
    (tmp_path / "nn.h5").unlink()
    assert main(args) == 2 and not (tmp_path / "nn.h5").exists()
    rc = main(["nn", "ensemble", str(ckpt), "--count-map", str(tmp_path / "map.npy"), "--calib", calib,
               "--out", str(tmp_path / "map.npy"), "--sidecar", str(tmp_path / "x.json")])
    assert rc == 2 and not (tmp_path / "x.json").exists()  # an output that is an input: refused before any work

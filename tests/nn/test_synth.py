import json

import h5py
import numpy as np
import pytest

from sevi_lib.core.angular import min_density
from sevi_lib.core.errors import InputError
from sevi_lib.core.spots import SpotModel
from sevi_lib.detect.camera import CameraSurvey
from sevi_lib.nn.priors import pretrain_prior
from sevi_lib.nn.priors import sample as sample_prior
from sevi_lib.nn.synth import read_shard_attrs, shard_rng, simulate_maps, synthesize
from sevi_lib.nn.views import View, apply_view
from sevi_lib.simulate.electrons import sample_shell

VIEW = View("fold", 8)  # 64 x 64: small and quick
PRIOR = pretrain_prior({"electrons": [2000, 4000]})


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def test_shard_is_reproducible_from_its_seed(tmp_path):
    a = synthesize(tmp_path / "a.h5", PRIOR, VIEW, 6, seed=3, key="pretrain/round0/0")
    synthesize(tmp_path / "b.h5", PRIOR, VIEW, 6, seed=3, key="pretrain/round0/0")
    synthesize(tmp_path / "c.h5", PRIOR, VIEW, 6, seed=3, key="pretrain/round0/1")
    da, db, dc = (_read(tmp_path / f"{n}.h5") for n in "abc")
    for k in da:
        np.testing.assert_array_equal(da[k], db[k])
    assert not np.array_equal(da["labels"], dc["labels"])
    assert not np.array_equal(da["inputs"], dc["inputs"])
    assert a["seed"] == 3 and a["key"] == "pretrain/round0/0"


def test_shard_layout_and_content(tmp_path):
    n = 5
    path = tmp_path / "s.h5"
    synthesize(path, PRIOR, VIEW, n, seed=7, key="k")
    d = _read(path)
    assert d["inputs"].shape == (n,) + VIEW.shape and d["inputs"].dtype == np.float32
    assert d["labels"].shape == (n, 2, 12) and d["labels"].dtype == np.float64
    assert d["R"].shape == d["sigma_R"].shape == d["n_electrons"].shape == (n, 2)
    assert not d["detector"].any()
    np.testing.assert_allclose(d["inputs"].sum(axis=(1, 2, 3)), 255.0, rtol=1e-5)
    assert min(min_density(b)[0] for b in d["labels"].reshape(-1, 12)) >= -1e-12
    # the documented seeding scheme rebuilds every input exactly
    rng = shard_rng(7, "k")
    draw = sample_prior(PRIOR, n, rng)
    seeds = rng.integers(0, 2**32, size=(n, 2), dtype=np.int64)
    np.testing.assert_array_equal(draw.beta, d["labels"])
    maps = simulate_maps(draw.R, draw.sigma_R, draw.beta, draw.n_electrons, seeds)
    for i in range(n):
        np.testing.assert_array_equal(apply_view(maps[i], VIEW), d["inputs"][i])
    attrs = read_shard_attrs(path)
    assert attrs["view"] == VIEW.to_config() and attrs["prior"] == "pretrain"
    assert 0 < attrs["acceptance"] <= 1 and attrs["prior_json"]["R_range"] == [[0.3, 0.9], [0.3, 0.9]]


def test_trainer_reads_the_shard(tmp_path):
    from sevi_lib.nn.data import ShardDataset

    synthesize(tmp_path / "s.h5", PRIOR, VIEW, 3, seed=1, key="k")
    ds = ShardDataset([tmp_path / "s.h5"])
    x, y = ds[2]
    assert tuple(x.shape) == VIEW.shape and tuple(y.shape) == (2, 12)


def test_maps_are_the_histogram_of_the_simulator():
    R = np.array([[0.45, 0.8]])
    sigma_R = np.array([[0.006, 0.009]])
    beta = np.array([[[1.0, 0.5, 0.1], [-0.5, 0.0, 0.0]]])
    n_el = np.array([[3000, 5000]])
    seeds = np.array([[11, 12]])
    m = simulate_maps(R, sigma_R, beta, n_el, seeds)[0]
    ref = np.zeros((1024, 1024))
    for s in range(2):
        _, _, x, z = sample_shell(R[0, s], sigma_R[0, s], beta[0, s], n_el[0, s], seeds[0, s])
        ref += np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])[0]
    np.testing.assert_array_equal(m, ref)
    assert m.sum() == 8000


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="samples"):
        synthesize(tmp_path / "x.h5", PRIOR, VIEW, 0, seed=1, key="k")
    with pytest.raises(InputError, match="detector_fraction"):
        synthesize(tmp_path / "x.h5", PRIOR, VIEW, 2, seed=1, key="k", detector_fraction=1.5)
    assert not list(tmp_path.iterdir())


def test_detector_like_samples(tmp_path):
    from sevi_lib.nn.synth import detector_map

    R, sigma_R = np.array([0.5, 0.8]), np.array([0.007, 0.008])
    beta = np.array([[0.5, 0.2], [-0.3, 0.1]])
    n_el = np.array([400, 600])
    m = detector_map(R, sigma_R, beta, n_el, seed=4, electrons_per_frame=80)
    # realised detected electrons are Poisson around 1000; the detector finds nearly all of them
    # at this sparse occupancy (isotropic-ish shells, ~72 spots per frame): allow 5 sigma + 5 %
    assert abs(m.sum() - 1000) < 5 * np.sqrt(1000) + 50
    np.testing.assert_array_equal(m, detector_map(R, sigma_R, beta, n_el, seed=4, electrons_per_frame=80))
    prior = pretrain_prior({"electrons": [300, 400]})
    synthesize(tmp_path / "d.h5", prior, VIEW, 2, seed=2, key="d", detector_fraction=1.0)
    d = _read(tmp_path / "d.h5")
    assert d["detector"].all()
    np.testing.assert_allclose(d["inputs"].sum(axis=(1, 2, 3)), 255.0, rtol=1e-5)


# ------------------------------------------------------------ detector-like maps through the data's camera

LAB = SpotModel(5.0, 0.3, 0.1, "gamma", 120.0, 0.45)  # narrower, brighter and more variable spots
DET_ARGS = (np.array([0.5, 0.8]), np.array([0.007, 0.008]), np.array([[0.5, 0.2], [-0.3, 0.1]]), np.array([400, 600]))


def _lab_camera(read_noise=1.5):
    return CameraSurvey(read_noise=read_noise, read_noise_se=0.0, pedestal=0.0, pedestal_se=0.0,
                        spot_model=LAB.to_dict(), spot_model_source="given")


def test_detector_map_without_camera_is_the_published_map():
    """camera=None is the map of before camera surveys, bit for bit (digest by commit 0530880's code)."""
    import hashlib

    from sevi_lib.nn.synth import detector_map

    m = detector_map(*DET_ARGS, seed=4, electrons_per_frame=80, camera=None)
    assert hashlib.sha256(m.tobytes()).hexdigest() == "7d00dda5962b6a517dab2392ab48d7fb85ef817d4751c7266c0d23438ab4848d"


def test_detector_map_through_a_lab_camera():
    from sevi_lib.nn.synth import detector_map

    published = detector_map(*DET_ARGS, seed=4, electrons_per_frame=80)
    for camera in (_lab_camera(0.0), _lab_camera(1.5)):
        m = detector_map(*DET_ARGS, seed=4, electrons_per_frame=80, camera=camera)
        assert not np.array_equal(m, published)
        # the same electrons, other spots (and read noise): the detector still finds nearly all
        # of the ~1000 (Poisson) requested ones at this occupancy: 5 sigma + 5 %
        assert abs(m.sum() - 1000) < 5 * np.sqrt(1000) + 50
        np.testing.assert_array_equal(m, detector_map(*DET_ARGS, seed=4, electrons_per_frame=80, camera=camera))


def test_shard_through_a_camera_records_it(tmp_path):
    prior = pretrain_prior({"electrons": [300, 400]})
    args, kw = (prior, VIEW, 2), {"seed": 2, "key": "d", "detector_fraction": 1.0}
    plain = synthesize(tmp_path / "p.h5", *args, **kw)
    same = synthesize(tmp_path / "n.h5", *args, **kw, camera=None)
    lab = synthesize(tmp_path / "l.h5", *args, **kw, camera=_lab_camera())
    dp, dn, dl = (_read(tmp_path / f"{n}.h5") for n in "pnl")
    for k in dp:
        np.testing.assert_array_equal(dp[k], dn[k])
    np.testing.assert_array_equal(dp["labels"], dl["labels"])
    assert dl["detector"].all() and not np.array_equal(dp["inputs"], dl["inputs"])
    assert plain == same
    attrs = read_shard_attrs(tmp_path / "l.h5")
    assert attrs["camera"] == {"source": "", "spot_model_source": "given", "spot_model": LAB.to_dict(),
                               "read_noise": 1.5, "hot_pixels": 0}
    assert read_shard_attrs(tmp_path / "p.h5")["camera"]["spot_model"] == SpotModel().to_dict()
    assert json.loads(lab["camera"])["spot_model_source"] == "given"


def test_synth_cli_reads_the_camera(tmp_path, capsys):
    from sevi_lib.cli import main
    from sevi_lib.detect.camera import write_survey

    write_survey(tmp_path / "camera.json", _lab_camera())
    common = ["--stage", "pretrain", "--n", "1", "--key", "k", "--prior", '{"electrons": [300, 400]}',
              "--view", '{"name": "fold", "downsample": 8}', "--detector-fraction", "1"]
    assert main(["nn", "synth", str(tmp_path / "s.h5"), *common, "--camera", str(tmp_path / "camera.json")]) == 0
    assert read_shard_attrs(tmp_path / "s.h5")["camera"]["spot_model"] == LAB.to_dict()
    capsys.readouterr()
    for bad, text in (("missing.json", ""), ("bad.json", '{"kind": "something else"}')):
        if text:
            (tmp_path / bad).write_text(text)
        assert main(["nn", "synth", str(tmp_path / "x.h5"), *common, "--camera", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sevi: error: {tmp_path / bad}: ") and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists()


# ----------------------------------------------------------------------------- issue 13: K shells

def _three_shell_prior(electrons):
    from sevi_lib.nn.priors import finetune_prior

    beta = np.zeros((3, 12))
    beta[:, 0] = [0.5, 1.2, -0.3]
    return finetune_prior([0.3, 0.55, 0.8], beta, {"electrons": electrons, "R_width": 0.01})


def test_three_shell_shard(tmp_path):
    n, prior = 3, _three_shell_prior([1500, 2500])
    path = tmp_path / "s.h5"
    attrs = synthesize(path, prior, VIEW, n, seed=5, key="finetune/round0/0")
    d = _read(path)
    assert d["labels"].shape == (n, 3, 12)
    assert d["R"].shape == d["sigma_R"].shape == d["n_electrons"].shape == (n, 3)
    assert np.all(np.abs(d["R"] - [0.3, 0.55, 0.8]) <= 0.01)
    assert attrs["acceptance"] == pytest.approx(attrs["beta_acceptance"] ** 3 * attrs["R_acceptance"])
    rng = shard_rng(5, "finetune/round0/0")  # the documented seeding, one seed per sample and shell
    draw = sample_prior(prior, n, rng)
    seeds = rng.integers(0, 2**32, size=(n, 3), dtype=np.int64)
    maps = simulate_maps(draw.R, draw.sigma_R, draw.beta, draw.n_electrons, seeds)
    for i in range(n):
        assert maps[i].sum() == d["n_electrons"][i].sum()
        np.testing.assert_array_equal(apply_view(maps[i], VIEW), d["inputs"][i])
    synthesize(tmp_path / "det.h5", _three_shell_prior([300, 400]), VIEW, 1, seed=2, key="d", detector_fraction=1.0)
    det = _read(tmp_path / "det.h5")
    assert det["detector"].all() and det["labels"].shape == (1, 3, 12)
    np.testing.assert_allclose(det["inputs"].sum(), 255.0, rtol=1e-5)


def test_two_shell_shard_is_the_pre_issue_13_shard(tmp_path):
    """K = 2 is unchanged: digest of the same shard's datasets by the two-shell code (commit a65f7b0)."""
    import hashlib

    from sevi_lib.nn.priors import finetune_prior

    beta = np.zeros((2, 12))
    beta[:, 0] = [0.5, -0.3]
    beta[:, 1] = [0.1, 0.2]
    prior = finetune_prior([0.8, 0.45], beta, {"electrons": [1000, 2000]})
    synthesize(tmp_path / "s.h5", prior, View("fold", 16), 3, seed=4, key="finetune/round0/0")
    h = hashlib.sha256()
    with h5py.File(tmp_path / "s.h5") as f:
        for k in ("inputs", "labels", "R", "sigma_R", "n_electrons", "detector"):
            h.update(f[k][()].tobytes())
    assert h.hexdigest() == "c047051d742ebe8159e6f9964f4967200816ffdfccc9fa19132a0351540b276d"

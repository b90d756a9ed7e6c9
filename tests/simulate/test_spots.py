"""The renderer's camera spot model (sevi_lib.core.spots.SpotModel): any model, the published one unchanged.

The published model (``spots=None``, ``SpotModel()``, ``{}``) must give the frames of before: the
digests below were recorded with the code of commit 7e77191, before the spot model became a
parameter of the renderer (a script rendering the frames of :func:`_published_digests` with that
commit's ``iter_rendered_chunks`` and ``draw_spot_params``, printing the sha256 digests). Statistical
tests use fixed seeds and thresholds from the statistic's own distribution (false-alarm
probability 1e-6 per test), plus a stated allowance where an estimator has a known small bias.
"""

import hashlib

import h5py
import numpy as np
import pytest
from scipy import stats

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_camera_truth
from sevi_lib.core.shells import Shells
from sevi_lib.core.spots import SpotKernel, SpotModel
from sevi_lib.simulate import render as render
from sevi_lib.simulate.electrons import STREAM_SPOTS, frame_seed
from sevi_lib.simulate.render import (
    SIGMA_FLOOR,
    draw_spot_params,
    draw_spot_params_numba,
    iter_rendered_chunks,
    render_chunk,
    render_frame,
    spot_kernel,
)
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings, check_spot, resolve_settings

ALPHA = 1e-6
Z = stats.norm.isf(ALPHA / 2)  # two-sided bound of a standard normal statistic (~4.9)

SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [-0.3, 0.0]])
#: The issue's gamma camera: 4.5 px spots, gain Gamma of mean 150 and cv 0.5 (shape 4).
GAMMA_CAM = SpotModel(sigma_px=4.5, sigma_sd_px=0.3, rho_sd=0.1, gain="gamma", gain_mean=150.0, gain_cv=0.5)

#: Recorded at commit 7e77191 (see the module docstring): sha256 of the 4 frames of
#: iter_rendered_chunks(SHELLS, 4, [30, 20], 0.1, seed 7, chunk 3) for the published camera and with
#: read_noise=1.5, hot_pixels=5; and of the concatenated A, sigma, rho of draw_spot_params(1000, 42).
DIGEST_FRAMES = "1af8ff3deb4cd849eaa0e9943bee5f0c30ec59b34be954502a706fdb72b52232"
DIGEST_CAMERA = "860929ba91b5c826b311e558e834e0d48e8ed759eb0fbc3470fa724d41f8a7d8"
DIGEST_DRAW = "92ef1dccd8b610579ba0ececd750a4a32c7b91d92aacbeaac270b9edb11def2b"


def _frames_digest(**kw):
    h = hashlib.sha256()
    settings = SimulationSettings(n_frames=4, electrons_per_shell=[30, 20], detection_loss=0.1, seed=7, chunk=3, **kw)
    for _, frames, _ in iter_rendered_chunks(SHELLS, settings):
        h.update(frames.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------ the published model
def test_published_kernel_is_the_published_constants():
    assert spot_kernel(None) == SpotKernel(0, 100.0, 10.0, 0.015, 0.001, 0.1)
    assert (render.A_MEAN, render.A_SD, render.SIGMA_MEAN, render.SIGMA_SD, render.RHO_SD) == (100.0, 10.0, 0.015,
                                                                                                0.001, 0.1)


@pytest.mark.parametrize("spots", [None, SpotModel(), {}])
def test_published_model_renders_the_frames_of_before(spots):
    assert _frames_digest(spot=spots) == DIGEST_FRAMES
    assert _frames_digest(spot=spots, read_noise=1.5, hot_pixels=5) == DIGEST_CAMERA


def test_published_numpy_draw_is_the_draw_of_before():
    A, s, r = draw_spot_params(1000, 42)
    assert hashlib.sha256(np.concatenate([A, s, r]).tobytes()).hexdigest() == DIGEST_DRAW
    A2, s2, r2 = draw_spot_params(1000, 42, SpotModel())
    assert np.array_equal(A, A2) and np.array_equal(s, s2) and np.array_equal(r, r2)


def test_another_model_changes_the_frames():
    assert _frames_digest(spot=GAMMA_CAM) != DIGEST_FRAMES
    assert _frames_digest(spot={"gain_mean": 101.0}) != DIGEST_FRAMES


# ------------------------------------------------------------------------ the draws
def _gamma_law(model):
    k = model.gamma_shape
    return stats.gamma(k, scale=model.gain_mean / k)


def test_numpy_draw_of_a_gamma_camera_has_the_models_moments():
    n = 200_000
    m = GAMMA_CAM
    A, s, r = draw_spot_params(n, np.random.default_rng(3), m)
    k = m.gamma_shape
    mean, sd = m.gain_mean, m.gain_sd
    assert abs(A.mean() - mean) < Z * sd / np.sqrt(n)
    # sample variance of a gamma law: Var(s^2) ~ sd^4 (2 + 6 / k) / n (excess kurtosis 6 / k)
    assert abs(A.var() / sd**2 - 1) < Z * np.sqrt((2 + 6 / k) / n)
    assert stats.kstest(A, _gamma_law(m).cdf).pvalue > ALPHA
    s_px = s * 512
    assert abs(s_px.mean() - m.sigma_px) < Z * m.sigma_sd_px / np.sqrt(n)
    assert abs(s_px.std() / m.sigma_sd_px - 1) < Z / np.sqrt(2 * n)
    assert abs(r.mean()) < Z * m.rho_sd / np.sqrt(n) and abs(r.std() / m.rho_sd - 1) < Z / np.sqrt(2 * n)


@pytest.mark.parametrize("model", [GAMMA_CAM, SpotModel(sigma_px=3.0, sigma_sd_px=1.0, rho_sd=0.3, gain="normal",
                                                        gain_mean=80.0, gain_cv=0.7), SpotModel()])
def test_numba_and_numpy_draws_agree_in_distribution(model):
    n = 100_000
    a = draw_spot_params(n, np.random.default_rng(11), model)
    b = draw_spot_params_numba(n, 12345, model)
    for name, u, v in zip(("A", "sigma", "rho"), a, b):
        assert stats.ks_2samp(u, v).pvalue > ALPHA, name
    if model.gain == "gamma":
        assert stats.kstest(b[0], _gamma_law(model).cdf).pvalue > ALPHA
    else:  # Normal clipped at 0: P(A = 0) = Phi(-1 / cv)
        p0 = stats.norm.cdf(-1 / model.gain_cv)
        for A in (a[0], b[0]):
            assert A.min() >= 0.0 and abs(np.mean(A == 0) - p0) < Z * np.sqrt(p0 * (1 - p0) / n) + 1 / n
            assert (A.min() == 0.0) == (p0 > 1e-3)  # cv 0.7: 7.6 % at 0; cv 0.1: none (p = 8e-24)


def test_width_floor():
    # 0.5 +- 0.25 px: P(width < 0.1 px) = Phi(-1.6); those are drawn at the floor, never below
    n = 100_000
    m = SpotModel(sigma_px=0.5, sigma_sd_px=0.25)
    p = stats.norm.cdf((0.1 - 0.5) / 0.25)
    for _, s, _ in (draw_spot_params(n, 1, m), draw_spot_params_numba(n, 2, m)):
        assert s.min() == SIGMA_FLOOR == 0.1 / 512
        assert abs(np.mean(s == SIGMA_FLOOR) - p) < Z * np.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------ rendered spots
def _isolated_spots(model, seed, n_frames=4, spacing=40):
    """Frames of isolated spots (a grid, spacing px apart, random sub-pixel offsets) from render_chunk."""
    rng = np.random.default_rng(seed)
    g = np.arange(64, 961, spacing, dtype=float)
    xs, zs, offs = [], [], [0]
    for _ in range(n_frames):
        px = (g[:, None] + rng.uniform(0, 1, (g.size, g.size))).ravel()
        pz = (g[None, :] + rng.uniform(0, 1, (g.size, g.size))).ravel()
        xs.append(px / 512 - 1)
        zs.append(pz / 512 - 1)
        offs.append(offs[-1] + px.size)
    x, z, offs = np.concatenate(xs), np.concatenate(zs), np.array(offs, dtype=np.int64)
    out = np.empty((n_frames, 1024, 1024), dtype=np.uint8)
    render_chunk(np.arange(n_frames, dtype=np.int64), offs, x, z, seed, out, n_workers=2, spots=model)
    return x, z, offs, out


def _measure_spot(frame, x0, z0, half=12):
    """Peak, width (px) and rho of one isolated spot: weighted least squares of log(pixel) on a quadratic.

    Pixels 10..254 within `half` px (saturated ones left out, so a clipped spot is measured too). A
    pixel samples the spot at offsets 0..0.8 px (mean 0.4, variance 0.08 px^2 per axis), removed
    from the fitted covariance.
    """
    p0, q0 = (x0 + 1) * 512, (z0 + 1) * 512
    i0, j0 = int(p0), int(q0)
    d = np.arange(-half, half + 1)
    win = frame[i0 - half:i0 + half + 1, j0 - half:j0 + half + 1].astype(float)
    dx, dz = np.meshgrid(i0 + d + 0.4 - p0, j0 + d + 0.4 - q0, indexing="ij")
    m = (win >= 10) & (win <= 254)
    w = win[m]
    X = np.stack([np.ones(w.size), dx[m], dz[m], dx[m] ** 2, dz[m] ** 2, dx[m] * dz[m]], 1)
    c = np.linalg.lstsq(X * w[:, None], np.log(w) * w, rcond=None)[0]
    P = -2 * np.array([[c[3], c[5] / 2], [c[5] / 2, c[4]]])
    mu = np.linalg.solve(P, c[1:3])
    Pt = np.linalg.inv(np.linalg.inv(P) - 0.08 * np.eye(2))  # the spot's precision [[1, rho], [rho, 1]] / s^2
    rho = Pt[0, 1] / np.sqrt(Pt[0, 0] * Pt[1, 1])
    s = ((1 - rho**2) / np.linalg.det(Pt)) ** 0.25
    return np.exp(c[0] + 0.5 * mu @ P @ mu), s, rho


def test_rendered_isolated_spots_of_a_gamma_camera_follow_the_model():
    m = GAMMA_CAM
    seed = 5
    x, z, offs, frames = _isolated_spots(m, seed)
    est, drawn = [], []
    for f in range(frames.shape[0]):
        a, b = offs[f], offs[f + 1]
        # the kernel renders the model's draws from the frame's own stream, exactly
        A, s, r = draw_spot_params_numba(b - a, frame_seed(seed, f, STREAM_SPOTS), m)
        assert np.array_equal(frames[f], render_frame(x[a:b], z[a:b], A, s, r))
        drawn.append(np.stack([A, s * 512, r], 1))
        est.append([_measure_spot(frames[f], x[k], z[k]) for k in range(a, b)])
    est, drawn = np.concatenate(est), np.concatenate(drawn)
    n = len(est)
    A_est, s_est, r_est = est.T
    assert np.mean(drawn[:, 0] > 255) > 0.04  # some spots saturate: they are measured too
    # the measurement itself (per spot, against what was drawn): peak within 2 %, width 3 %, rho 0.03
    assert np.all(np.abs(A_est / drawn[:, 0] - 1) < 0.02)
    assert np.all(np.abs(s_est / drawn[:, 1] - 1) < 0.03)
    assert np.all(np.abs(r_est - drawn[:, 2]) < 0.03)
    # the measured statistics against the model; allowance 1 % for the measurement's bias (above)
    assert abs(A_est.mean() / m.gain_mean - 1) < Z * m.gain_cv / np.sqrt(n) + 0.01
    k = m.gamma_shape
    assert abs(A_est.std() / A_est.mean() / m.gain_cv - 1) < Z * np.sqrt((2 + 6 / k) / (4 * n)) + 0.02
    assert stats.kstest(A_est, _gamma_law(m).cdf).pvalue > ALPHA
    assert abs(s_est.mean() - m.sigma_px) < Z * m.sigma_sd_px / np.sqrt(n) + 0.01 * m.sigma_px
    assert abs(s_est.std() / m.sigma_sd_px - 1) < Z / np.sqrt(2 * n) + 0.05
    assert abs(r_est.std() / m.rho_sd - 1) < Z / np.sqrt(2 * n) + 0.05


# ------------------------------------------------------------------------ truth file
def test_truth_file_round_trip_of_the_spot_model(tmp_path):
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                    SimulationSettings(n_frames=2, electrons_per_shell=[5, 5], seed=1, chunk=2, spot=GAMMA_CAM),
                    progress=False)
    with h5py.File(tmp_path / "t.h5") as t:
        assert t.attrs["spot_gain"] == "gamma" and t.attrs["spot_sigma_px"] == 4.5
        assert t.attrs["spot_gain_cv"] == 0.5 and t.attrs["spot_sigma_sd_px"] == 0.3
    assert read_camera_truth(tmp_path / "t.h5")["spot"] == GAMMA_CAM
    write_test_file(tmp_path / "f2.h5", tmp_path / "t2.h5", SHELLS,
                    SimulationSettings(n_frames=1, electrons_per_shell=[5, 5], seed=1), progress=False)
    assert read_camera_truth(tmp_path / "t2.h5")["spot"] == SpotModel()
    with h5py.File(tmp_path / "t2.h5") as t:
        assert t.attrs["spot_gain"] == "normal" and t.attrs["spot_gain_mean"] == 100.0


def test_truth_without_or_with_bad_spot_attributes(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f["Truth"] = np.zeros(1)
    assert read_camera_truth(path)["spot"] == SpotModel()  # files of before: the published model
    with h5py.File(path, "a") as f:
        f.attrs["spot_sigma_px"] = 5.0
    assert read_camera_truth(path)["spot"] == SpotModel(sigma_px=5.0)  # the others stay published
    for key, value, message in (("spot_gain", "lorentz", "spot gain"), ("spot_gain", "normal", None),
                                ("spot_gain_cv", -1.0, "gain_cv"), ("spot_gain_cv", "x", "spot_gain_cv")):
        with h5py.File(path, "a") as f:
            f.attrs[key] = value
        if message is None:
            continue
        with pytest.raises(InputError, match=message) as exc:
            read_camera_truth(path)
        assert "\n" not in str(exc.value) and str(path) in str(exc.value)
        with h5py.File(path, "a") as f:
            del f.attrs[key]


def test_library_refuses_a_bad_spot_model(tmp_path):
    for spots, message in (({"sigma_px": 0.1}, "sigma_px"), ({"gain": "poisson"}, "gain"), ({"sigma": 3}, "sigma"),
                           (SpotModel(gain_cv=-0.5), "gain_cv"), ([1, 2], "mapping")):
        with pytest.raises(InputError, match=message):
            write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                            SimulationSettings(n_frames=1, electrons_per_shell=3, spot=spots), progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ settings
SECTION = {"n_frames": 2, "shells": [{"R": 0.5, "sigma_R": 0.007, "beta": [1.0]}]}


def test_settings_spot_section_and_flags():
    assert SimulationSettings().spot == {} and SimulationSettings().spot_model() == SpotModel()
    section = {**SECTION, "spot": {"sigma_px": 5, "gain": "gamma", "gain_mean": 120, "gain_cv": 0.45}}
    s, _ = resolve_settings(section, {}, where="c.yaml")
    assert s.spot_model() == SpotModel(sigma_px=5.0, gain="gamma", gain_mean=120.0, gain_cv=0.45)
    s, _ = resolve_settings(section, {"spot": {"gain_cv": 0.3, "rho_sd": 0.2}}, where="c.yaml")  # key by key
    assert s.spot_model() == SpotModel(sigma_px=5.0, rho_sd=0.2, gain="gamma", gain_mean=120.0, gain_cv=0.3)
    assert check_spot(None) == SpotModel()
    assert check_spot(GAMMA_CAM) == GAMMA_CAM and SimulationSettings(spot=GAMMA_CAM).spot_model() == GAMMA_CAM


@pytest.mark.parametrize("spot, message", [
    ({"sigma_px": -1}, "c.yaml: spot sigma_px must be in [0.5, 40] px, got -1"),
    ({"sigma_px": 4, "sigma_sd_px": 3}, "spot sigma_sd_px must be in [0, sigma_px / 2]"),
    ({"rho_sd": 1.5}, "spot rho_sd must be in [0, 1]"),
    ({"gain": "lorentz"}, "spot gain law must be one of normal, gamma"),
    ({"gain_mean": 0}, "spot gain_mean"),
    ({"gain": "gamma", "gain_cv": 0}, "spot gain_cv must be in [0.01, 3]"),
    ({"gain_cv": "big"}, "spot gain_cv must be a number"),
    ({"gain_cv": True}, "spot gain_cv must be a number"),
    ({"gain_cv": float("nan")}, "gain_cv"),
    ({"width": 3}, "unknown spot-model key(s) width"),
    ([3], "spot must be a mapping"),
])
def test_settings_refuse_bad_spot_values_in_one_line(spot, message):
    with pytest.raises(InputError) as exc:
        resolve_settings({**SECTION, "spot": spot}, {}, where="c.yaml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


class _NoDetector:
    """Stands in for the detector (what is checked here is the rendering): finds nothing."""

    def __init__(self, *args, **kw):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def process(self, ids, frames):
        return np.zeros(0, dtype=[("ImageId", np.int32), ("x", np.float64), ("z", np.float64)])


def test_calibration_renders_with_the_lab_cameras_spot_model(monkeypatch):
    import sevi_lib.calibrate.response as response
    from sevi_lib.calibrate.response import LabCamera, simulate_response

    seen = []
    real = render.render_chunk

    def spy(*args, **kwargs):
        seen.append(kwargs["spots"])
        return real(*args, **kwargs)

    # the names as the calibration module bound them at its import
    monkeypatch.setattr(response, "render_chunk", spy)
    monkeypatch.setattr(response, "FrameDetector", _NoDetector)
    shells = Shells([0.5], [0.007], [[0.5]])
    simulate_response(shells, 2, [3.0], seed=1, chunk=2)
    simulate_response(shells, 2, [3.0], seed=1, chunk=2, camera=LabCamera(spots=GAMMA_CAM))
    assert seen == [spot_kernel(None), GAMMA_CAM.kernel()]

"""Detector calibration: settings, the correction arithmetic, a known injected response, the stage."""

import numpy as np
import pytest

from sevi_lib.calibrate import (
    CalibrationSettings,
    LabCamera,
    ResponseSample,
    calibrate,
    correct,
    expected_distance,
    fit_parameters,
    fit_standard_errors,
    lab_camera,
    physical_shells,
    pool_samples,
    simulate_response,
    top_up_frames,
)
from sevi_lib.core.angular import min_density
from sevi_lib.core.score import shell_distance
from sevi_lib.core.shells import Shells
from sevi_lib.fit import fit_electrons
from sevi_lib.simulate.electrons import iter_frame_electrons
from sevi_lib.simulate.settings import SimulationSettings

BETA = [1.0, 0.6, 0.25, 0.05]
SHELL = Shells([0.5], [0.007], [BETA])


def test_settings_frames_and_validation():
    s = CalibrationSettings()
    assert s.n_frames_for(50000) == int(np.ceil(s.frames_fraction * 50000))
    assert s.n_frames_for(10) == s.min_frames
    assert CalibrationSettings(frames=123).n_frames_for(50000) == 123
    assert s.pass_seed(0) != s.pass_seed(1)
    for bad in ({"blocks": 1}, {"iterations": -1}, {"frames_fraction": 0}, {"seed": -1}):
        with pytest.raises(ValueError):
            CalibrationSettings(**bad).validate()


def test_correct_subtracts_and_adds_errors_in_quadrature():
    p = {"R": np.array([0.5]), "sigma_R": np.array([0.007]), "ln_weights": np.array([10.0]),
         "beta": np.array([[1.0, 0.5]])}
    se = {"R": np.array([3e-5]), "sigma_R": np.array([1e-5]), "ln_weights": np.array([0.01]),
          "beta": np.array([[0.03, 0.04]])}
    b = {"R": np.array([1e-4]), "sigma_R": np.array([2e-5]), "ln_weights": np.array([-0.02]),
         "beta": np.array([[-0.1, 0.05]])}
    bse = {"R": np.array([4e-5]), "sigma_R": np.array([0.0]), "ln_weights": np.array([0.0]),
           "beta": np.array([[0.04, 0.03]])}
    c, cse = correct(p, se, b, bse)
    assert np.allclose(c["beta"], [[1.1, 0.45]]) and np.allclose(c["R"], [0.4999])
    assert np.allclose(cse["beta"], [[0.05, 0.05]]) and np.allclose(cse["R"], [5e-5])
    assert np.allclose(expected_distance(cse["beta"]), np.sqrt(0.4 * 0.05**2 + 2 / 9 * 0.05**2))


def test_physical_shells_moves_an_unphysical_row_just_inside():
    bad = {"R": np.array([0.5]), "sigma_R": np.array([0.007]), "ln_weights": np.zeros(1),
           "beta": np.array([[2.5, 0.0]])}
    sh = physical_shells(bad, anchor=np.array([[0.5, 0.3]]))
    assert -1e-9 <= min_density(sh.beta[0])[0] < 1e-6
    assert 0.5 < sh.beta[0, 0] < 2.5 and 0 < sh.beta[0, 1] < 0.3


def _distort(x, z, rng):
    """A known detector response: 40 % of the electrons within 18 degrees of the poles are lost,
    and every radius is 0.3 % too large."""
    c = np.abs(z) / np.hypot(x, z)
    keep = ~((c > np.cos(np.radians(18))) & (rng.random(x.size) < 0.4))
    return x[keep] * 1.003, z[keep] * 1.003


def _injected(shells, n_frames, per_frame, detector, seed, threads, chunk, blocks, progress_seconds, what,
              camera=None):
    """simulate_response with the known response of :func:`_distort` instead of rendering + detection."""
    rng = np.random.default_rng(seed)
    tx, tz, tb, dx, dz, db = [], [], [], [], [], []
    for ch in iter_frame_electrons(shells, SimulationSettings(n_frames=n_frames, electrons_per_shell=per_frame,
                                                             detection_loss=0.0, seed=seed, chunk=256)):
        frame = ch.detected["ImageId"].astype(np.int64)
        x, z = ch.detected["x"], ch.detected["z"]
        block = (frame * blocks // n_frames).astype(np.int16)
        for b in np.unique(block):
            m = block == b
            xd, zd = _distort(x[m], z[m], rng)
            tx.append(x[m]), tz.append(z[m]), tb.append(block[m])
            dx.append(xd), dz.append(zd), db.append(np.full(xd.size, b, np.int16))
    cat = np.concatenate
    return ResponseSample(cat(dx), cat(dz), cat(db), cat(tx), cat(tz), cat(tb), n_frames, blocks, 0.0)


def test_known_response_is_removed_and_its_error_is_reported():
    """Data seen through a known, strong response (18 standard errors on the distance): after one
    iteration the calibrated answer lies within its reported error of the fit of the true positions,
    the uncorrected one far outside, and the standard errors include the bias's error."""
    n_frames, per_frame = 1000, 30.0
    data = _injected(SHELL, n_frames, [per_frame], None, 7, 1, 256, 1, 0, "data")
    fit = fit_electrons(data.detected_x, data.detected_z, n_beta=4, n_shells=1)
    true = fit_electrons(data.true_x, data.true_z, n_beta=4, n_shells=1)
    settings = CalibrationSettings(frames=2000, blocks=3, seed=3, iterations=1)
    res = calibrate(fit, n_frames, settings=settings, simulate=_injected)
    d_unc = shell_distance(fit.beta, true.beta)[0]
    d_cal = shell_distance(np.array(res["beta"]), true.beta)[0]
    assert d_unc > 10 * fit.expected_distance[0]  # the response is visible
    assert d_cal < 2.0 * res["expected_distance"][0]
    assert abs(res["R"][0] - true.R[0]) < 0.2 * abs(fit.R[0] - true.R[0])
    # the efficiency of the injected response: 1 - 0.4 x (share within 18 degrees of the poles)
    assert 0.7 < np.exp(res["bias"]["ln_weights"][0]) < 0.95
    se_fit = fit_standard_errors(fit)["beta"]
    bias_se = np.array(res["bias_se"]["beta"])
    assert np.all(bias_se > 0)
    noise_se = np.array(res["detection_noise_se"]["beta"])
    assert np.allclose(noise_se, bias_se * np.sqrt(2000 / n_frames))
    assert np.allclose(np.array(res["se_beta"]), np.sqrt(se_fit**2 + bias_se**2 + noise_se**2))
    assert np.allclose(res["uncorrected"]["beta"], fit.beta)
    assert np.allclose(fit_parameters(fit)["beta"], fit.beta)
    # pass 0 at the fit, pass 1 at the parameters pass 0 corrected; the answer uses pass 1's bias
    p0, p1 = res["passes"]
    assert np.allclose(p0["simulated"]["beta"], fit.beta)
    assert np.allclose(p1["simulated"]["beta"], np.array(fit.beta) - np.array(p0["bias"]["beta"]))
    assert p1["simulated"]["electrons_per_frame"][0] > p0["simulated"]["electrons_per_frame"][0]
    assert np.allclose(res["beta"], np.array(fit.beta) - np.array(p1["bias"]["beta"]))


def test_lab_camera_of_a_fit_and_of_an_older_sidecar():
    side = {"centre": [0.01, -0.005], "centre_fixed": False, "background": 600.0, "background_per_frame": 3.0}
    cam = lab_camera(side, 200)
    assert cam.centre == (0.01, -0.005) and cam.stray_electrons == 3.0 and cam.effects() is None
    assert lab_camera({"centre": [0, 0], "background": 600.0}, 300).stray_electrons == 2.0
    old = lab_camera({"R": [0.5]}, 100)  # a sidecar of the published geometry
    assert old.centre == (0.0, 0.0) and old.stray_electrons == 0.0


def test_calibration_frames_share_the_data_camera():
    """Frames simulated for the calibration sit at the fitted centre, carry the stray electrons,
    and go through the survey's camera: hot pixels rendered at their levels are masked by the
    detector (no electron found on them), read noise does not create electrons."""
    from sevi_lib.detect.camera import CameraSurvey

    hot = ((100, 200), (512, 512), (900, 40))
    survey = CameraSurvey(read_noise=1.5, read_noise_se=0.01, pedestal=0.0, pedestal_se=0.01,
                          hot_pixels=hot, hot_levels=(200.0, 150.0, 255.0))
    cam = LabCamera((6 / 512, -4 / 512), 4.0, survey)
    assert cam.effects() is not None
    shells = Shells([0.5], [0.007], [[0.5, 0.1]])
    sample = simulate_response(shells, 24, [40.0], seed=5, chunk=8, blocks=2, camera=cam)
    n_true = sample.true_x.size
    assert 24 * 40 < n_true < 24 * 50  # shells plus about 4 strays per frame
    # shell electrons project inside the disc of radius R about the centre; strays fall anywhere
    outside = np.hypot(sample.true_x - 6 / 512, sample.true_z + 4 / 512) > 0.5 + 5 * 0.007
    expected = 24 * 4.0 * (1 - np.pi * 0.535**2 / 4)  # strays outside the disc: about 74
    assert abs(outside.sum() - expected) < 4 * np.sqrt(expected)
    # detected: about as many as true, none on a hot pixel, noise makes no electrons
    assert 0.9 * n_true < sample.detected_x.size < 1.05 * n_true
    px = np.stack([512 + 512 * sample.detected_x, 512 + 512 * sample.detected_z], axis=1)
    for ix, iz in hot:
        assert not np.any(np.all(np.abs(px - np.array([ix + 0.5, iz + 0.5])) < 1.0, axis=1))


def test_top_up_frames_reach_the_added_error_within_the_cap():
    s = CalibrationSettings(max_added_error=0.1, max_frames_fraction=1.0, blocks=4)
    t2 = 1.1**2 - 1
    # two shells, the worse one decides: (b / r)^2 = 1 -> n / t2 frames
    bias = np.array([[0.01, 0.0], [0.03, 0.0]])
    rest = np.array([[0.05, 0.0], [0.03, 0.0]])
    n = 1000
    assert top_up_frames(bias, rest, n, 100000, s) == int(np.ceil(n / t2)) - n
    # after the top-up the rise is the goal: b falls as 1 / sqrt(frames)
    grown = n + top_up_frames(bias, rest, n, 100000, s)
    b = expected_distance(bias[1:]) * np.sqrt(n / grown)
    assert np.sqrt(1 + (b / expected_distance(rest[1:])) ** 2) - 1 == pytest.approx(0.1, rel=1e-3)
    assert top_up_frames(bias, rest, n, 3000, s) == 2000  # capped at the data's frames
    assert top_up_frames(bias / 10, rest, n, 100000, s) == 0  # a rise of 0.5 %: nothing
    assert top_up_frames(bias, rest, n, 1002, s) == 0  # fewer new frames than blocks
    assert top_up_frames(bias, rest, n, 100000, CalibrationSettings(frames=n)) == 0  # a fixed count stays
    assert top_up_frames(bias, rest, n, 100000, CalibrationSettings(max_frames_fraction=0.01)) == 0
    for bad in ({"max_added_error": 0}, {"max_frames_fraction": -1}):
        with pytest.raises(ValueError):
            CalibrationSettings(**bad)


def test_pool_samples_keeps_the_blocks():
    a = _injected(SHELL, 40, [5.0], None, 1, 1, 256, 4, 0, "a")
    b = _injected(SHELL, 20, [5.0], None, 2, 1, 256, 4, 0, "b")
    p = pool_samples(a, b)
    assert (p.n_frames, p.blocks, p.frame_start, p.frame_stop) == (60, 4, 0, 60)
    assert p.true_x.size == a.true_x.size + b.true_x.size
    for k in range(4):  # block k of the pool is block k of each
        assert np.sum(p.true_block == k) == np.sum(a.true_block == k) + np.sum(b.true_block == k)
    with pytest.raises(ValueError):
        pool_samples(a, _injected(SHELL, 20, [5.0], None, 2, 1, 256, 2, 0, "c"))


def test_a_noisy_response_gets_the_frames_it_needs():
    """The injected response loses electrons at random (detection noise near the shot noise), so
    0.1 of the data's frames leave the bias's error far above max_added_error: the pass tops up to
    the frames its first estimate asks for, with its own seed, and the answer's errors are those
    of the pooled frames."""
    n_frames, per_frame = 1000, 30.0
    data = _injected(SHELL, n_frames, [per_frame], None, 7, 1, 256, 1, 0, "data")
    fit = fit_electrons(data.detected_x, data.detected_z, n_beta=4, n_shells=1)
    se_fit = fit_standard_errors(fit)["beta"]
    base = CalibrationSettings(frames_fraction=0.1, min_frames=8, blocks=4, seed=3, second_pass_above=0)
    # with the cap at frames_fraction: no top-up, the first estimate of 100 frames
    plain = calibrate(fit, n_frames, settings=CalibrationSettings(**{**base.to_dict(), "max_frames_fraction": 0.1}),
                      simulate=_injected)
    assert plain["passes"][0]["top_up_frames"] == 0 and plain["passes"][0]["frames"] == 100
    first = np.array(plain["bias_se"]["beta"])
    want = top_up_frames(first, np.hypot(se_fit, first * np.sqrt(100 / n_frames)), 100, n_frames, base)
    assert want > 100
    lines = []
    res = calibrate(fit, n_frames, settings=base, simulate=_injected, log=lines.append)
    p0 = res["passes"][0]
    assert p0["top_up_frames"] == want and p0["frames"] == 100 + want
    assert p0["top_up_seed"] == base.top_up_seed(0) != base.pass_seed(0)
    assert any(f"{want} frames more" in ln for ln in lines)
    bias_se = np.array(res["bias_se"]["beta"])
    noise_se = bias_se * np.sqrt((100 + want) / n_frames)
    assert np.allclose(res["detection_noise_se"]["beta"], noise_se)
    assert np.allclose(res["se_beta"], np.sqrt(se_fit**2 + bias_se**2 + noise_se**2))
    ratio = expected_distance(first)[0] / expected_distance(bias_se)[0]
    assert 1.2 < ratio < 2.5 * np.sqrt((100 + want) / 100)  # sqrt(frames) expected; 4 blocks each
    assert res["expected_distance"][0] < plain["expected_distance"][0]


def test_a_large_bias_gets_a_second_pass():
    """The injected response's bias is many expected distances: with iterations 0 a second pass
    runs at the corrected parameters, and only it is topped up; a higher second_pass_above keeps
    one pass."""
    n_frames = 1000
    data = _injected(SHELL, n_frames, [30.0], None, 7, 1, 256, 1, 0, "data")
    fit = fit_electrons(data.detected_x, data.detected_z, n_beta=4, n_shells=1)
    base = CalibrationSettings(frames_fraction=0.1, min_frames=8, blocks=4, seed=3)
    lines = []
    res = calibrate(fit, n_frames, settings=base, simulate=_injected, log=lines.append)
    p0, p1 = res["passes"]
    size = expected_distance(p0["bias"]["beta"])[0] / res["expected_distance"][0]
    assert size > 3 * base.second_pass_above  # the bias is large, so the second pass ran
    assert any("a second pass at the corrected parameters" in ln for ln in lines)
    assert np.allclose(p1["simulated"]["beta"], np.array(fit.beta) - np.array(p0["bias"]["beta"]))
    assert p0["top_up_frames"] == 0 and p0["frames"] == 100 and p1["top_up_frames"] > 0
    assert np.allclose(res["beta"], np.array(fit.beta) - np.array(p1["bias"]["beta"]))
    one = calibrate(fit, n_frames, settings=CalibrationSettings(**{**base.to_dict(), "second_pass_above": 1e6}),
                    simulate=_injected)
    assert len(one["passes"]) == 1 and one["passes"][0]["top_up_frames"] > 0
    with pytest.raises(ValueError):
        CalibrationSettings(second_pass_above=-1)

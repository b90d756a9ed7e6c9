import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.nn.ensemble import ensemble_answer, network_errors, shrink_to_centre


def _members(rng, truth, M, bias_sd, member_sd):
    """M members' predictions of maps with betas `truth` (n, K, N): a bias common to the members
    (differs per map) plus each member's own noise."""
    common = rng.normal(0, bias_sd, truth.shape)
    return truth[None] + common[None] + rng.normal(0, member_sd, (M, *truth.shape))


@pytest.mark.parametrize("M", [1, 4])
def test_pulls_on_held_out_maps_have_mean_0_and_spread_1(M):
    """The standard errors of one set of calibration maps hold on other maps from the same prior:
    pulls of the ensemble mean have mean 0 and standard deviation 1 (statistical tolerances)."""
    rng = np.random.default_rng(1)
    K, N, n = 2, 12, 400
    bias_sd = np.linspace(0.01, 0.05, N)[None] * np.ones((K, 1))
    member_sd = 0.5 * bias_sd[::-1]
    truth = rng.normal(0.5, 0.2, (n, K, N))
    calib = _members(rng, truth, M, bias_sd, member_sd)
    pulls = []
    for _ in range(300):  # held-out real maps, one at a time
        t = rng.normal(0.5, 0.2, (1, K, N))
        err = network_errors(_members(rng, t, M, bias_sd, member_sd)[:, 0], calib, truth)
        pulls.append((err.beta - t[0]) / err.se)
    pulls = np.array(pulls)[..., :2]  # beta_2, beta_4
    # 300 maps x 2 shells x 2 coefficients; the calibration's own error is ~1/sqrt(2 n) = 3.5 %
    assert np.all(np.abs(pulls.mean(axis=0)) < 4 / np.sqrt(300))
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 4 * np.sqrt(1 / 600 + 1 / 800))
    if M == 1:
        assert np.all(err.spread == 0)


def test_members_that_agree_by_chance_keep_the_calibration_error_and_disagreement_inflates_it():
    rng = np.random.default_rng(2)
    truth = rng.normal(0, 1, (200, 1, 3))
    calib = _members(rng, truth, 4, 0.0, 0.1)  # no common error: all of it is the members' spread
    err = network_errors(np.zeros((4, 1, 3)), calib, truth)  # members agree exactly on the real map
    # no common error: rms_calib^2 - calib_spread^2 (each 0.05^2 within sqrt(2 / 200), independent) is
    # within 4 of its standard errors of 0
    assert np.all(err.systematic < np.sqrt(4 * 0.05 ** 2 * np.sqrt(2 * 2 / 200)))
    assert np.all(err.spread == 0) and np.all(err.se == err.rms_calib)
    np.testing.assert_allclose(err.rms_calib, 0.1 / 2, rtol=0.15)
    np.testing.assert_allclose(err.calib_spread, 0.1 / 2, rtol=0.15)
    wide = network_errors(np.array([[[0.0] * 3], [[1.0] * 3], [[0.0] * 3], [[1.0] * 3]]), calib, truth)
    np.testing.assert_allclose(wide.se, np.sqrt(err.rms_calib ** 2 + wide.spread ** 2 - err.calib_spread ** 2))
    assert np.all(wide.se > 4 * err.se)


def _skilled(rng, n, M, *, centre, width, gain, own_sd, member_sd):
    """Maps drawn around `centre` (truth = centre + N(0, width^2)) and M members whose departure
    from the centre is `gain` times the truth's plus an error of their own common to the members
    (sd `own_sd`) and each member's noise (sd `member_sd`). The network's weight is then
    ``s = gain width^2 / (gain^2 width^2 + own_sd^2 + member_sd^2 / M)``."""
    truth = centre + rng.normal(0, width, (n, *centre.shape))
    common = gain * (truth - centre) + rng.normal(0, own_sd, truth.shape)
    return truth, centre + common[None] + rng.normal(0, member_sd, (M, *truth.shape))


def _s(gain, width, own_sd, member_sd, M):
    return gain * width ** 2 / (gain ** 2 * width ** 2 + own_sd ** 2 + member_sd ** 2 / M)


@pytest.mark.parametrize("gain, own_sd", [(1.0, 1.0), (0.3, 0.2), (1.0, 0.05)])
def test_shrinkage_recovers_the_networks_skill(gain, own_sd):
    """s from n calibration maps is the least-squares weight of a model of members with known
    skill, within its statistical error sqrt(var(t - s d) / sum(d^2))."""
    rng = np.random.default_rng(4)
    K, N, n, M = 2, 3, 400, 2
    centre = rng.normal(0.5, 0.2, (K, N))
    width = np.array([0.01, 0.02, 0.04])
    truth, calib = _skilled(rng, n, M, centre=centre, width=width, gain=gain, own_sd=own_sd * width,
                            member_sd=0.3 * width)
    real = calib[:, 0]
    got = shrink_to_centre(network_errors(real, calib, truth), centre, calib.mean(axis=0), truth, centre)
    want = np.minimum(_s(gain, width, own_sd * width, 0.3 * width, M), 1.0)
    d, t = calib.mean(axis=0) - centre, truth - centre
    tol = 4 * np.sqrt(((t - want * d) ** 2).sum(axis=0) / (n - 1) / (d ** 2).sum(axis=0))
    assert np.all(np.abs(got.s - want) < tol), (got.s, want, tol)
    # one weight per shell, pooled over its coefficients (each in units of its prior width)
    assert np.all(got.s == got.s[:, :1])
    np.testing.assert_allclose(got.beta, centre + got.s * (real.mean(axis=0) - centre))
    # the shrunk answer is at least as close to the truth on the calibration maps as either estimate
    assert np.all(got.rms_calib <= got.rms_centre + 1e-15)
    assert np.all(got.rms_calib <= network_errors(real, calib, truth).rms_calib + 1e-15)
    np.testing.assert_allclose(got.rms_centre, np.broadcast_to(width, (K, N)), rtol=4 / np.sqrt(2 * n))


def test_a_network_without_skill_answers_the_centre_and_one_with_full_skill_itself():
    rng = np.random.default_rng(5)
    centre = np.full((2, 4), 0.3)
    width = 0.01
    truth, calib = _skilled(rng, 200, 2, centre=centre, width=width, gain=0.0, own_sd=0.02, member_sd=0.01)
    err = network_errors(calib[:, 0], calib, truth)
    none = shrink_to_centre(err, centre, calib.mean(axis=0), truth, centre)
    d, t = calib.mean(axis=0) - centre, truth - centre
    # no skill: s is 0 or, by chance, within 4 of its standard errors of it; the answer stays near the centre
    assert np.all(none.s < 4 * np.sqrt((t ** 2).sum(axis=0) / (d ** 2).sum(axis=0)))
    assert np.all(np.abs(none.beta - centre) <= none.s * np.abs(err.beta - centre) + 1e-15)
    np.testing.assert_allclose(none.se, width, rtol=0.3)  # about the prior's width, not the network's 0.02
    truth, calib = _skilled(rng, 200, 2, centre=centre, width=width, gain=1.0, own_sd=1e-4, member_sd=1e-4)
    full = shrink_to_centre(network_errors(calib[:, 0], calib, truth), centre, calib.mean(axis=0), truth, centre)
    assert np.all(full.s > 0.99)
    np.testing.assert_allclose(full.beta, calib[:, 0].mean(axis=0), atol=0.05 * width)
    # never departed from the centre on the calibration maps: weight 0, the centre
    flat = np.broadcast_to(centre, calib.shape).copy()
    zero = shrink_to_centre(network_errors(flat[:, 0] + 0.1, flat, truth), centre, flat.mean(axis=0), truth, centre)
    assert np.all(zero.s == 0) and np.all(zero.beta == centre)


@pytest.mark.parametrize("gain", [1.0, 0.3])
def test_pulls_of_the_shrunk_answer_have_mean_0_and_spread_1(gain):
    """Calibrated on 400 maps, the shrunk answer's standard errors hold on 300 held-out maps from the
    same prior (statistical tolerances as in the network's own pull test)."""
    rng = np.random.default_rng(6)
    M = 3
    centre = np.array([[0.9, 0.2], [-0.3, 0.05]])
    width = np.array([0.01, 0.02])
    kw = dict(centre=centre, width=width, gain=gain, own_sd=0.8 * width, member_sd=0.5 * width)
    truth, calib = _skilled(rng, 400, M, **kw)
    mean = calib.mean(axis=0)
    pulls = []
    for _ in range(300):
        t, m = _skilled(rng, 1, M, **kw)
        got = shrink_to_centre(network_errors(m[:, 0], calib, truth), centre, mean, truth, centre)
        pulls.append((got.beta - t[0]) / got.se)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 4 / np.sqrt(300))
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 4 * np.sqrt(1 / 600 + 1 / 800))


def test_ensemble_answer_shrinks_towards_the_centre_and_records_the_network_beside():
    rng = np.random.default_rng(3)
    centre = np.full((2, 4), 0.3)
    truth, calib = _skilled(rng, 100, 2, centre=centre, width=0.01, gain=0.0, own_sd=0.01, member_sd=0.005)
    real = np.full((2, 2, 4), 0.35)
    doc = ensemble_answer(real, calib, truth, centre=centre)
    assert doc["combined"] and doc["M"] == 2 and doc["n_calib"] == 100
    s = np.array(doc["weight_network"])
    np.testing.assert_allclose(doc["beta"], centre + s * 0.05)
    np.testing.assert_allclose(doc["beta_network"], 0.35)
    assert np.all(s < 0.6) and len(doc["rms_centre"]) == 2
    moved = ensemble_answer(real, calib, truth, centre=centre, calib_centre=centre - 0.01)
    assert not np.allclose(moved["weight_network"], s)  # the calibration maps' own centre is used
    alone = ensemble_answer(real, calib, truth, combine=False)
    assert alone["beta"] == alone["beta_network"] and np.all(np.array(alone["weight_network"]) == 1)
    assert alone["rms_centre"] is None
    with pytest.raises(InputError, match="centre"):
        ensemble_answer(real, calib, truth)


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match="do not agree"):
        network_errors(np.zeros((2, 2, 4)), np.zeros((3, 10, 2, 4)), np.zeros((10, 2, 4)))
    with pytest.raises(InputError, match="two calibration"):
        network_errors(np.zeros((2, 2, 4)), np.zeros((2, 1, 2, 4)), np.zeros((1, 2, 4)))
    with pytest.raises(InputError, match="do not agree"):
        shrink_to_centre(network_errors(np.zeros((2, 2, 4)), np.zeros((2, 10, 2, 4)), np.zeros((10, 2, 4))),
                         np.zeros((2, 3)), np.zeros((10, 2, 4)), np.zeros((10, 2, 4)), np.zeros((2, 4)))

import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.nn.ensemble import combine_with_prior, ensemble_answer, network_errors


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
    assert np.all(err.systematic < 0.02) and np.all(err.spread == 0) and np.all(err.se == err.rms_calib)
    np.testing.assert_allclose(err.rms_calib, 0.1 / 2, rtol=0.15)
    np.testing.assert_allclose(err.calib_spread, 0.1 / 2, rtol=0.15)
    wide = network_errors(np.array([[[0.0] * 3], [[1.0] * 3], [[0.0] * 3], [[1.0] * 3]]), calib, truth)
    np.testing.assert_allclose(wide.se, np.sqrt(err.rms_calib ** 2 + wide.spread ** 2 - err.calib_spread ** 2))
    assert np.all(wide.se > 4 * err.se)


def test_inverse_variance_combination():
    beta, se = combine_with_prior([[1.0, 0.0]], [[0.1, 0.3]], [[0.0, 1.0]], [[0.1, 0.1]])
    np.testing.assert_allclose(beta, [[0.5, 0.9]])
    w = (1 / 0.09) / (1 / 0.09 + 100)
    np.testing.assert_allclose(se, [[0.1, w * 0.3 + (1 - w) * 0.1]])  # fully correlated: never below either
    with pytest.raises(InputError, match="positive"):
        combine_with_prior([[1.0]], [[0.0]], [[0.0]], [[0.1]])
    with pytest.raises(InputError, match="shape"):
        combine_with_prior([[1.0]], [[0.1]], [[0.0, 1.0]], [[0.1, 0.1]])


def test_a_network_that_knows_little_stays_at_the_prior_centre():
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, (100, 2, 4))
    calib = truth[None] + rng.normal(0, 1.0, (2, 100, 2, 4))  # members off by about 1
    prior = np.full((2, 4), 0.3)
    doc = ensemble_answer(np.zeros((2, 2, 4)), calib, truth, prior_beta=prior, prior_se=np.full((2, 4), 0.01))
    assert doc["combined"] and doc["M"] == 2 and doc["n_calib"] == 100
    np.testing.assert_allclose(doc["beta"], prior, atol=0.3 * 1e-3)
    assert np.all(np.array(doc["weight_network"]) < 1e-3)
    np.testing.assert_allclose(doc["se"], 0.01, rtol=0.1)
    alone = ensemble_answer(np.zeros((2, 2, 4)), calib, truth, combine=False)
    assert alone["beta"] == alone["beta_network"] and np.all(np.array(alone["weight_network"]) == 1)
    with pytest.raises(InputError, match="centre"):
        ensemble_answer(np.zeros((2, 2, 4)), calib, truth)


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match="do not agree"):
        network_errors(np.zeros((2, 2, 4)), np.zeros((3, 10, 2, 4)), np.zeros((10, 2, 4)))
    with pytest.raises(InputError, match="two calibration"):
        network_errors(np.zeros((2, 2, 4)), np.zeros((2, 1, 2, 4)), np.zeros((1, 2, 4)))

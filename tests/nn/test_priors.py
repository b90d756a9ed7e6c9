import hashlib

import numpy as np
import pytest
from scipy.stats import truncnorm

from sevi_lib.core.angular import min_density
from sevi_lib.core.errors import InputError
from sevi_lib.nn.priors import (
    SEED_BETA_HIGH,
    SEED_BETA_LOW,
    finetune_prior,
    pretrain_prior,
    sample,
)


@pytest.fixture(scope="module")
def pretrain_draw():
    return sample(pretrain_prior(), 400, np.random.default_rng(11))


def test_pretraining_samples_are_all_physical(pretrain_draw):
    d = pretrain_draw
    assert d.beta.shape == (400, 2, 12)
    assert min(min_density(b)[0] for b in d.beta.reshape(-1, 12)) >= -1e-12


def test_pretraining_ranges(pretrain_draw):
    d = pretrain_draw
    assert np.all(d.beta >= np.array(SEED_BETA_LOW)) and np.all(d.beta <= np.array(SEED_BETA_HIGH))
    assert np.all((d.R >= 0.3) & (d.R <= 0.9))
    assert np.all(d.R[:, 1] - d.R[:, 0] >= 0.05)
    assert np.all((d.sigma_R >= 0.005) & (d.sigma_R <= 0.0095))
    assert d.n_electrons.dtype == np.int64
    assert np.all((d.n_electrons >= 100000) & (d.n_electrons <= 140000))


def test_acceptance_rates(pretrain_draw):
    d = pretrain_draw
    # the seed team's independent truncated normals are unphysical for a few per cent of shells
    assert 0.8 < d.beta_acceptance < 1.0
    # P(|R1 - R0| >= 0.05) for two U(0.3, 0.9) radii = (1 - 0.05 / 0.6) ** 2 = 0.840
    p = (1 - 0.05 / 0.6) ** 2
    se = np.sqrt(p * (1 - p) / 400)
    assert abs(d.R_acceptance - p) < 6 * se + 0.02
    assert d.acceptance == pytest.approx(d.beta_acceptance**2 * d.R_acceptance)


def test_same_generator_state_same_draw():
    a = sample(pretrain_prior(), 30, np.random.default_rng(5))
    b = sample(pretrain_prior(), 30, np.random.default_rng(5))
    c = sample(pretrain_prior(), 30, np.random.default_rng(6))
    np.testing.assert_array_equal(a.beta, b.beta)
    np.testing.assert_array_equal(a.n_electrons, b.n_electrons)
    assert not np.array_equal(a.beta, c.beta)


def test_truncated_normal_moments_where_physicality_does_not_bind():
    # narrow prior around a comfortably physical centre: every draw is accepted, so each
    # coefficient follows its truncated normal exactly; compare means within 5 standard errors
    centre = np.array([[0.5, 0.2, 0.05, 0.0], [0.8, 0.3, 0.1, 0.02]])
    cfg = {"beta_width": [0.05, 0.04, 0.03, 0.01], "beta_truncate": 1.5, "R_width": 0.02}
    prior = finetune_prior([0.5, 0.8], centre, cfg)
    n = 3000
    d = sample(prior, n, np.random.default_rng(2))
    assert d.beta_acceptance == 1.0
    w = np.array(cfg["beta_width"])
    mean = truncnorm.mean(-1.5, 1.5, loc=centre, scale=w)
    sd = truncnorm.std(-1.5, 1.5, loc=centre, scale=w)
    assert np.all(np.abs(d.beta.mean(0) - mean) < 5 * sd / np.sqrt(n))
    assert np.all(np.abs(d.beta.std(0) - sd) < 5 * sd / np.sqrt(2 * n))
    assert np.all(np.abs(d.beta - centre) <= 1.5 * w + 1e-12)
    assert np.all(np.abs(d.R - [0.5, 0.8]) <= 0.02)


def test_finetune_prior_sorts_and_rejects_unphysical_centre():
    # an unphysical first-pass estimate (beta_2 = -0.6: I(+-1) = -0.1) still yields
    # physical samples: the prior is centred there, only the physical draws are kept
    centre = np.array([[0.9, 0.9, 0.3], [-0.6, 0.0, 0.0]])
    prior = finetune_prior([0.8, 0.5], centre, {"beta_width": 0.2, "R_width": 0.01})
    np.testing.assert_array_equal(prior.beta_mu[0], centre[1])  # sorted by radius
    d = sample(prior, 200, np.random.default_rng(0))
    assert d.beta_acceptance < 1.0
    assert min(min_density(b)[0] for b in d.beta.reshape(-1, 3)) >= -1e-12
    assert np.all(np.abs(d.R - [0.5, 0.8]) <= 0.01)


def test_finetune_electrons_from_map():
    prior = finetune_prior([0.5, 0.8], np.zeros((2, 12)), {"electrons": "map"}, map_total=200000)
    np.testing.assert_array_equal(prior.electrons_range, [[80000, 120000], [80000, 120000]])
    with pytest.raises(InputError, match="map"):
        finetune_prior([0.5, 0.8], np.zeros((2, 12)), {"electrons": "map"})


def test_lists_padded_and_cut_to_n_beta():
    p = pretrain_prior(n_beta=14)
    assert p.n_beta == 14 and np.all(p.beta_mu[:, 12:] == 0) and np.all(p.beta_sigma[:, 12:] == 0)
    d = sample(p, 5, np.random.default_rng(0))
    assert np.all(d.beta[:, :, 12:] == 0)
    assert pretrain_prior(n_beta=4).n_beta == 4


def test_bad_priors_raise():
    with pytest.raises(InputError, match="R"):
        pretrain_prior({"R": [0.3]})
    with pytest.raises(InputError, match="screen"):
        pretrain_prior({"R": [0.3, 0.99]})
    with pytest.raises(InputError, match="min_separation"):
        pretrain_prior({"R": [0.5, 0.52]})
    impossible = pretrain_prior({"beta_mu": [-3.0], "beta_sigma": [0.01], "beta_low": [-3.1], "beta_high": [-2.9]})
    with pytest.raises(InputError, match="acceptable"):
        sample(impossible, 2, np.random.default_rng(0))


def test_pretrain_electrons_from_map():
    p = pretrain_prior({"electrons": "map", "electrons_share": [0.3, 0.7]}, map_total=100000)
    np.testing.assert_array_equal(p.electrons_range, [[30000, 70000], [30000, 70000]])
    with pytest.raises(InputError, match="map"):
        pretrain_prior({"electrons": "map"})


# ----------------------------------------------------------------------------- issue 13: K shells

def test_finetune_prior_with_three_shells():
    beta = np.zeros((3, 12))
    beta[:, 0] = [0.5, 1.5, -0.4]
    prior = finetune_prior([0.8, 0.35, 0.6], beta, {"R_width": 0.02})
    assert prior.n_shells == 3 and prior.beta_mu.shape == (3, 12) and prior.R_range.shape == (3, 2)
    np.testing.assert_array_equal(prior.beta_mu[:, 0], [1.5, -0.4, 0.5])  # sorted by radius
    assert prior.min_separation == 0.05  # below half the closest gap (0.2 / 2)
    d = sample(prior, 60, np.random.default_rng(1))
    assert d.beta.shape == (60, 3, 12) and d.R.shape == d.sigma_R.shape == d.n_electrons.shape == (60, 3)
    assert np.all(np.abs(d.R - [0.35, 0.6, 0.8]) <= 0.02)
    assert np.all(np.diff(d.R, axis=1) >= 0.05)
    assert min(min_density(b)[0] for b in d.beta.reshape(-1, 12)) >= -1e-12
    assert d.acceptance == pytest.approx(d.beta_acceptance ** 3 * d.R_acceptance)
    close = finetune_prior([0.5, 0.53, 0.8], beta)  # 0.03 apart: separation halved to 0.015
    assert close.min_separation == pytest.approx(0.015)


def test_finetune_prior_with_one_shell():
    prior = finetune_prior([0.6], np.full((1, 4), 0.1), {"R_width": 0.01})
    d = sample(prior, 20, np.random.default_rng(2))
    assert prior.n_shells == 1 and d.beta.shape == (20, 1, 4) and d.R_acceptance == 1.0
    assert np.all(np.abs(d.R - 0.6) <= 0.01)


def test_finetune_prior_refuses_mismatched_or_empty_shells():
    with pytest.raises(InputError, match="K >= 1"):
        finetune_prior([0.4, 0.6, 0.8], np.zeros((2, 12)))
    with pytest.raises(InputError, match="K >= 1"):
        finetune_prior(np.zeros(0), np.zeros((0, 12)))


def test_map_electrons_are_shared_among_k_shells():
    """electrons_share is a shell's share of a two-shell map: K shells hold the same total."""
    three = finetune_prior([0.3, 0.5, 0.8], np.zeros((3, 12)), {"electrons": "map"}, map_total=300000)
    np.testing.assert_array_equal(three.electrons_range, [[80000, 120000]] * 3)
    two = finetune_prior([0.5, 0.8], np.zeros((2, 12)), {"electrons": "map"}, map_total=300000)
    np.testing.assert_array_equal(two.electrons_range, [[120000, 180000]] * 2)


def test_two_shell_finetune_draw_is_the_pre_issue_13_draw():
    """K = 2 is unchanged: digest of the same draw by the two-shell code (commit a65f7b0)."""
    beta = np.zeros((2, 12))
    beta[:, 0] = [0.5, -0.3]
    beta[:, 1] = [0.1, 0.2]
    d = sample(finetune_prior([0.8, 0.45], beta, {"electrons": [1000, 2000]}), 50, np.random.default_rng(5))
    h = hashlib.sha256()
    for a in (d.beta, d.R, d.sigma_R, d.n_electrons, np.array([d.beta_acceptance, d.R_acceptance])):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest() == "ac7139644ae5c0219d4a484e01fa2e12c168ceefdedd551144b57375734bb1df"


def test_finetune_prior_as_wide_as_the_first_pass_is_uncertain(tmp_path):
    """beta_width_se: each coefficient's width is that many of the fit's standard errors, row by
    row matched by R (the sidecar's rows in another order than the Answer's)."""
    import json

    from sevi_lib.core.io import write_answer
    from sevi_lib.nn.inputs import stage_prior
    from sevi_lib.nn.settings import SynthSettings

    beta = np.array([[0.9, 0.8, 0.5], [0.7, 0.6, 0.3]])
    se = np.array([[0.004, 0.006, 0.009], [0.005, 0.007, 0.010]])
    write_answer(tmp_path / "fit.h5", np.array([0.5, 0.8]), beta)
    side = {"R": [0.8, 0.5], "se_R": [1e-4, 1e-4], "sigma_R": [0.008, 0.007], "beta": beta[::-1].tolist(),
            "se_beta": se[::-1].tolist(), "centre": [0.0, 0.0]}
    (tmp_path / "fit.json").write_text(json.dumps(side))
    settings = SynthSettings(prior={"beta_width_se": 2.0, "electrons": [1000, 2000]}, n_beta=4)
    prior = stage_prior("finetune", settings, first_pass=tmp_path / "fit.h5", first_pass_se=tmp_path / "fit.json")
    np.testing.assert_allclose(prior.beta_sigma, np.pad(2 * se, ((0, 0), (0, 1))))
    np.testing.assert_allclose(prior.beta_high - prior.beta_mu, 3.0 * prior.beta_sigma)
    draw = sample(prior, 400, np.random.default_rng(0))
    np.testing.assert_allclose(draw.beta[:, :, :3].std(axis=0), 2 * se, rtol=0.2)
    with pytest.raises(InputError, match="standard errors"):
        stage_prior("finetune", settings, first_pass=tmp_path / "fit.h5")

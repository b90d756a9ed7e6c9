"""Tests of sevi_lib.simulate.electrons: exact sampler, shells, frame simulator, count map.

Statistical tests use fixed seeds and thresholds taken from the statistic's own distribution
(a false-alarm probability of 1e-6 per test), not tuned to the seed.
"""

import numpy as np
import pytest
from scipy import stats

from sevi_lib.core import angular as angular
from sevi_lib.core.errors import InputError, UnphysicalError
from sevi_lib.core.io import DETECTED_DTYPE, GENERATED_DTYPE
from sevi_lib.core.maps import count_map
from sevi_lib.core.shells import Shells
from sevi_lib.simulate.electrons import (
    concatenate_chunks,
    iter_frame_electrons,
    make_sampler,
    sample_c_into,
    sample_cos_theta,
    sample_shell,
    simulate_electrons,
)
from sevi_lib.simulate.settings import SimulationSettings

ALPHA = 1e-6  # false-alarm probability of each statistical test

PEAKED = np.array([1, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0, 0, 0.0])  # seed team's means
BETAS = {
    "peaked": PEAKED,
    "beta2_negative_zero_at_poles": np.array([-0.5]),  # I = 3/4 (1 - c^2)
    "zero_at_equator": np.array([1.0]),  # I = 3/2 c^2
    "beta2_negative_mixed": np.array([-0.4, 0.2, -0.05]),
    "isotropic": np.zeros(4),
}


def _p_values(c, beta, n_bins=200):
    """KS and chi-square (uniform c bins, exact bin probabilities) p-values."""
    ks = stats.kstest(c, lambda t: angular.cdf(t, beta)).pvalue
    edges = np.linspace(-1, 1, n_bins + 1)
    expected = np.diff(angular.cdf(edges, beta)) * len(c)
    observed = np.histogram(c, edges)[0]
    keep = expected > 0
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    return ks, stats.chi2.sf(chi2, keep.sum() - 1)


@pytest.mark.parametrize("name", sorted(BETAS))
def test_sampled_cos_theta_fit_density(name):
    beta = BETAS[name]
    angular.check_physical(beta)
    c = sample_cos_theta(beta, 200_000, seed=11)
    assert c.shape == (200_000,) and c.dtype == np.float64
    assert np.all((c >= -1) & (c <= 1))
    ks, chi2 = _p_values(c, beta)
    assert ks > ALPHA and chi2 > ALPHA, (ks, chi2)


@pytest.mark.parametrize("name", sorted(BETAS))
def test_inverse_cdf_to_machine_precision(name):
    beta = BETAS[name]
    rng = np.random.default_rng(5)
    u = np.concatenate([rng.random(20_000), [0.0, 1.0, 1e-300, 1e-17, 1 - 2**-53, 0.5, 0.25, 0.75],
                        np.linspace(0, 1, 1001)])
    c = np.empty_like(u)
    sample_c_into(u, c, make_sampler(beta))
    assert np.all((c >= -1) & (c <= 1))
    # F is evaluated with absolute rounding error of a few 1e-16; the root is found to that level
    assert np.max(np.abs(angular.cdf(c, beta) - u)) < 2e-15
    # monotone map
    order = np.argsort(u, kind="stable")
    assert np.all(np.diff(c[order]) >= 0)


def test_sampler_table_size_does_not_change_result():
    rng = np.random.default_rng(2)
    u = rng.random(5000)
    a, b = np.empty_like(u), np.empty_like(u)
    sample_c_into(u, a, make_sampler(PEAKED, 1024))
    sample_c_into(u, b, make_sampler(PEAKED, 16))
    np.testing.assert_allclose(a, b, rtol=0, atol=4e-15)


@pytest.mark.parametrize("beta", [PEAKED, np.array([-0.3, 0.1, 0.02, -0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])])
def test_legendre_moments_recover_beta(beta):
    # E[P_l(c)] = int I(c) P_l(c) dc = beta_l int P_l^2 = beta_l * 2 / (2l + 1)  (orthogonality)
    n = 1_000_000
    c = sample_cos_theta(beta, n, seed=2024)
    P = angular.legendre_even(c, 12)  # P_2 .. P_24
    ls = 2 * np.arange(1, 13)
    mean = P.mean(axis=0)
    se = P.std(axis=0, ddof=1) / np.sqrt(n)
    expected = beta * 2 / (2 * ls + 1)
    assert np.all(np.abs(mean - expected) < 5 * se), (mean - expected) / se
    # beta_l estimates themselves
    beta_hat = mean * (2 * ls + 1) / 2
    assert np.all(np.abs(beta_hat - beta) < 5 * se * (2 * ls + 1) / 2)


def test_unphysical_beta_rejected():
    with pytest.raises(UnphysicalError):
        sample_cos_theta([-1.0], 10, seed=0)


def test_sample_cos_theta_reproducible():
    a = sample_cos_theta(PEAKED, 1000, seed=4)
    assert np.array_equal(a, sample_cos_theta(PEAKED, 1000, seed=4))
    assert not np.array_equal(a, sample_cos_theta(PEAKED, 1000, seed=5))


def test_sample_shell_marginals_isotropic():
    # Projection of an isotropic thin shell: the 2D direction is uniform and rho/R = sqrt(1 - w^2)
    # with w = y/R ~ U(-1, 1), so P(rho <= t) = 1 - sqrt(1 - t^2/R^2).
    R = 0.6
    r, c, x, z = sample_shell(R, 0.0, np.zeros(3), 200_000, 7)
    assert np.all(r == R)
    rho = np.hypot(x, z)
    assert stats.kstest(rho, lambda t: 1 - np.sqrt(1 - np.clip(t / R, 0, 1) ** 2)).pvalue > ALPHA
    alpha = np.arctan2(x, z)
    assert stats.kstest(alpha, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > ALPHA


def test_sample_shell_marginals_peaked():
    R, sR = 0.5, 0.007
    r, c, x, z = sample_shell(R, sR, PEAKED, 200_000, 8)
    assert stats.kstest(r, stats.norm(R, sR).cdf).pvalue > ALPHA
    assert stats.kstest(c, lambda t: angular.cdf(t, PEAKED)).pvalue > ALPHA
    np.testing.assert_array_equal(z, r * c)
    s = np.sqrt(1 - c**2)
    ok = s > 1e-6
    cos_phi = np.clip(x[ok] / (r[ok] * s[ok]), -1, 1)
    # phi ~ U(0, 2 pi)  =>  cos(phi) has the arcsine law P(cos phi <= t) = 1 - arccos(t)/pi
    assert stats.kstest(cos_phi, lambda t: 1 - np.arccos(np.clip(t, -1, 1)) / np.pi).pvalue > ALPHA
    # z / R follows I(c) up to the radial spread: compare z / r exactly
    assert np.allclose(z / r, c)


def test_count_map_equals_histogram2d():
    rng = np.random.default_rng(3)
    edges = np.arange(1025) / 512 - 1
    x = np.concatenate([rng.uniform(-1.1, 1.1, 50_000), edges, np.nextafter(edges, -2), np.nextafter(edges, 2),
                        [np.nan, 1.0, -1.0, 0.0, -0.3, 0.3, 1e-17, -1e-17]])
    z = np.concatenate([rng.uniform(-1.1, 1.1, 50_000), edges[::-1], np.nextafter(edges, 2), edges,
                        [0.0, np.nan, 1.0, -1.0, -0.3, 0.3, -1e-17, 1e-17]])
    # values whose (u + 1) * 512 rounds across a bin edge
    tricky = np.nextafter(np.arange(1, 1024) / 512 - 1, -2)
    x = np.concatenate([x, tricky])
    z = np.concatenate([z, tricky[::-1]])
    ref = np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])[0]
    got = count_map(x, z)
    assert got.dtype == np.float64 and got.shape == (1024, 1024)
    np.testing.assert_array_equal(got, ref)
    out = np.ones((1024, 1024))
    assert count_map(x, z, out=out) is out
    np.testing.assert_array_equal(out, ref + 1)


# ---------------------------------------------------------------------------------- frames
SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [PEAKED, [-0.3, 0.05] + [0.0] * 10])


def _settings(n_frames, electrons_per_shell, **kw):
    return SimulationSettings(n_frames=n_frames, electrons_per_shell=electrons_per_shell, **kw)


def test_simulate_electrons_tables():
    out = simulate_electrons(SHELLS, _settings(400, [30, 20], detection_loss=0.1, seed=3))
    g, d = out.generated, out.detected
    assert g.dtype == GENERATED_DTYPE and d.dtype == DETECTED_DTYPE
    assert np.array_equal(g["ElectronId"], np.arange(len(g)))
    # Poisson counts per shell and frame: totals within 5 standard errors
    for j, mean in enumerate([30, 20]):
        n = np.sum(g["SphereId"] == j)
        assert abs(n - 400 * mean) < 5 * np.sqrt(400 * mean)
    # detection with probability 0.9 (binomial)
    p = len(d) / len(g)
    assert abs(p - 0.9) < 5 * np.sqrt(0.09 / len(g))
    # detected rows link to generated rows and are their projection
    gen = g[d["ElectronId"]]
    np.testing.assert_array_equal(d["z"], gen["r"] * gen["cos_theta"])
    assert np.all(d["x"] ** 2 + d["z"] ** 2 <= gen["r"] ** 2 * (1 + 1e-12))
    np.testing.assert_array_equal(out.detected_shell, gen["SphereId"])
    assert np.all(np.diff(d["ImageId"]) >= 0) and d["ImageId"].max() < 400
    # frame offsets index the detected table by frame
    counts = np.bincount(d["ImageId"], minlength=400)
    np.testing.assert_array_equal(np.diff(out.frame_offsets), counts)


def test_frame_chunks_do_not_change_result():
    full = simulate_electrons(SHELLS, _settings(50, [10, 10], seed=9))
    for chunk in (1, 7, 50):
        joined = concatenate_chunks(list(iter_frame_electrons(SHELLS, _settings(50, [10, 10], seed=9, chunk=chunk))))
        for field in full._fields:
            a, b = getattr(full, field), getattr(joined, field)
            assert np.array_equal(a, b), (chunk, field)
    other = simulate_electrons(SHELLS, _settings(50, [10, 10], seed=10))
    assert not np.array_equal(full.generated, other.generated)


def test_simulate_bad_arguments():
    with pytest.raises(InputError):
        simulate_electrons(SHELLS, _settings(10, [10, 10, 10]))
    with pytest.raises(InputError):
        simulate_electrons(SHELLS, _settings(10, [10, -1]))
    with pytest.raises(InputError):
        simulate_electrons(SHELLS, _settings(10, 10, detection_loss=1.5))
    with pytest.raises(InputError):
        simulate_electrons(SHELLS, _settings(10, 10, seed=-1))


def test_zero_frames_and_no_detection():
    empty = simulate_electrons(SHELLS, _settings(0, 10))
    assert len(empty.generated) == 0 and len(empty.frame_offsets) == 1
    none = simulate_electrons(SHELLS, _settings(5, 10, detection_loss=1.0))
    assert len(none.detected) == 0 and np.all(none.frame_offsets == 0)

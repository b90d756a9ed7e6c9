"""Accumulated camera images (sevi_lib.fit.dispersion): the quasi-likelihood binned fit.

An intensity image is simulated from true electron positions: each electron carries a gamma gain
of mean G counts and coefficient of variation CV into its pixel, and Gaussian read noise is
added to every pixel (dark-subtracted: negative values occur). Its dispersion is
phi = G (1 + CV^2).
"""

import numpy as np
import pytest

from sevi_lib.core.maps import count_map
from sevi_lib.fit.binned import fit_count_map
from sevi_lib.fit.dispersion import fit_intensity_map, is_intensity, pilot_dispersion, variance_fit
from sevi_lib.simulate.electrons import sample_shell

G, CV, READ = 50.0, 0.45, 30.0
PHI = G * (1.0 + CV ** 2)
BETA0 = np.r_[0.6, 0.2, 0.05, np.zeros(3)]
BETA1 = np.r_[-0.3, 0.05, np.zeros(4)]
SHELLS = [(0.5, 0.006, BETA0), (0.8, 0.008, BETA1)]
N_PER_SHELL = 40_000


def _electrons(n, seed):
    xs, zs = [], []
    for j, (R, s, beta) in enumerate(SHELLS):
        _, _, x, z = sample_shell(R, s, beta, n, seed * 10 + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


def intensity_image(x, z, seed, g=G, cv=CV, read=READ):
    """The electrons' pixels, each electron weighted by a gamma gain (mean g, cv), plus read noise."""
    rng = np.random.default_rng(seed)
    k = 1.0 / cv ** 2
    gain = rng.gamma(k, g / k, len(x))
    img = np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]], weights=gain)[0]
    return img + rng.normal(0.0, read, img.shape)


def _compound(mu, phi, g, cv, read, rng):
    """Pixels of mean mu (effective electrons) of a gamma-gain camera with read noise, divided by phi."""
    electrons = rng.poisson(mu * phi / g)
    k = 1.0 / cv ** 2
    summed = np.where(electrons > 0, rng.gamma(np.maximum(k * electrons, 1e-12), g / k), 0.0)
    return (summed + rng.normal(0.0, read, len(mu))) / phi


def test_variance_fit_recovers_phi_and_read_variance():
    rng = np.random.default_rng(0)
    mu = rng.exponential(0.5, 400_000)
    est = variance_fit(rng.poisson(mu).astype(float), mu)
    assert abs(est["phi"] - 1.0) < 4 * est["phi_se"] and est["phi_se"] < 0.02
    assert abs(est["read_variance"]) < 4 * est["read_variance_se"]
    y = _compound(mu, PHI, G, CV, READ, rng)  # in effective electrons: phi 1, read variance (READ / PHI)^2
    est = variance_fit(y * PHI, mu * PHI, mu_min=0.25 * PHI)
    assert abs(est["phi"] / PHI - 1.0) < 4 * est["phi_se"] / PHI
    assert abs(est["read_variance"] - READ ** 2) < 4 * est["read_variance_se"]


def test_is_intensity():
    counts = np.zeros((4, 4))
    counts[1, 2] = 3.0
    assert not is_intensity(counts) and not is_intensity(counts.astype(np.uint8))
    assert is_intensity(counts + 0.5)
    assert is_intensity(counts - 1.0) and is_intensity(counts.astype(np.int16) - 1)


def test_pilot_dispersion_of_an_image_and_a_count_map():
    x, z = _electrons(20_000, 4)
    assert abs(pilot_dispersion(intensity_image(x, z, 4)) / PHI - 1.0) < 0.3
    assert abs(pilot_dispersion(count_map(x, z)) - 1.0) < 0.3


def test_count_map_fit_is_unchanged(tmp_path):
    """An integer map is a count map: ``sevi fit``'s default fits it as before (the Poisson fit of
    the map itself, dispersion 1, no start level), bit for bit, and only adds the measured
    dispersion. (Checked against the code before the quasi-likelihood when it was added.)"""
    from sevi_lib.fit.files import fit_input
    from sevi_lib.fit.settings import FitSettings

    x, z = _electrons(4000, 3)
    cm = count_map(x, z)
    path = tmp_path / "counts.npy"
    np.save(path, cm)
    res, _, method = fit_input(path, FitSettings(n_beta=2, shells=2))
    ref = fit_count_map(cm, n_beta=2, n_shells=2, dispersion=1.0, level=0.0)
    assert method == "binned" and "quasi_likelihood" not in res.dispersion and res.dispersion["scale"] == 1.0
    for key in ("R", "sigma_R", "weights", "beta", "se_beta", "se_R", "cov", "centre", "centre_se"):
        assert np.array_equal(getattr(res, key), getattr(ref, key)), key


def test_count_map_dispersion_is_one():
    x, z = _electrons(N_PER_SHELL, 5)
    d = fit_count_map(count_map(x, z), n_beta=4, n_shells=2, centre="screen").dispersion
    assert abs(d["phi"] - 1.0) < 4 * d["phi_se"] and d["phi_se"] < 0.05, d


@pytest.fixture(scope="module")
def seeds():
    """Intensity fits of four simulated images (automatic shells) and Poisson fits of the same images."""
    out = []
    for seed in range(1, 5):
        x, z = _electrons(N_PER_SHELL, seed)
        img = intensity_image(x, z, seed)
        quasi = fit_intensity_map(img, n_beta=4, centre="screen")
        poisson = fit_count_map(img - img.min(), n_beta=4, n_shells=2, centre="screen", level=-img.min())
        out.append((quasi, poisson))
    return out


def _pulls(results):
    return np.array([(r.beta[j, k] - SHELLS[j][2][k]) / r.se_beta[j, k]
                     for r in results for j in range(2) for k in range(2)])


@pytest.mark.slow  # about 3 min on a shared 2-core machine
def test_intensity_pulls_have_unit_spread(seeds):
    """beta_2, beta_4 of both shells: pulls of sd about 1 with the quasi-likelihood, several times
    larger when the (offset) image is fitted as if it held Poisson counts: sqrt(phi) = 7.8 too
    small errors, partly hidden by the offset's pseudo-counts (3.4 at the recording)."""
    quasi = _pulls([q for q, _ in seeds])
    poisson = _pulls([p for _, p in seeds])
    assert 0.6 < np.sqrt(np.mean(quasi ** 2)) < 1.5, quasi
    assert np.sqrt(np.mean(poisson ** 2)) > 2.5, poisson
    for q, p in seeds:  # same point estimates (scale invariance), errors sqrt(phi)-ish apart
        np.testing.assert_allclose(q.beta[:, :2], p.beta[:, :2], atol=0.2 * q.se_beta[:, :2].max())


@pytest.mark.slow
def test_intensity_phi_and_shell_search(seeds):
    """phi within its error of G (1 + CV^2), the read noise found, two shells found (no more)."""
    for q, _ in seeds:
        d = q.dispersion
        assert d["quasi_likelihood"] and d["offset"] > 0
        assert abs(d["phi"] - PHI) < 4 * d["phi_se"], d
        assert abs(d["read_variance"] - READ ** 2) < 0.1 * READ ** 2, d
        assert q.shell_search["n_found"] == 2 and len(q.R) == 2
        np.testing.assert_allclose(q.R, [s[0] for s in SHELLS], atol=0.003)
        # weights in effective electrons: electrons / (1 + CV^2)
        np.testing.assert_allclose(q.weights, N_PER_SHELL / (1 + CV ** 2), rtol=0.1)
        assert abs(q.background) < 5 * q.background_se + 50

"""Tests of the shell fits (sevi_lib.fit: unbinned, binned, framesum, start, result).

The ``sevi fit`` command is tested in tests/cli/test_fit.py.
"""


import numpy as np
import pytest

from sevi_lib import fit
from sevi_lib.core.score import shell_distance
from sevi_lib.fit.result import known_c_floor
from sevi_lib.fit.start import initial_geometry
from sevi_lib.simulate.electrons import sample_shell

PEAKED = np.array([1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0])
SOFT = np.array([0.8, 0.6, 0.3, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
MILD0 = np.r_[0.6, 0.2, 0.05, np.zeros(9)]
MILD1 = np.r_[-0.3, 0.05, np.zeros(10)]


def _electrons(shells, n, seed):
    xs, zs = [], []
    for j, (R, s, beta) in enumerate(shells):
        _, _, x, z = sample_shell(R, s, np.asarray(beta, dtype=np.float64), n, seed * 10 + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


def _check(res, shells, n, k_se=4.0, k_floor=2.0):
    """R, sigma_R within k_se SE; distance <= k_floor * max(sqrt(6/n), the fit's known-c floor).

    sqrt(6/n) is the floor at isotropy; for anisotropic shells the known-cos(theta) floor is
    larger (1.3 x for the peaked shells of the original data), and the fit reports it.
    """
    for j, (R, s, beta) in enumerate(shells):
        assert abs(res.R[j] - R) < k_se * res.se_R[j], (j, res.R[j], R, res.se_R[j])
        assert abs(res.sigma_R[j] - s) < k_se * res.se_sigma_R[j], (j, res.sigma_R[j], s, res.se_sigma_R[j])
        d = shell_distance(res.beta[j], beta)
        floor = max(np.sqrt(6.0 / n), res.floor[j])
        assert d <= k_floor * floor, (j, d, np.sqrt(6.0 / n), res.floor[j])
        assert res.min_density[j] >= -1e-9
    assert res.converged


@pytest.fixture(scope="module")
def realistic():
    shells = [(0.5, 0.006, PEAKED), (0.8, 0.008, SOFT)]
    n = 200_000
    x, z = _electrons(shells, n, 2)
    return shells, n, x, z, fit.fit_electrons(x, z)


@pytest.mark.slow  # 25 s on a shared 2-core machine
def test_unbinned_200k_per_shell_within_errors_and_floor(realistic):
    """Peaked shells like the original data's: distance within 2 x the known-cos(theta) floor."""
    shells, n, _, _, res = realistic
    _check(res, shells, n)
    assert np.allclose(res.weights, n, rtol=5 * np.sqrt(1.0 / n) + 1e-3)
    # the fit's own expected distance is close to the known-cos(theta) floor
    assert np.all(res.expected_distance < 1.4 * res.floor)


@pytest.mark.slow  # 20 s on a shared 2-core machine
def test_unbinned_200k_mild_shells_within_2_sqrt_6_over_n():
    """Mildly anisotropic shells (floor close to sqrt(6/n)): distance <= 2 sqrt(6/n) literally."""
    shells = [(0.5, 0.006, MILD0), (0.8, 0.008, MILD1)]
    n = 200_000
    x, z = _electrons(shells, n, 11)
    res = fit.fit_electrons(x, z)
    _check(res, shells, n)
    for j in range(2):
        assert shell_distance(res.beta[j], shells[j][2]) <= 2 * np.sqrt(6.0 / n)


@pytest.mark.slow  # 30 s on a shared 2-core machine
def test_binned_agrees_with_unbinned(realistic):
    shells, n, x, z, res = realistic
    img, _, _ = np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])
    b = fit.fit_count_map(img)
    _check(b, shells, n)
    assert np.all(np.abs(b.R - res.R) < 0.5 * res.se_R)
    assert np.all(np.abs(b.beta[:, :2] - res.beta[:, :2]) < 0.5 * res.se_beta[:, :2])
    assert np.all(b.se_beta[:, 0] < 1.1 * res.se_beta[:, 0])


@pytest.mark.slow  # about 5 min on a shared 2-core machine
def test_pulls_over_seeds():
    """Pulls of beta_2, beta_4 and R of both shells (N = 2 orders fitted, 10k electrons per shell).

    The issue asks for at least 20 seeds; with 20 the standard error of a pull mean is 0.22, so
    |mean| < 0.3 would fail by chance for one of six quantities about half the time. 100 seeds
    make the thresholds (|mean| < 0.3, SD in 0.7-1.3) three-sigma tests.
    """
    shells = [(0.5, 0.006, np.array([0.8, 0.3])), (0.8, 0.008, np.array([-0.3, 0.1]))]
    n = 10_000
    pulls = []
    for seed in range(100):
        x, z = _electrons(shells, n, 100 + seed)
        r = fit.fit_electrons(x, z, n_beta=2)
        row = []
        for j, (R, s, beta) in enumerate(shells):
            row += [(r.beta[j, 0] - beta[0]) / r.se_beta[j, 0], (r.beta[j, 1] - beta[1]) / r.se_beta[j, 1],
                    (r.R[j] - R) / r.se_R[j]]
        pulls.append(row)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.3 + 0.0), pulls.mean(axis=0)
    sd = pulls.std(axis=0, ddof=1)
    assert np.all((sd > 0.7) & (sd < 1.3)), sd


def test_negative_beta2_and_active_constraint():
    shells = [(0.45, 0.007, np.r_[-0.4, 0.05, np.zeros(10)]), (0.75, 0.007, np.r_[-0.5, np.zeros(11)])]
    n = 60_000
    x, z = _electrons(shells, n, 3)
    r = fit.fit_electrons(x, z)
    _check(r, shells, n)
    assert r.beta[0, 0] < 0 and r.beta[1, 0] < 0
    # I = 3/4 (1 - c^2) touches zero at the poles: the fit keeps it physical and says so
    assert r.constraint_active[1]
    assert r.min_density[1] >= -1e-9


def test_nearly_isotropic_shells():
    shells = [(0.5, 0.006, np.r_[0.02, np.zeros(11)]), (0.8, 0.008, np.zeros(12))]
    n = 60_000
    x, z = _electrons(shells, n, 4)
    r = fit.fit_electrons(x, z)
    _check(r, shells, n)


def test_close_radii():
    shells = [(0.6, 0.006, PEAKED), (0.65, 0.007, SOFT)]
    n = 60_000
    x, z = _electrons(shells, n, 5)
    r = fit.fit_electrons(x, z)
    _check(r, shells, n)


@pytest.mark.slow  # 1 min on a shared 2-core machine
def test_frame_sum_fit_recovers_shells():
    from sevi_lib.simulate import render

    shells = [(0.5, 0.006, PEAKED[:4]), (0.8, 0.008, SOFT[:4])]
    n = 30_000
    x, z = _electrons(shells, n, 6)
    perm = np.random.default_rng(0).permutation(len(x))
    x, z = x[perm], z[perm]
    A, sig, rho = render.draw_spot_params(len(x), 1)
    total = np.zeros((1024, 1024))
    frame = np.empty((1024, 1024), np.uint8)
    for k in range(0, len(x), 80):
        sl = slice(k, k + 80)
        total += render.render_frame(x[sl], z[sl], A[sl], sig[sl], rho[sl], out=frame)
    kernel = fit.mean_spot(10_000)
    r = fit.fit_frame_sum(total, kernel, n_beta=4, n_reweight=1)
    _check(r, [(R, s, b) for R, s, b in shells], n, k_se=5.0)
    assert np.allclose(r.weights, n, rtol=0.02)


def test_initial_geometry_finds_both_peaks():
    shells = [(0.5, 0.006, PEAKED), (0.55, 0.006, SOFT)]
    x, z = _electrons(shells, 20_000, 8)
    R, _ = initial_geometry(np.hypot(x, z))
    assert np.all(np.abs(R - [0.5, 0.55]) < 0.005)


def test_known_c_floor_is_sqrt_6_over_n_at_isotropy():
    assert abs(known_c_floor(np.zeros(12), 1e6) - np.sqrt(6e-6)) < 1e-12

"""Tests of the projected shell model (sevi_lib.fit.projection)."""

import numpy as np
import pytest
from numpy.polynomial import legendre as npleg
from scipy import stats

from sevi_lib.fit import projection
from sevi_lib.simulate.electrons import sample_shell

PEAKED = np.array([1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0])


def _leg(c, l):
    return npleg.legval(c, np.eye(l + 1)[l])


def test_separation_reconstructs_legendre_of_product():
    n = 12
    d = projection.separation_coefficients(n)
    rng = np.random.default_rng(0)
    q, c = rng.uniform(0, 1, 50), rng.uniform(-1, 1, 50)
    pm = np.stack([_leg(c, 2 * m) for m in range(n + 1)], axis=-1)
    pk = np.stack([_leg(q, 2 * k) for k in range(n + 1)], axis=-1)
    rhs = np.einsum("lmk,im,ik->il", d, pm, pk)
    lhs = np.stack([_leg(q * c, 2 * l) for l in range(n + 1)], axis=-1)
    assert np.abs(lhs - rhs).max() < 1e-12
    assert np.abs(d).max() <= 1.0 + 1e-12


@pytest.mark.parametrize("R, s", [(0.5, 0.006), (0.3, 0.0095), (0.9, 0.0055)])
def test_basis_integrates_to_two_and_zero(R, s):
    n = 12
    rho = np.linspace(0, R + 10 * s, 40001)
    g = projection.radial_functions(rho, R, s, n)[0]
    a = np.linspace(0, 2 * np.pi, 2049)[:-1]
    pa = np.stack([_leg(np.cos(a), 2 * m) for m in range(n + 1)]).mean(axis=1) * 2 * np.pi
    radial = np.einsum("ilm,m->il", g, pa) * rho[:, None]
    total = np.trapezoid(radial, rho, axis=0)
    assert abs(total[0] - 2.0) < 1e-5
    assert np.abs(total[1:]).max() < 1e-5


@pytest.mark.parametrize("beta", [PEAKED, np.r_[-0.45, 0.1, np.zeros(10)], np.zeros(12)])
def test_density_matches_monte_carlo(beta):
    R, s, n_el = 0.5, 0.006, 400_000
    _, _, x, z = sample_shell(R, s, beta, n_el, 7)
    bins = np.linspace(-0.52, 0.52, 105)
    hist, _, _ = np.histogram2d(x, z, bins=[bins, bins])
    g, w = npleg.leggauss(3)
    cen = 0.5 * (bins[1:] + bins[:-1])
    hw = 0.5 * (bins[1] - bins[0])
    nodes = cen[:, None] + hw * g[None, :]
    xx = np.broadcast_to(nodes[:, None, :, None], (len(cen), len(cen), 3, 3))
    zz = np.broadcast_to(nodes[None, :, None, :], (len(cen), len(cen), 3, 3))
    dens = projection.projected_density(xx, zz, R, s, beta)
    mu = (dens * w[None, None, :, None] * w[None, None, None, :]).sum(axis=(2, 3)) * hw * hw * n_el
    sel = mu > 20
    chi2 = np.sum((hist[sel] - mu[sel]) ** 2 / mu[sel])
    dof = int(sel.sum())
    # Pearson chi^2 against the exact model: reject only at the 1e-4 level
    assert chi2 < stats.chi2.ppf(1 - 1e-4, dof), (chi2, dof)
    # the region holds (nearly) every electron: the model integrates to 1
    assert abs(mu.sum() / n_el - 1.0) < 1e-4


def test_derivatives_match_finite_differences():
    R, s, n = 0.6, 0.007, 6
    rho = np.linspace(0.3, 0.65, 57)
    m = projection.radial_moments(rho, R, s, n, derivatives=2)
    eps_r, eps_s = 1e-7, 1e-8
    dR = (projection.radial_moments(rho, R + eps_r, s, n) - projection.radial_moments(rho, R - eps_r, s, n))[0] / (2 * eps_r)
    ds = (projection.radial_moments(rho, R, s + eps_s, n) - projection.radial_moments(rho, R, s - eps_s, n))[0] / (2 * eps_s)
    scale = np.abs(m[1]).max()
    assert np.abs(m[1] - dR).max() < 1e-5 * scale
    assert np.abs(m[2] - ds).max() < 1e-5 * np.abs(m[2]).max()
    d1 = projection.radial_moments(rho, R + eps_r, s, n, 1)[1:] - projection.radial_moments(rho, R - eps_r, s, n, 1)[1:]
    assert np.abs(m[3] - d1[0] / (2 * eps_r)).max() < 1e-4 * np.abs(m[3]).max()
    assert np.abs(m[4] - d1[1] / (2 * eps_r)).max() < 1e-4 * np.abs(m[4]).max()


def test_spline_table_matches_exact_evaluation():
    R, s, n, h = 0.5, 0.006, 12, 0.006 / 24
    full, cont = projection.radial_spline(R, s, n, h, 0.6, derivatives=0, contract=np.r_[0.5, PEAKED],
                                          contract_derivatives=1)
    rho = np.random.default_rng(1).uniform(0, 0.58, 2000)
    i = (rho / h).astype(int)
    t = rho - i * h
    c = full[i]
    val = ((c[:, 0] * t[:, None] + c[:, 1]) * t[:, None] + c[:, 2]) * t[:, None] + c[:, 3]
    li, mi = projection.pair_index(n)
    exact = projection.radial_functions(rho, R, s, n)[0][:, li, mi]
    assert np.abs(val - exact).max() < 1e-5 * np.abs(exact).max()
    assert cont.shape[-1] == 3 * (n + 1)


def test_density_is_finite_at_centre_and_zero_outside():
    d = projection.projected_density(np.array([0.0, 0.0, 0.7]), np.array([0.0, 1e-9, 0.0]), 0.5, 0.006, PEAKED)
    assert np.all(np.isfinite(d)) and d[0] > 0 and abs(d[0] - d[1]) < 1e-9 * d[0]
    assert d[2] == 0.0

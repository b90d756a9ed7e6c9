"""Many-shell spectra: the shell search on a vibrational progression of eight shells.

Close pairs 0.03 apart at sigma_R = 0.006 (five widths), intensities within a factor of five,
anisotropies from beta_2 = -0.4 to 1 (this project's normalisation). True electron positions
from the sampler (no frames), a few seeds.
"""

import numpy as np
import pytest

from sevi_lib.fit.search import find_shells
from sevi_lib.simulate.electrons import sample_shell

SIGMA = 0.006
RADII = np.array([0.30, 0.33, 0.42, 0.50, 0.53, 0.64, 0.74, 0.77])
COUNTS = np.array([25_000, 5_000, 12_000, 8_000, 25_000, 6_000, 15_000, 5_000])
BETAS = [np.r_[1.0, 0.4, 0.1], np.r_[-0.4, 0.05, 0.0], np.r_[0.5, 0.0, 0.0], np.r_[0.0, 0.0, 0.0],
         np.r_[0.8, 0.3, 0.05], np.r_[-0.3, 0.0, 0.0], np.r_[0.6, 0.2, 0.0], np.r_[0.2, 0.0, 0.0]]


def progression(seed, counts=COUNTS):
    xs, zs = [], []
    for j, (R, n, beta) in enumerate(zip(RADII, counts, BETAS)):
        _, _, x, z = sample_shell(R, SIGMA, beta, int(n), seed * 100 + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


@pytest.mark.xfail(reason="not solved yet: the side-band test misses a weak shell five widths beside a strong "
                   "one (its side band holds the neighbour's edge); finds 5-7 of the 8", strict=False)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_finds_eight_shells_with_close_pairs(seed):
    x, z = progression(seed)
    found = find_shells(np.hypot(x, z))
    R = np.array([p["R"] for p in found.peaks])
    assert found.n_found == len(RADII), (R, found.rejected)
    assert np.all(np.abs(R - RADII) < 2 * SIGMA), R


def test_value_and_fisher_paths_agree_with_the_jacobian():
    """The contracted-table value and the chunked BLAS Fisher matrix equal the per-group reference.

    Reference: mu = J a (from ``PointSet.jacobian``) and sum_g c_g J_g J_g^T / mu_g^2, the old
    kernel's arithmetic; tolerance 1e-12 relative (rounding only, 10 shells, N = 6).
    """
    from sevi_lib.fit import _kernels
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import CHUNK, PointSet

    x, z = progression(4, COUNTS // 10)
    n, S = 6, len(RADII)
    a = np.zeros((S, n + 1))
    a[:, 0] = COUNTS / 20.0
    a[:, 1] = 0.2 * a[:, 0]
    theta = ParamLayout(S, n).pack(a, RADII, np.full(S, SIGMA), 3.0)
    pts = PointSet(x, z, 1, np.ones(len(x)), n, SIGMA / 24, None)
    assert pts.n_groups > CHUNK  # several chunks
    counts = np.random.default_rng(0).poisson(1.0, len(x)).astype(np.float64)
    J = pts.jacobian(theta, S)
    amp = np.ones(len(theta), dtype=bool)
    amp[[ParamLayout(S, n).R(j) for j in range(S)] + [ParamLayout(S, n).sigma(j) for j in range(S)]] = False
    mu_ref = J[:, amp] @ theta[amp]
    mu = np.empty(len(x))
    ll, _, _ = pts.loglike(theta, counts, S, want=0, mu_out=mu)
    assert np.allclose(mu, mu_ref, rtol=1e-12, atol=0)
    ll2, grad, hess = pts.loglike(theta, counts, S, want=2)
    ws = pts.workspace(theta, S)
    P = len(theta)
    g_old, h_old = np.zeros(P), np.zeros((P, P))
    ll_old = _kernels.loglike_kernel(ws, counts, theta, 2, g_old, h_old, np.empty(0))
    # same per-group arithmetic; the chunks' partial sums change only the rounding
    assert abs(ll2 - ll_old) < 1e-13 * abs(ll_old)
    assert np.allclose(grad, g_old, rtol=1e-12, atol=1e-12 * np.abs(g_old).max())
    assert abs(ll - ll_old) < 1e-12 * abs(ll_old)
    assert np.allclose(hess, h_old, rtol=1e-12, atol=1e-12 * np.abs(h_old).max())

"""Many-shell spectra: the fit's kernels on the eight-shell progression (``conftest.progression``)."""

import numpy as np


def test_value_and_fisher_paths_agree_with_the_jacobian(progression):
    """The contracted-table value and the chunked BLAS Fisher matrix equal the per-group reference.

    Reference: mu = J a (from ``PointSet.jacobian``) and sum_g c_g J_g J_g^T / mu_g^2, the old
    kernel's arithmetic; tolerance 1e-12 relative (rounding only, 10 shells, N = 6).
    """
    from sevi_lib.fit import _kernels
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import CHUNK, PointSet

    RADII, SIGMA, COUNTS = progression.radii, progression.sigma, progression.counts
    x, z = progression.sample(4, COUNTS // 10)
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

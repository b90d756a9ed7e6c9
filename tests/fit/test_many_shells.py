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


def test_tables_end_at_the_shell_edge_and_equal_the_whole_range_splines():
    """The workspace's tables (moments splined up to R + 9 sigma, combined) against
    :func:`projection.radial_spline` over the whole radius range: the same spline values at every
    cell the kernels read (``<= imax``), to 1e-12 of each column's largest value (rounding)."""
    from sevi_lib.fit import projection
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import PointSet

    n, S, h = 4, 2, 0.006 / 24
    R, s = np.array([0.3, 0.55]), np.array([0.006, 0.008])
    a = np.array([[100.0, 20.0, -5.0, 1.0, 0.5], [50.0, -10.0, 4.0, 0.0, 0.2]])
    theta = ParamLayout(S, n).pack(a, R, s, 2.0)
    x = np.linspace(0.0, 0.7, 50)
    pts = PointSet(x, np.zeros_like(x), 1, np.ones(len(x)), n, h, None)
    t = np.array([0.0, 0.37 * h, h])
    for second in (False, True):
        ws = pts.workspace(theta, S, second=second)
        for j in range(S):
            full, cont = projection.radial_spline(R[j], s[j], n, h, pts.rho_max, derivatives=1 if second else 0,
                                                  contract=a[j], contract_derivatives=2 if second else 1)
            cells = ws.imax[j] + 1
            assert (R[j] + projection.WINDOW * s[j]) / h <= ws.imax[j] < cells <= ws.full.shape[1]
            for old, new in ((full, ws.full[j]), (cont, ws.cont[j])):
                v_old = sum(old[:cells, q, None, :] * t[None, :, None] ** (3 - q) for q in range(4))
                v_new = sum(new[:cells, q, None, :] * t[None, :, None] ** (3 - q) for q in range(4))
                scale = np.abs(v_old).max(axis=(0, 1))
                assert np.all(np.abs(v_new - v_old) <= 1e-12 * scale + 1e-300)

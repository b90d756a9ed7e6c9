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


def test_tables_end_at_the_shell_edge_and_match_the_exact_basis():
    """The workspace's tables (moments splined up to R + 9 sigma, the fine step only near the rim,
    rows of several cells inside; combined) at random radii against the exact basis and its
    derivatives (quadrature, :func:`projection.radial_functions`; second derivatives where asked
    for): within 1e-6 of each column's
    largest value, every column, value and derivative slots (the fine step's own error near the rim is
    about 3e-7); cells beyond ``imax`` are never read."""
    from sevi_lib.fit import projection
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import PointSet

    n, S, h = 12, 3, 0.006 / 24
    R, s = np.array([0.3, 0.55, 0.9]), np.array([0.006, 0.008, 0.006])
    a = np.zeros((S, n + 1))
    a[:, :5] = [[100.0, 20.0, -5.0, 1.0, 0.5], [50.0, -10.0, 4.0, 0.0, 0.2], [80.0, 40.0, 10.0, 2.0, 1.0]]
    a[:, 12] = 0.3
    theta = ParamLayout(S, n).pack(a, R, s, 2.0)
    x = np.linspace(0.0, 0.99, 50)
    pts = PointSet(x, np.zeros_like(x), 1, np.ones(len(x)), n, h, None)
    rho = np.random.default_rng(3).uniform(0.0, 0.98, 4000)
    li, mi = projection.pair_index(n)
    for second, curvature in ((False, False), (False, True), (True, False)):
        ws = pts.workspace(theta, S, second=second, curvature=curvature)
        for j in range(S):
            assert (R[j] + projection.WINDOW * s[j]) / h <= ws.imax[j]
            assert ws.shift[j] >= 1 and ws.fine[j] * h < R[j] - 9 * s[j]  # rows of several cells inside
            nd = 3 if second else 1
            G = projection.radial_functions(rho, R[j], s[j], n, derivatives=2)  # (6, i, l, m)
            exact_full = G[:nd, :, li, mi]  # (slot, i, pair)
            exact_cont = np.einsum("dilm,l->dim", G, a[j])[:6 if second or curvature else 3]  # (slot, i, m)
            i = (rho / h).astype(np.int64)
            inside = i <= ws.imax[j]
            f, p = ws.fine[j], ws.shift[j]
            row = np.where(i >= f, (f >> p) + i - f, i >> p)
            t = np.where(i >= f, rho - i * h, rho - (i >> p) * (h * 2 ** p))
            for tab, exact in ((ws.full[j], exact_full), (ws.cont[j], exact_cont)):
                c = tab[row[inside]]  # (i, power, columns)
                tt = t[inside][:, None]
                v = ((c[:, 0] * tt + c[:, 1]) * tt + c[:, 2]) * tt + c[:, 3]
                ex = np.moveaxis(exact[:, inside], 0, 1).reshape(v.shape)
                scale = np.abs(ex).max(axis=0)
                assert np.all(np.abs(v - ex) <= 1e-6 * scale + 1e-300), np.max(np.abs(v - ex) / scale)
            assert np.all(exact_cont[:, ~inside] == 0.0)  # beyond the edge: zero, not read


def test_geometry_curvature_of_the_score_pass_equals_the_curvature_kernel(progression):
    """``loglike(want=2, geometry_curvature=)`` (chunked, the shells that reach each chunk) against
    the (R, sigma) entries of :meth:`PointSet.curvature` (every group, every shell) with the same
    weights c / mu: equal to 1e-10 of the largest entry (rounding of the two summation orders);
    and the Newton matrix built from it is the observed information's geometry block, positive
    definite here, the Fisher matrix where that is not."""
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.optimise import newton_matrix
    from sevi_lib.fit.points import CHUNK, PointSet

    x, z = progression.sample(7, progression.counts // 10)
    o = np.argsort(np.hypot(x, z))
    x, z = x[o], z[o]
    n, S = 4, len(progression.radii)
    layout = ParamLayout(S, n)
    a = np.zeros((S, n + 1))
    a[:, 0] = progression.counts / 20.0
    a[:, 1] = 0.2 * a[:, 0]
    # widths 0.7 of the truth: electrons in the shells' tails, where the Fisher matrix overstates
    theta = layout.pack(a, progression.radii + 0.001, np.full(S, 0.7 * progression.sigma), 3.0)
    pts = PointSet(x, z, 1, np.ones(len(x)), n, progression.sigma / 24, None)
    assert pts.n_groups > CHUNK
    counts = np.ones(len(x))
    geo = np.empty((S, 3))
    _, _, H = pts.loglike(theta, counts, S, want=2, geometry_curvature=geo)
    mu = np.empty(len(x))
    pts.loglike(theta, counts, S, want=0, mu_out=mu)
    Q = pts.curvature(theta, counts / mu, S)
    ref = np.array([[Q[layout.R(j), layout.R(j)], Q[layout.R(j), layout.sigma(j)], Q[layout.sigma(j), layout.sigma(j)]]
                    for j in range(S)])
    assert np.all(np.abs(geo - ref) <= 1e-10 * np.abs(ref).max())
    M = newton_matrix(H, geo, layout)
    geo_idx = [layout.R(j) for j in range(S)] + [layout.sigma(j) for j in range(S)]
    keep = np.zeros(len(theta), dtype=bool)
    keep[geo_idx] = True
    block = keep[:, None] & keep[None, :]
    same_shell = np.zeros_like(block)
    for j in range(S):
        for p in (layout.R(j), layout.sigma(j)):
            for q in (layout.R(j), layout.sigma(j)):
                same_shell[p, q] = True
    assert np.array_equal(M[~same_shell], H[~same_shell])
    assert np.allclose(M[same_shell], (H - Q)[same_shell], rtol=1e-9, atol=1e-10 * np.abs(Q).max())
    assert np.any(M[same_shell] < 0.5 * H[same_shell])  # the tails' overstatement, corrected
    np.linalg.cholesky(M)
    assert newton_matrix(H, geo + 10 * np.abs(H).max(), layout) is H  # not positive definite: Fisher


def test_summed_value_table_gives_the_shells_value(progression):
    """The value-only workspace's one table of all shells summed per cell (coarse rows re-expanded
    about every cell) gives the same log-likelihood and mu_g as the shells' own tables, to 1e-13
    relative (rounding of the re-expansion and of the sum's order), 2 and 8 shells, rows of several
    cells inside included."""
    from sevi_lib.fit import _kernels
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import PointSet

    rng = np.random.default_rng(5)
    for R in (progression.radii[[2, 6]], progression.radii):
        S, n = len(R), 4
        a = np.zeros((S, n + 1))
        a[:, 0] = rng.uniform(1e3, 5e3, S)
        a[:, 1] = 0.3 * a[:, 0]
        a[:, 2] = -0.05 * a[:, 0]
        theta = ParamLayout(S, n).pack(a, R, np.full(S, 0.006), 50.0)
        rho = np.sort(rng.uniform(0.0, 0.95, 20_000))
        phi = rng.uniform(0, 2 * np.pi, len(rho))
        pts = PointSet(rho * np.cos(phi), rho * np.sin(phi), 1, np.ones(len(rho)), n, 0.006 / 24)
        counts = rng.poisson(2.0, len(rho)).astype(float)
        ws = pts.workspace(theta, S, value_only=True)
        assert ws.total.shape[0] == ws.imax.max() + 1 and np.any(ws.shift > 0)
        mu, mu_ref = np.empty(len(rho)), np.empty(len(rho))
        v = _kernels.value_kernel(ws, counts, theta, mu, 4096)
        v_ref = _kernels.value_kernel(ws._replace(total=ws.total[:0]), counts, theta, mu_ref, 4096)
        assert abs(v - v_ref) <= 1e-13 * abs(v_ref)
        assert np.all(np.abs(mu - mu_ref) <= 1e-13 * np.abs(mu_ref))


def _progression_theta(progression, n, counts_scale=20.0, sigma_factor=1.0):
    from sevi_lib.fit.layout import ParamLayout

    S = len(progression.radii)
    a = np.zeros((S, n + 1))
    a[:, 0] = progression.counts / counts_scale
    a[:, 1] = 0.2 * a[:, 0]
    return ParamLayout(S, n).pack(a, progression.radii + 0.001, np.full(S, sigma_factor * progression.sigma), 3.0)


def test_score_pass_equals_the_per_group_reference(progression, monkeypatch):
    """The score pass (``loglike(want=1)``, and ``want=2`` with a sampled Fisher matrix:
    :func:`~sevi_lib.fit._kernels.score_kernel`, the tables contracted with per-cell sums, coarse
    rows re-expanded) against the per-group reference kernel (every group's Jacobian row, every
    shell): value and gradient to 1e-12 of the largest entry, for electrons and for pixels (2 x 2
    nodes each, scale per group); its geometry curvature against the curvature kernel's (R, sigma)
    entries; the sampled Fisher matrix is k times that of every k-th group."""
    from sevi_lib.core.maps import count_map
    from sevi_lib.fit import _kernels, points
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import CHUNK, PointSet, pixel_nodes

    x, z = progression.sample(8, progression.counts // 10)
    o = np.argsort(np.hypot(x, z))
    x, z = x[o], z[o]
    n, S = 4, len(progression.radii)
    layout = ParamLayout(S, n)
    theta = _progression_theta(progression, n, sigma_factor=0.8)
    img = count_map(x, z)
    ix, iz = np.nonzero(img)
    q = np.argsort(np.hypot(ix - 511.5, iz - 511.5))
    ix, iz = ix[q], iz[q]
    px, pz = pixel_nodes(ix, iz)
    cases = {"electrons": (PointSet(x, z, 1, np.ones(len(x)), n, progression.sigma / 24, None),
                           np.random.default_rng(2).poisson(1.0, len(x)).astype(np.float64)),
             "pixels": (PointSet(px, pz, 4, np.full(len(ix), (1 / 512) ** 2 / 4), n, progression.sigma / 24, None),
                        img[ix, iz].astype(np.float64))}
    for name, (pts, counts) in cases.items():
        assert pts.n_groups > CHUNK, name  # several chunks
        ws = pts.workspace(theta, S, curvature=True)
        P = len(theta)
        g_ref, h_ref = np.zeros(P), np.zeros((P, P))
        ll_ref = _kernels.loglike_kernel(ws, counts, theta, 2, g_ref, h_ref, np.empty(0))
        ll, g, _ = pts.loglike(theta, counts, S, want=1)
        assert abs(ll - ll_ref) < 1e-12 * abs(ll_ref), name
        assert np.all(np.abs(g - g_ref) <= 1e-12 * np.abs(g_ref).max()), name
        # the sampled path: every k-th group's Fisher matrix, the score pass's value, gradient, curvature
        monkeypatch.setattr(points, "FISHER_GROUPS", pts.n_groups // 7)
        k = pts.fisher_every()
        assert k == 7
        geo = np.empty((S, 3))
        ll2, g2, H = pts.loglike(theta, counts, S, want=2, geometry_curvature=geo)
        assert ll2 == ll and np.array_equal(g2, g)
        mu = np.empty(pts.n_groups)
        pts.loglike(theta, counts, S, want=0, mu_out=mu)
        Q = pts.curvature(theta, counts / mu, S)
        ref = np.array([[Q[layout.R(j), layout.R(j)], Q[layout.R(j), layout.sigma(j)],
                         Q[layout.sigma(j), layout.sigma(j)]] for j in range(S)])
        assert np.all(np.abs(geo - ref) <= 1e-10 * np.abs(ref).max()), name
        every = np.arange(0, pts.n_groups, k)
        nodes = (every[:, None] * pts.K + np.arange(pts.K)).ravel()
        sub = PointSet(pts.x[nodes], pts.z[nodes], pts.K, pts.scale[every], n, pts.h, pts.rho_max)
        H_sub = sub.loglike(theta, counts[every], S, want=2)[2]
        assert np.allclose(H, k * H_sub, rtol=1e-12, atol=1e-12 * np.abs(H).max()), name
        _, _, H_exact = pts.loglike(theta, counts, S, want=2, exact=True)
        assert np.allclose(H_exact, h_ref, rtol=1e-12, atol=1e-12 * np.abs(h_ref).max()), name
        monkeypatch.undo()


def test_fit_with_a_sampled_fisher_matrix_reaches_the_same_maximum(progression, monkeypatch):
    """The unbinned fit of the eight-shell progression with the iterations' Fisher matrix from every
    k-th electron (k = 8) and from every electron: the same maximum (the gradient, which takes every
    electron, defines it): every parameter within 0.02 of its standard error (each fit stops within
    a decrement g.d of 1e-4 of it: about sqrt(2e-4) = 0.014 standard errors), and the same standard
    errors to 1e-3 (both from the exact matrix at the end)."""
    from sevi_lib import fit
    from sevi_lib.fit import points

    x, z = progression.sample(9, progression.counts // 4)
    radii = progression.radii

    def run():
        return fit.fit_electrons(x, z, n_beta=4, n_shells=len(radii), R0=radii, centre="screen", max_iter=60)

    exact = run()
    monkeypatch.setattr(points, "FISHER_GROUPS", len(x) // 8)
    sampled = run()
    assert exact.converged and sampled.converged
    for name in ("R", "sigma_R", "weights", "beta"):
        a, b, se = getattr(exact, name), getattr(sampled, name), getattr(exact, "se_" + name)
        assert np.all(np.abs(a - b) <= 0.02 * se), name
        assert np.allclose(getattr(sampled, "se_" + name), se, rtol=1e-3, atol=0), name

"""Where the model is evaluated: :class:`PointSet` (groups of screen points) and pixel nodes.

A point set is built once per fit from the data (electron positions, or the 2 x 2 Gauss nodes
of every non-empty pixel, or pixel centres); each evaluation tabulates the radial splines of the
current geometry and hands one :data:`~sevi_lib.fit._kernels.Workspace` to the kernels.
"""

import numpy as np
from scipy.interpolate import CubicSpline

from sevi_lib.core.geometry import PIX_PER_UNIT, pixel_centres
from sevi_lib.fit import _kernels, projection
from sevi_lib.fit.layout import ParamLayout

_G2 = np.array([-0.5, 0.5]) / np.sqrt(3.0)

#: Groups per chunk: the unit of the shells' reach, of the parallel sums and of the Fisher-matrix
#: product (rows of P values each: 8 MB at P = 256).
CHUNK = 4096

#: Chunks computed together (in parallel) between the BLAS products of their Fisher rows: memory
#: ``BATCH * CHUNK * P`` values (64 MB at P = 256); the answers do not depend on it.
BATCH = 8

#: The Fisher matrix of an iteration is summed over at most about this many groups: every k-th
#: group (data in radius order: a sample spread over the radius), times k
#: (:meth:`PointSet.loglike`). The gradient, the value and the geometry curvature always take every
#: group, so the maximum does not move; only the steps' metric is estimated. The standard errors
#: take the exact matrix (``exact=True``, :func:`sevi_lib.fit.optimise.fit_poisson`).
FISHER_GROUPS = 50_000

#: Widths inside a shell's radius where its tables' fine step begins (:func:`_fine_start`).
FINE_WIDTHS = 10.0

#: Inside, a table row spans at most R / (COARSE_PER_ORDER n) (n: the highest Legendre order
#: index; R / 480 at n = 12): the cubic splines' error there stays below that of the fine step
#: near the rim (about 3e-7 of each column's largest value, tests/fit/test_many_shells.py).
COARSE_PER_ORDER = 40

#: Inside, a table row spans at most 2^MAX_SHIFT cells.
MAX_SHIFT = 3

#: Table cells kept beyond a shell's last non-zero cell (the spline's end condition sits in the
#: zeros; the tables differ from those of the whole radius range by rounding).
_PAD = 3


class PointSet:
    """Evaluation points of the model, grouped (one group per electron or per pixel).

    Parameters
    ----------
    x, z : ndarray, shape (n_groups * K,)
        Screen coordinates of the nodes, group by group.
    K : int
        Nodes per group.
    scale : ndarray, shape (n_groups,)
        Group expectation = scale * sum of lambda over its nodes.
    n : int
        Highest Legendre order index.
    h : float
        Radial table step.
    rho_max : float, optional
        End of the radial tables (default: the largest radius plus two steps; radii beyond it
        fall in the last cell, where every shell is zero). Point sets of the same data about
        nearby centres share it, and so can share tables (:meth:`workspace`'s `like`).
    """

    def __init__(self, x, z, K, scale, n, h, rho_max=None):
        x = np.ascontiguousarray(x, dtype=np.float64)
        z = np.ascontiguousarray(z, dtype=np.float64)
        rho = np.hypot(x, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.clip(np.where(rho > 0, z / np.where(rho > 0, rho, 1.0), 0.0), -1.0, 1.0)
        self.x, self.z = x, z
        self.c = c
        self._splines = {}  # the moment splines of the last workspace's shells (see workspace)
        self._deriv_last = 1  # derivatives of the moment splines of the last workspace with derivatives
        self.K = int(K)
        self.n = int(n)
        self.h = float(h)
        self.rho_max = float(rho.max(initial=0.0)) + 2 * h if rho_max is None else float(rho_max)
        self.idx = np.minimum((rho / h).astype(np.int64), int(self.rho_max / h))
        self.t = rho - self.idx * h
        self.pm = np.empty((len(c), self.n + 1))
        _kernels.legendre_rows(c, self.n, self.pm, np.empty((0, 0)))
        self.scale = np.ascontiguousarray(scale, dtype=np.float64)
        self.n_groups = len(self.scale)
        self.li, self.mi = [np.ascontiguousarray(a, dtype=np.int64) for a in projection.pair_index(n)]
        if len(x) != self.n_groups * self.K:
            raise ValueError("PointSet: len(x) must be n_groups * K")

    def workspace(self, theta, S, second=False, like=None, value_only=False, curvature=False, summed=False):
        """The kernels' :data:`~sevi_lib.fit._kernels.Workspace` at the geometry of `theta`.

        Per shell, the radial moments M_k (and their derivatives) are computed on the table grid
        up to the shell's edge R + 9 sigma (a few cells beyond, where they are zero) and splined
        once (:func:`_moment_splines`); the tables of the basis G_lm = sum_k D[l, m, k] M_k
        (``full``) and of the amplitude-contracted basis (``cont``) are those splines' linear
        combinations (a spline is linear in its data: the tables of
        :func:`sevi_lib.fit.projection.radial_spline` up to rounding). The moment splines (with
        first derivatives) are made for a value-only workspace too and kept until the next call,
        so that the derivatives at the geometry whose value was just taken (the optimiser's
        accepted step) reuse them. Second derivatives (``cont``: value, d/dR, d/dsigma, d2/dR2,
        d2/dR dsigma, d2/dsigma2) are tabulated only where used: with `curvature` (the geometry
        curvature of :meth:`loglike`) and `second`; a value-only workspace makes its moment
        splines with them when the last workspace with derivatives had them (an optimiser taking
        Newton steps), so that they are kept for the next. The moment splines' columns do not
        depend on how many derivatives are made (the same values, bit for bit).

        Parameters
        ----------
        theta : ndarray
            Parameter vector (:mod:`sevi_lib.fit.layout`).
        S : int
            Number of shells.
        second : bool
            Tabulate the basis' first derivatives too (for :meth:`curvature`).
        like : Workspace, optional
            A workspace of the same theta, `S`, `second`, table step and ``rho_max`` (of another
            point set): its tables are reused.
        value_only : bool
            Only the contracted value tables (``cont`` columns 0 .. n; ``full`` empty): enough for
            the value and the centre's gradient (:meth:`loglike` with ``want=0``,
            :meth:`shift_gradient`), not for the Jacobian.
        curvature : bool
            The contracted tables' second derivatives too (for the geometry curvature of
            :meth:`loglike`; implied by `second`).
        summed : bool
            The summed value table ``total`` too (always in a value-only workspace; for
            :func:`~sevi_lib.fit._kernels.score_kernel`).
        """
        if like is not None:
            return like._replace(K=self.K, idx=self.idx, t=self.t, pm=self.pm, scale=self.scale)
        layout = ParamLayout(S, self.n)
        a, R_all, s_all = layout.unpack(theta)
        n1 = self.n + 1
        d = projection.separation_coefficients(self.n)
        dp = np.ascontiguousarray(d[self.li, self.mi, :])  # (pairs, k)
        npairs = dp.shape[0]
        # second derivatives only where used (a value-only workspace: as the last one with derivatives)
        if value_only:
            deriv = self._deriv_last
            nd_full, nd_cont = 0, 1
        else:
            deriv = 2 if (curvature or second) else 1
            nd_full, nd_cont = projection.N_DERIV[1 if second else 0], projection.N_DERIV[deriv]
            if not second:
                self._deriv_last = deriv
        nd_spline = projection.N_DERIV[deriv]
        n_cells = int(np.ceil(self.rho_max / self.h)) + 1  # the cells of radial_spline's grid
        imax = np.empty(S, dtype=np.int64)
        fine = np.empty(S, dtype=np.int64)
        shift = np.empty(S, dtype=np.int64)
        cells = np.empty(S, dtype=np.int64)
        for j in range(S):
            imax[j] = min(int((R_all[j] + projection.WINDOW * s_all[j]) / self.h) + 1, n_cells - 1)
            cells[j] = min(imax[j] + 1 + _PAD, n_cells)
            fine[j], shift[j] = _fine_start(R_all[j], s_all[j], self.h, self.n, cells[j])
        rows = (fine >> shift) + cells - fine
        width = int(rows.max()) if S else 1
        full = np.empty((S, width, 4, nd_full * npairs))
        cont = np.empty((S, width, 4, nd_cont * n1))
        kept, self._splines = self._splines, {}
        for j in range(S):
            key = (float(R_all[j]), float(s_all[j]), self.h, int(cells[j]), int(fine[j]), int(shift[j]))
            coef = kept.get(key)
            if coef is None or coef.shape[2] < nd_spline:  # (4, rows, nd, k); more slots than needed serve
                coef = _moment_splines(R_all[j], s_all[j], n1, self.h, cells[j], deriv, fine[j], shift[j])
            self._splines[key] = coef
            dc = np.einsum("lmk,l->mk", d, a[j])
            _combine(coef, nd_cont, dc, cont[j, :rows[j]])
            if nd_full:
                _combine(coef, nd_full, dp, full[j, :rows[j]])
        ws = _kernels.Workspace(self.K, self.idx, self.t, self.pm, self.scale, self.li, self.mi, full, cont, imax,
                                fine, shift, self.h, np.empty((0, 4, n1)))
        if value_only or summed:  # all shells' value tables summed per cell (the value kernel's one table)
            ws = ws._replace(total=_summed_table(ws))
        return ws

    def loglike(self, theta, counts, S, want=0, mu_out=None, like=None, geometry_curvature=None, exact=False):
        """sum_g counts_g log mu_g with gradient and Fisher matrix (want = 0, 1, 2).

        The value alone (``want=0``) comes from the amplitude-contracted tables
        (:func:`~sevi_lib.fit._kernels.value_kernel`, a value-only workspace unless `like` is
        given). The Fisher matrix comes from the groups' Jacobian rows, in chunks of :data:`CHUNK`,
        each over the shells that reach it, a batch of chunks in parallel
        (:func:`~sevi_lib.fit._kernels.score_rows_kernel`), every chunk's rows multiplied by BLAS
        on its own columns; the value and gradient come with them. With more than 2
        :data:`FISHER_GROUPS` groups and not `exact`, the Fisher matrix is that of every k-th group
        times k (:meth:`fisher_every`), and the value and gradient (with ``want=1`` always) come
        from :func:`~sevi_lib.fit._kernels.score_kernel`, every group at a cost that does not grow
        with the shells. The chunks' parts are added in chunk order (the same answer on any number
        of numba threads). `mu_out` (filled only with ``want=0``) receives every mu_g. `like`: a
        workspace whose tables to reuse (:meth:`workspace`). `geometry_curvature` (shape ``(S,
        3)``, only with ``want=2``) receives, per shell, sum_g (counts_g / mu_g) d2 mu_g / d(R R,
        R sigma, sigma sigma): the curvature of the log-likelihood is ``-Fisher + `` these on the
        geometry entries (the amplitudes enter mu linearly; their cross terms with the geometry are
        left out), the Newton matrix of :func:`sevi_lib.fit.optimise.fit_poisson`.
        """
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        counts = np.ascontiguousarray(counts, dtype=np.float64)
        geo = geometry_curvature is not None
        k = 1 if exact or want < 2 else self.fisher_every()
        rows_only = want == 2 and k == 1  # every group's Jacobian row: the value, gradient and curvature with it
        ws = self.workspace(theta, S, like=like, value_only=want == 0, curvature=geo,
                            summed=want > 0 and not rows_only)
        P = len(theta)
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        if want == 0:
            mu = np.empty(0) if mu_out is None else mu_out
            return _kernels.value_kernel(ws, counts, theta, mu, CHUNK), grad, hess
        if mu_out is not None:
            raise ValueError("PointSet.loglike: mu_out is filled only with want=0")
        if geo and want != 2:
            raise ValueError("PointSet.loglike: geometry_curvature is filled only with want=2")
        if rows_only:
            return self._rows(ws, counts, theta, geometry_curvature)
        if ws.total.shape[0] == 0 and ws.imax.shape[0] > 0:  # a reused workspace without the summed table
            ws = ws._replace(total=_summed_table(ws))
        n_chunks = -(-self.n_groups // CHUNK)
        ll_parts = np.empty(n_chunks)
        grad_parts = np.empty((n_chunks, P))
        geo_parts = np.empty((n_chunks, S, 3) if geo else (0, S, 3))
        _kernels.score_kernel(ws, counts, theta, CHUNK, ll_parts, grad_parts, geo_parts)
        if not np.all(np.isfinite(ll_parts)):
            return -np.inf, grad, hess
        ll = 0.0
        if geo:
            geometry_curvature[:] = 0.0
        for b in range(n_chunks):  # in chunk order: the same sums on any number of threads
            ll += ll_parts[b]
            grad += grad_parts[b]
            if geo:
                geometry_curvature += geo_parts[b]
        if want == 2:  # the Fisher matrix of every k-th group, times k
            nodes = (np.arange(0, self.n_groups, k)[:, None] * self.K + np.arange(self.K)).ravel()
            wsk = ws._replace(idx=self.idx[nodes], t=self.t[nodes], pm=self.pm[nodes], scale=self.scale[::k])
            hess = self._rows(wsk, np.ascontiguousarray(counts[::k]), theta, None)[2] * k
        return ll, grad, hess

    def fisher_every(self):
        """k of the Fisher matrix's sample (every k-th group; :data:`FISHER_GROUPS`): 1 up to 2 FISHER_GROUPS groups."""
        return 1 if self.n_groups <= 2 * FISHER_GROUPS else self.n_groups // FISHER_GROUPS

    @staticmethod
    def _rows(ws, counts, theta, geometry_curvature):
        """(ll, gradient, Fisher matrix) over the groups of `ws` from their Jacobian rows
        (:func:`~sevi_lib.fit._kernels.score_rows_kernel`); -inf if some mu_g <= 0."""
        P = len(theta)
        S = ws.full.shape[0]
        G = counts.shape[0]
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        n_chunks = -(-G // CHUNK)
        batch = min(BATCH, n_chunks)
        rows = np.empty((batch, min(CHUNK, G), P))
        cols = np.empty((batch, P), dtype=np.int64)
        ncols = np.empty(batch, dtype=np.int64)
        ll_parts = np.empty(batch)
        grad_parts = np.empty((batch, P))
        geo = geometry_curvature is not None
        geo_parts = np.empty((batch, S, 3) if geo else (0, S, 3))
        if geo:
            geometry_curvature[:] = 0.0
        ll = 0.0
        for c0 in range(0, n_chunks, batch):
            c1 = min(c0 + batch, n_chunks)
            _kernels.score_rows_kernel(ws, counts, theta, CHUNK, c0, c1, ll_parts, grad_parts, rows, cols, ncols,
                                       geo_parts)
            for b in range(c1 - c0):
                if not np.isfinite(ll_parts[b]):
                    return -np.inf, grad, hess
                ll += ll_parts[b]
                grad += grad_parts[b]
                if geo:
                    geometry_curvature += geo_parts[b]
                # only the parameters of the shells that reach the chunk (radius order: few)
                nz = cols[b, :ncols[b]]
                sub = rows[b, :min(CHUNK, G - (c0 + b) * CHUNK), :len(nz)]
                hess[np.ix_(nz, nz)] += sub.T @ sub
        return ll, grad, hess

    def shift_gradient(self, theta, S, like=None):
        """d mu_g / d(x0, z0) for every group, shape (n_groups, 2): the shells moved with the centre.

        `like`: a workspace whose tables to reuse (:meth:`workspace`).
        """
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        out = np.empty((self.n_groups, 2))
        ws = self.workspace(theta, S, like=like, value_only=True)
        _kernels.shift_gradient_kernel(ws, self.c, self.x, self.z, out)
        return out

    def jacobian(self, theta, S):
        """d mu_g / d theta for every group, shape (n_groups, P); mu = J[:, a-columns] @ a."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        out = np.empty((self.n_groups, len(theta)))
        _kernels.jacobian_kernel(self.workspace(theta, S), theta, out)
        return out

    def curvature(self, theta, weight, S):
        """sum_g weight_g d2 mu_g / d theta2, shape (P, P)."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        Q = np.zeros((len(theta), len(theta)))
        _kernels.curvature_kernel(self.workspace(theta, S, second=True),
                                  np.ascontiguousarray(weight, dtype=np.float64), theta, Q)
        return Q


def pixel_nodes(ix, iz):
    """2 x 2 Gauss-Legendre nodes of pixels (ix, iz) in screen units, pixel by pixel.

    Parameters
    ----------
    ix, iz : ndarray of int
        Pixel indices (``Image[ix, iz]``).

    Returns
    -------
    x, z : ndarray, shape (4 * len(ix),)
    """
    hp = 1.0 / PIX_PER_UNIT
    centres = pixel_centres()
    xc = centres[np.asarray(ix)]
    zc = centres[np.asarray(iz)]
    ox = np.repeat(_G2, 2) * hp
    oz = np.tile(_G2, 2) * hp
    return (xc[:, None] + ox[None, :]).ravel(), (zc[:, None] + oz[None, :]).ravel()


def _summed_table(ws):
    """The summed value table of a workspace's contracted tables (:func:`~sevi_lib.fit._kernels.sum_tables`)."""
    n1 = ws.pm.shape[1]
    total = np.empty((int(ws.imax.max()) + 1 if ws.imax.shape[0] else 0, 4, n1))  # cells up to the last edge
    _kernels.sum_tables(ws.cont, ws.imax, ws.fine, ws.shift, ws.h, n1, total)
    return total


def _combine(coef, nd, comb, out):
    """Tables ``out[cell, power, slot * n_out + o]`` of ``sum_k comb[o, k] M_k`` for the first `nd` slots.

    `coef`: :func:`_moment_splines`' ``[power, cell, slot, k]``; `out` (contiguous, shape
    ``(cells, 4, nd * n_out)``) is written by one BLAS product.
    """
    _, cells, _, nk = coef.shape
    lhs = np.ascontiguousarray(np.swapaxes(coef[:, :, :nd], 0, 1)).reshape(-1, nk)  # rows (cell, power, slot)
    np.matmul(lhs, comb.T, out=out.reshape(cells * 4 * nd, comb.shape[0]))


def _fine_start(R, s, h, n, cells):
    """(fine, shift) of one shell's tables: fine step from cell `fine` outwards, rows of 2^shift cells inside.

    The fine step h (a 24th of the narrowest width) resolves the projected rim; from
    :data:`FINE_WIDTHS` widths inside R, the moments are smooth on the scales of their envelope
    (the distance to the rim) and of the Legendre polynomials P_2n(rho / r) (about R / n), so a
    row spans the largest ``2^shift <= 2^MAX_SHIFT`` cells that stays below ``R / (COARSE_PER_ORDER n)``.
    """
    H = R / (COARSE_PER_ORDER * max(n, 1))
    shift = 0
    while shift < MAX_SHIFT and (2 ** (shift + 1)) * h <= H:
        shift += 1
    fine = int(max(R - FINE_WIDTHS * s, 0.0) / h) >> shift << shift
    return min(fine, int(cells) >> shift << shift), shift


def _moment_splines(R, s, n1, h, cells, deriv, fine=0, shift=0):
    """Cubic-spline coefficients of the radial moments of one shell up to cells h.

    The knots are 0, H, 2 H, .. (H = 2^shift h) up to fine h, then every h up to cells h.

    Returns
    -------
    ndarray, shape (4, rows, N_DERIV[deriv], n1)
        Per row (interval between knots), highest power first in t = rho - rho_i (as
        :func:`sevi_lib.fit.projection.radial_spline`); ``rows = fine / 2^shift + cells - fine``.
    """
    nd = projection.N_DERIV[deriv]
    rho = np.concatenate([np.arange(fine >> shift) * (h * (1 << shift)), np.arange(fine, cells + 1) * h])
    m = np.empty((len(rho), nd, n1))
    _kernels.moments_grid(rho, float(R), float(s), n1, nd, projection._XG, projection._WG, projection.WINDOW, m)
    cs = CubicSpline(rho, m.reshape(len(rho), nd * n1), axis=0, bc_type="not-a-knot")
    return cs.c.reshape(4, len(rho) - 1, nd, n1)

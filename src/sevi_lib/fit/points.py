"""Where the model is evaluated: :class:`PointSet` (groups of screen points) and pixel nodes.

A point set is built once per fit from the data (electron positions, or the 2 x 2 Gauss nodes
of every non-empty pixel, or pixel centres); each evaluation tabulates the radial splines of the
current geometry and hands one :data:`~sevi_lib.fit._kernels.Workspace` to the kernels.
"""

import numpy as np

from sevi_lib.core.geometry import PIX_PER_UNIT, pixel_centres
from sevi_lib.fit import _kernels, projection
from sevi_lib.fit.layout import ParamLayout

_G2 = np.array([-0.5, 0.5]) / np.sqrt(3.0)

#: Groups per chunk of the Fisher-matrix product (rows of P values each: 8 MB at P = 256).
CHUNK = 4096


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
        self._dpm = None  # P'_2m(c), made by shift_gradient when first needed
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

    def workspace(self, theta, S, second=False, like=None):
        """The kernels' :data:`~sevi_lib.fit._kernels.Workspace` at the geometry of `theta`.

        Parameters
        ----------
        theta : ndarray
            Parameter vector (:mod:`sevi_lib.fit.layout`).
        S : int
            Number of shells.
        second : bool
            Tabulate second derivatives too (for :meth:`curvature`).
        like : Workspace, optional
            A workspace of the same theta, `S`, `second`, table step and ``rho_max`` (of another
            point set): its tables are reused.
        """
        if like is not None:
            return like._replace(K=self.K, idx=self.idx, t=self.t, pm=self.pm, scale=self.scale)
        layout = ParamLayout(S, self.n)
        a, R_all, s_all = layout.unpack(theta)
        full = cont = None
        imax = np.empty(S, dtype=np.int64)
        for j in range(S):
            R, s = R_all[j], s_all[j]
            tab, ctab = projection.radial_spline(R, s, self.n, self.h, self.rho_max, derivatives=1 if second else 0,
                                                 contract=a[j], contract_derivatives=2 if second else 1)
            if full is None:  # one array for all shells, filled in place (no list and stacked copy)
                full = np.empty((S, tab.shape[0], tab.shape[2], tab.shape[1]))
                cont = np.empty((S, ctab.shape[0], ctab.shape[2], ctab.shape[1]))
            full[j] = np.swapaxes(tab, 1, 2)
            cont[j] = np.swapaxes(ctab, 1, 2)
            imax[j] = min(int((R + projection.WINDOW * s) / self.h) + 1, tab.shape[0] - 1)
        return _kernels.Workspace(self.K, self.idx, self.t, self.pm, self.scale, self.li, self.mi, full, cont, imax)

    def loglike(self, theta, counts, S, want=0, mu_out=None, like=None):
        """sum_g counts_g log mu_g with gradient and Fisher matrix (want = 0, 1, 2).

        The value alone (``want=0``) comes from the amplitude-contracted tables
        (:func:`~sevi_lib.fit._kernels.value_kernel`); with derivatives, the groups are taken in
        chunks of :data:`CHUNK` whose Fisher rows are multiplied by BLAS
        (:func:`~sevi_lib.fit._kernels.score_rows_kernel`). `mu_out` (filled only with
        ``want=0``) receives every mu_g. `like`: a workspace whose tables to reuse
        (:meth:`workspace`).
        """
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        counts = np.ascontiguousarray(counts, dtype=np.float64)
        ws = self.workspace(theta, S, like=like)
        P = len(theta)
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        if want == 0:
            mu = np.empty(0) if mu_out is None else mu_out
            return _kernels.value_kernel(ws, counts, theta, mu), grad, hess
        if mu_out is not None:
            raise ValueError("PointSet.loglike: mu_out is filled only with want=0")
        rows = np.empty((min(CHUNK, self.n_groups), P))
        ll = 0.0
        for g0 in range(0, self.n_groups, CHUNK):
            g1 = min(g0 + CHUNK, self.n_groups)
            part = _kernels.score_rows_kernel(ws, counts, theta, g0, g1, grad, rows)
            if not np.isfinite(part):
                return -np.inf, grad, hess
            ll += part
            if want >= 2:  # only the parameters some group of the chunk depends on (radius order: few)
                r = rows[:g1 - g0]
                nz = np.flatnonzero(np.any(r != 0.0, axis=0))
                sub = r[:, nz]
                hess[np.ix_(nz, nz)] += sub.T @ sub
        return ll, grad, hess

    def shift_gradient(self, theta, S, like=None):
        """d mu_g / d(x0, z0) for every group, shape (n_groups, 2): the shells moved with the centre.

        `like`: a workspace whose tables to reuse (:meth:`workspace`).
        """
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        out = np.empty((self.n_groups, 2))
        if self._dpm is None:
            pm = np.empty_like(self.pm)
            self._dpm = np.empty_like(self.pm)
            _kernels.legendre_rows(self.c, self.n, pm, self._dpm)
        _kernels.shift_gradient_kernel(self.workspace(theta, S, like=like), self._dpm, self.x, self.z, out)
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

"""Numba kernels of the fit: the model's expectation per data group, its derivatives, the likelihood.

All kernels take one :data:`Workspace` (built in one place,
:meth:`sevi_lib.fit.points.PointSet.workspace`): the evaluation points of the data and the spline
tables of the current geometry. Per group g (an electron, or a pixel's 2 x 2 Gauss nodes) the
expectation is ``mu_g = scale_g * sum over its K nodes of lambda``, linear in the amplitudes a
and the background; d mu / d(R, sigma) come from the contracted derivative tables. Parameter
indices follow :mod:`sevi_lib.fit.layout`.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit

from sevi_lib.fit.layout import amplitudes_per_shell, shell_offset

#: Everything the kernels read, one record (see the module docstring).
Workspace = namedtuple("Workspace", ["K", "idx", "t", "pm", "scale", "li", "mi", "full", "cont", "imax"])
Workspace.__doc__ = """Evaluation points and spline tables of one geometry.

K : int
    Nodes per group.
idx, t : ndarray of int64 / float64, shape (n_groups * K,)
    Radial table cell of each node and the offset into it.
pm : ndarray, shape (n_groups * K, n + 1)
    1 and the even Legendre polynomials P_2 .. P_2n of each node's screen angle.
scale : ndarray, shape (n_groups,)
    Group expectation = scale * sum of lambda over its nodes.
li, mi : ndarray of int64
    (l, m) pairs of the separated basis (:func:`sevi_lib.fit.projection.pair_index`).
full, cont : ndarray
    Per shell, the cubic-spline tables of the basis (``full``) and of the amplitude-contracted
    derivatives (``cont``), ``[shell, cell, column, 4]``; with second derivatives for the curvature.
imax : ndarray of int64, shape (n_shells,)
    Last table cell where each shell is non-zero.
"""


@njit(cache=True, inline="always")
def _spl(tab, col, t):
    return ((tab[col, 0] * t + tab[col, 1]) * t + tab[col, 2]) * t + tab[col, 3]


@njit(cache=True)
def _group_jacobian(ws, g, n1, J):
    """d mu_g / d theta for group g into J (layout per shell: a_0..a_n, R, sigma)."""
    S = ws.full.shape[0]
    npairs = ws.li.shape[0]
    for k in range(J.shape[0]):
        J[k] = 0.0
    for q in range(ws.K):
        e = g * ws.K + q
        i = ws.idx[e]
        if i < 0:
            continue
        tt = ws.t[e]
        for j in range(S):
            if i > ws.imax[j]:
                continue
            off = shell_offset(j, n1)
            tab = ws.full[j, i]
            for p in range(npairs):
                J[off + ws.li[p]] += _spl(tab, p, tt) * ws.pm[e, ws.mi[p]]
            ctab = ws.cont[j, i]
            for m in range(n1):
                J[off + n1] += _spl(ctab, n1 + m, tt) * ws.pm[e, m]
                J[off + n1 + 1] += _spl(ctab, 2 * n1 + m, tt) * ws.pm[e, m]
    sc = ws.scale[g]
    P = J.shape[0]
    for k in range(P - 1):
        J[k] *= sc
    J[P - 1] = ws.K * sc  # uniform background


@njit(cache=True)
def loglike_kernel(ws, counts, theta, want, grad, hess, mu_out):
    """sum_g counts_g log mu_g (and its gradient / Fisher matrix); -inf if some mu_g <= 0.

    Parameters
    ----------
    ws : Workspace
    counts : ndarray, shape (n_groups,)
    theta : ndarray, shape (P,)
    want : int
        0: value only; 1: and the gradient; 2: and the Fisher matrix.
    grad : ndarray, shape (P,)
    hess : ndarray, shape (P, P)
        Outputs (overwritten).
    mu_out : ndarray, shape (n_groups,) or (0,)
        Receives mu_g when not empty.
    """
    S = ws.full.shape[0]
    n1 = amplitudes_per_shell(theta.shape[0], S)
    P = theta.shape[0]
    J = np.empty(P)
    ll = 0.0
    for k in range(P):
        grad[k] = 0.0
        if want >= 2:
            for k2 in range(P):
                hess[k, k2] = 0.0
    for g in range(counts.shape[0]):
        _group_jacobian(ws, g, n1, J)
        mu = 0.0
        for j in range(S):
            off = shell_offset(j, n1)
            for l in range(n1):
                mu += theta[off + l] * J[off + l]
        mu += theta[P - 1] * J[P - 1]
        if mu_out.shape[0] > 0:
            mu_out[g] = mu
        c = counts[g]
        if c == 0.0:
            continue
        if not mu > 0.0:
            return -np.inf
        ll += c * math.log(mu)
        if want >= 1:
            w = c / mu
            for k in range(P):
                grad[k] += w * J[k]
            if want >= 2:
                w2 = w / mu
                for k in range(P):
                    if J[k] == 0.0:
                        continue
                    v = w2 * J[k]
                    for k2 in range(k, P):
                        hess[k, k2] += v * J[k2]
    if want >= 2:
        for k in range(P):
            for k2 in range(k):
                hess[k, k2] = hess[k2, k]
    return ll


@njit(cache=True)
def value_kernel(ws, counts, theta, mu_out):
    """sum_g counts_g log mu_g from the amplitude-contracted tables only; -inf if some mu_g <= 0.

    The same mu_g as :func:`loglike_kernel` (up to rounding: the contracted spline is the
    amplitude-weighted sum of the basis splines) at ``n + 1`` spline evaluations per shell and
    node instead of ``(n + 1)(n + 2) / 2 + 2 (n + 1)``: the cost of the line search and of the
    centre steps grows with the shells a node lies inside, not with the square of the parameters.

    Parameters
    ----------
    ws : Workspace
    counts : ndarray, shape (n_groups,)
    theta : ndarray, shape (P,)
        Only its background (the last entry) is read; the amplitudes are in ``ws.cont``.
    mu_out : ndarray, shape (n_groups,) or (0,)
        Receives mu_g when not empty.
    """
    S = ws.full.shape[0]
    n1 = ws.pm.shape[1]
    bg = theta[theta.shape[0] - 1]
    ll = 0.0
    for g in range(counts.shape[0]):
        lam = 0.0
        for q in range(ws.K):
            e = g * ws.K + q
            i = ws.idx[e]
            if i < 0:
                continue
            tt = ws.t[e]
            for j in range(S):
                if i > ws.imax[j]:
                    continue
                ctab = ws.cont[j, i]
                for m in range(n1):
                    lam += _spl(ctab, m, tt) * ws.pm[e, m]
        sc = ws.scale[g]
        mu = sc * lam + ws.K * sc * bg
        if mu_out.shape[0] > 0:
            mu_out[g] = mu
        c = counts[g]
        if c == 0.0:
            continue
        if not mu > 0.0:
            return -np.inf
        ll += c * math.log(mu)
    return ll


@njit(cache=True)
def score_rows_kernel(ws, counts, theta, g0, g1, grad, rows):
    """sum_g counts_g log mu_g over groups g0 .. g1 - 1, its gradient, and the Fisher rows.

    ``grad += sum_g (c_g / mu_g) J_g`` and ``rows[g - g0] = sqrt(c_g) / mu_g J_g`` (zero for an
    empty group), so that the Fisher matrix ``sum_g c_g J_g J_g^T / mu_g^2`` of the chunk is
    ``rows.T @ rows`` (one BLAS product, :meth:`sevi_lib.fit.points.PointSet.loglike`): the
    per-group outer product over all P parameters was the part of the cost that grew with the
    square of the number of shells.

    Returns
    -------
    float
        The chunk's log-likelihood part, or -inf if some mu_g <= 0.
    """
    S = ws.full.shape[0]
    n1 = amplitudes_per_shell(theta.shape[0], S)
    P = theta.shape[0]
    J = np.empty(P)
    ll = 0.0
    for g in range(g0, g1):
        r = rows[g - g0]
        for k in range(P):
            r[k] = 0.0
        c = counts[g]
        if c == 0.0:
            continue
        _group_jacobian(ws, g, n1, J)
        mu = 0.0
        for j in range(S):
            off = shell_offset(j, n1)
            for l in range(n1):
                mu += theta[off + l] * J[off + l]
        mu += theta[P - 1] * J[P - 1]
        if not mu > 0.0:
            return -np.inf
        ll += c * math.log(mu)
        w = c / mu
        f = math.sqrt(c) / mu
        for k in range(P):
            grad[k] += w * J[k]
            r[k] = f * J[k]
    return ll


@njit(cache=True)
def jacobian_kernel(ws, theta, out):
    """Jacobian d mu_g / d theta of every group into out, shape (n_groups, P)."""
    S = ws.full.shape[0]
    n1 = amplitudes_per_shell(theta.shape[0], S)
    for g in range(out.shape[0]):
        _group_jacobian(ws, g, n1, out[g])


@njit(cache=True)
def curvature_kernel(ws, weight, theta, Q):
    """Q += sum_g weight_g d2 mu_g / d theta2 (the second-derivative part of the information).

    `ws` must hold the tables with second derivatives; Q, shape (P, P), is symmetrised.
    """
    S = ws.full.shape[0]
    n1 = amplitudes_per_shell(theta.shape[0], S)
    npairs = ws.li.shape[0]
    dR = np.empty(n1)
    ds = np.empty(n1)
    sec = np.empty(3)
    for g in range(weight.shape[0]):
        wg = weight[g] * ws.scale[g]
        if wg == 0.0:
            continue
        for j in range(S):
            off = shell_offset(j, n1)
            for l in range(n1):
                dR[l] = 0.0
                ds[l] = 0.0
            sec[0] = 0.0
            sec[1] = 0.0
            sec[2] = 0.0
            hit = False
            for q in range(ws.K):
                e = g * ws.K + q
                i = ws.idx[e]
                if i < 0 or i > ws.imax[j]:
                    continue
                hit = True
                tt = ws.t[e]
                tab = ws.full[j, i]
                for p in range(npairs):
                    pmv = ws.pm[e, ws.mi[p]]
                    dR[ws.li[p]] += _spl(tab, npairs + p, tt) * pmv
                    ds[ws.li[p]] += _spl(tab, 2 * npairs + p, tt) * pmv
                ctab = ws.cont[j, i]
                for m in range(n1):
                    pmv = ws.pm[e, m]
                    sec[0] += _spl(ctab, 3 * n1 + m, tt) * pmv
                    sec[1] += _spl(ctab, 4 * n1 + m, tt) * pmv
                    sec[2] += _spl(ctab, 5 * n1 + m, tt) * pmv
            if not hit:
                continue
            for l in range(n1):
                Q[off + l, off + n1] += wg * dR[l]
                Q[off + l, off + n1 + 1] += wg * ds[l]
            Q[off + n1, off + n1] += wg * sec[0]
            Q[off + n1, off + n1 + 1] += wg * sec[1]
            Q[off + n1 + 1, off + n1 + 1] += wg * sec[2]
    P = theta.shape[0]
    for k in range(P):
        for k2 in range(k):
            Q[k, k2] = Q[k2, k]


@njit(cache=True, inline="always")
def _dspl(tab, col, t):
    return (3.0 * tab[col, 0] * t + 2.0 * tab[col, 1]) * t + tab[col, 2]


@njit(cache=True)
def shift_gradient_kernel(ws, dpm, x, z, out):
    """d mu_g / d(x0, z0) of every group into out, shape (n_groups, 2).

    The shells sit at the centre (x0, z0), the nodes at (x, z) about it, so d / d x0 = -d / d x.
    Per node, d lambda / d rho comes from the derivative of the contracted value tables
    (``ws.cont``, columns 0 .. n) and d lambda / d c from `dpm` (P'_2m(c), shape like ``ws.pm``);
    the uniform background does not move with the centre.
    """
    S = ws.full.shape[0]
    n1 = ws.pm.shape[1]
    for g in range(out.shape[0]):
        gx = 0.0
        gz = 0.0
        for q in range(ws.K):
            e = g * ws.K + q
            i = ws.idx[e]
            if i < 0:
                continue
            tt = ws.t[e]
            drho = 0.0
            dc = 0.0
            for j in range(S):
                if i > ws.imax[j]:
                    continue
                ctab = ws.cont[j, i]
                for m in range(n1):
                    drho += _dspl(ctab, m, tt) * ws.pm[e, m]
                    dc += _spl(ctab, m, tt) * dpm[e, m]
            xe = x[e]
            ze = z[e]
            rho = math.sqrt(xe * xe + ze * ze)
            if rho == 0.0:
                continue
            r3 = rho * rho * rho
            gx += drho * xe / rho - dc * xe * ze / r3
            gz += drho * ze / rho + dc * xe * xe / r3
        out[g, 0] = -ws.scale[g] * gx
        out[g, 1] = -ws.scale[g] * gz


@njit(cache=True)
def legendre_rows(c, n, pm, dpm):
    """Rows ``[1, P_2, ..., P_2n](c_e)`` into pm and their derivatives P'_2m into dpm (if not empty).

    The same recurrence, in the same floating-point order, as
    :func:`sevi_lib.core.angular.legendre_even` (identical values), one point at a time.
    """
    L = 2 * n
    p = np.empty(L + 1)
    d = np.empty(L + 1)
    want_d = dpm.shape[0] > 0
    for e in range(c.shape[0]):
        ce = c[e]
        p[0] = 1.0
        d[0] = 0.0
        if L >= 1:
            p[1] = ce
            d[1] = 1.0
        for l in range(1, L):
            p[l + 1] = ((2 * l + 1) * ce * p[l] - l * p[l - 1]) / (l + 1)
            d[l + 1] = d[l - 1] + (2 * l + 1) * p[l]
        for m in range(n + 1):
            pm[e, m] = p[2 * m]
            if want_d:
                dpm[e, m] = d[2 * m]

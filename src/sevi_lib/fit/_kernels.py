"""Numba kernels of the fit: the model's expectation per data group, its derivatives, the likelihood.

All kernels take one :data:`Workspace` (built in one place,
:meth:`sevi_lib.fit.points.PointSet.workspace`): the evaluation points of the data and the spline
tables of the current geometry. Per group g (an electron, or a pixel's 2 x 2 Gauss nodes) the
expectation is ``mu_g = scale_g * sum over its K nodes of lambda``, linear in the amplitudes a
and the background; d mu / d(R, sigma) come from the contracted derivative tables. Parameter
indices follow :mod:`sevi_lib.fit.layout`.

Shells reach inwards only: shell j is non-zero for rho <= R_j + 9 sigma_j (table cell
``imax[j]``), so a group depends on the shells whose edge lies beyond it. The data are in radius
order; the groups are taken in chunks of ``chunk`` (the argument of the likelihood kernels), and
each chunk works only with the shells that reach its innermost node (:func:`_chunk_shells`):
a group's Jacobian row (:func:`score_rows_kernel`, the Fisher matrix) grows with the shells that
touch it, not with all shells. Sums over groups of weighted table values (the gradient,
:func:`score_kernel`; the curvature, :func:`curvature_kernel`) do not need the rows: a spline is
linear in its coefficients, so they are the tables contracted with sums of weight x t^p x P_2m per
table cell (:func:`_cell_sums`, :func:`_row_sums`), a cost per node that does not grow with the
shells. The chunks run in parallel (numba ``prange``); every chunk's partial sums are kept apart
and added in chunk order afterwards, so the answers do not depend on the number of threads (bit
for bit).
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from sevi_lib.fit.layout import amplitudes_per_shell, shell_offset

#: Everything the kernels read, one record (see the module docstring).
Workspace = namedtuple("Workspace", ["K", "idx", "t", "pm", "scale", "li", "mi", "full", "cont", "imax", "fine",
                                     "shift", "h", "total"])
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
    basis and its derivatives (``cont``), ``[shell, cell, power, column]`` (power 0 the cubic
    coefficient; a cell's columns side by side, so that a run of columns is evaluated in SIMD
    lanes); with second derivatives
    for the curvature. A shell's table ends at its edge: cells beyond ``imax[j]`` (the array is
    padded to the longest shell) are never read. ``full`` has no columns in a value-only
    workspace (:meth:`sevi_lib.fit.points.PointSet.workspace`).
imax : ndarray of int64, shape (n_shells,)
    Last table cell where each shell is non-zero.
fine, shift : ndarray of int64, shape (n_shells,)
    A shell's table is fine (step h, one row per cell) only from cell ``fine[j]`` (a multiple of
    ``2 ** shift[j]``) outwards, near its rim; inside, a row spans ``2 ** shift[j]`` cells
    (:func:`_row`; :meth:`sevi_lib.fit.points.PointSet.workspace`).
h : float
    The cell width (table step of the fine rows).
total : ndarray, shape (cells, 4, n + 1)
    In a value-only workspace, the contracted value tables of all shells summed, one row per
    cell of width h (:func:`sum_tables`): the value kernel's one spline per node and column
    instead of one per shell; empty (no rows) otherwise.
"""


@njit(cache=True, inline="always")
def _spl(tab, col, t):
    return ((tab[0, col] * t + tab[1, col]) * t + tab[2, col]) * t + tab[3, col]


@njit(cache=True, inline="always")
def _row(ws, j, i, t):
    """Row of shell j's tables holding cell i, and the node's offset into it (t: offset into the cell).

    Cells from ``fine[j]`` on have a row each; below, row ``i >> shift[j]`` spans ``2 ** shift[j]``
    cells.
    """
    f = ws.fine[j]
    if i >= f:
        return (f >> ws.shift[j]) + i - f, t
    p = ws.shift[j]
    return i >> p, t + (i & ((1 << p) - 1)) * ws.h


@njit(cache=True, inline="always")
def _add_summed(ws, e, i, te, n1, lam):
    """lam plus node e's value from the summed table ``ws.total`` (cell i, offset te; nothing beyond its last cell)."""
    if i < ws.total.shape[0]:
        ttab = ws.total[i]
        for m in range(n1):
            lam += _spl(ttab, m, te) * ws.pm[e, m]
    return lam


@njit(cache=True)
def _chunk_shells(ws, g0, g1, act):
    """The shells some node of groups g0 .. g1 - 1 lies inside, ascending, into act; their number.

    Shell j reaches the table cells 0 .. ``imax[j]``, so it touches the chunk when ``imax[j]`` is
    at least the chunk's smallest cell (all of them, for data in radius order, are near it).
    """
    lo = 1 << 62
    for e in range(g0 * ws.K, g1 * ws.K):
        i = ws.idx[e]
        if 0 <= i < lo:
            lo = i
    na = 0
    for j in range(ws.imax.shape[0]):
        if ws.imax[j] >= lo:
            act[na] = j
            na += 1
    return na


@njit(cache=True)
def _group_jacobian(ws, g, n1, act, na, J, v, sec):
    """d mu_g / d theta of group g over the shells act[:na], compactly into J[:na * (n1 + 2) + 1].

    Shell ``act[a]``'s columns (a_0..a_n, R, sigma) are ``a * (n1 + 2) ..``; the background is
    the last; `v` (n_pairs values) is scratch. Per node and shell, all basis splines are
    evaluated first (one vectorisable loop over the table's columns), then contracted with the
    node's Legendre row, pair (l, m <= l) after pair. If `sec` is not empty (then ``ws.cont``
    holds second derivatives), ``sec[3 a .. 3 a + 2]`` receives d2 mu_g / d(R R, R sigma,
    sigma sigma) of shell ``act[a]``.
    """
    w = n1 + 2
    nc = na * w
    npairs = ws.li.shape[0]
    want_sec = sec.shape[0] > 0
    for k in range(nc):
        J[k] = 0.0
    if want_sec:
        for k in range(3 * na):
            sec[k] = 0.0
    for q in range(ws.K):
        e = g * ws.K + q
        i = ws.idx[e]
        if i < 0:
            continue
        te = ws.t[e]
        for a in range(na):
            j = act[a]
            if i > ws.imax[j]:
                continue
            off = a * w
            r, tt = _row(ws, j, i, te)
            tab = ws.full[j, r]
            for p in range(npairs):
                v[p] = _spl(tab, p, tt)
            p = 0
            for l in range(n1):  # pair_index order: l = 0, 1, ..; m = 0 .. l
                acc = 0.0
                for m in range(l + 1):
                    acc += v[p] * ws.pm[e, m]
                    p += 1
                J[off + l] += acc
            ctab = ws.cont[j, r]
            for m in range(n1):
                J[off + n1] += _spl(ctab, n1 + m, tt) * ws.pm[e, m]
                J[off + n1 + 1] += _spl(ctab, 2 * n1 + m, tt) * ws.pm[e, m]
            if want_sec:
                for m in range(n1):
                    pmv = ws.pm[e, m]
                    sec[3 * a] += _spl(ctab, 3 * n1 + m, tt) * pmv
                    sec[3 * a + 1] += _spl(ctab, 4 * n1 + m, tt) * pmv
                    sec[3 * a + 2] += _spl(ctab, 5 * n1 + m, tt) * pmv
    sc = ws.scale[g]
    for k in range(nc):
        J[k] *= sc
    J[nc] = ws.K * sc  # uniform background
    if want_sec:
        for k in range(3 * na):
            sec[k] *= sc


@njit(cache=True, inline="always")
def _compact_mu(theta, act, na, n1, J):
    """mu = sum of theta J over the compact columns of :func:`_group_jacobian` (amplitudes, background)."""
    w = n1 + 2
    mu = 0.0
    for a in range(na):
        off = shell_offset(act[a], n1)
        for l in range(n1):
            mu += theta[off + l] * J[a * w + l]
    mu += theta[theta.shape[0] - 1] * J[na * w]
    return mu


@njit(cache=True, inline="always")
def _compact_index(act, na, n1, P, cols):
    """Global parameter index of every compact column into cols; their number."""
    w = n1 + 2
    for a in range(na):
        off = shell_offset(act[a], n1)
        for k in range(w):
            cols[a * w + k] = off + k
    cols[na * w] = P - 1
    return na * w + 1


@njit(cache=True)
def loglike_kernel(ws, counts, theta, want, grad, hess, mu_out):
    """sum_g counts_g log mu_g (and its gradient / Fisher matrix); -inf if some mu_g <= 0.

    The per-group reference (one thread, every shell, the outer products one group at a time):
    the tests check the chunked kernels against it.

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
    spl = np.empty(ws.li.shape[0])
    act = np.arange(S)
    ll = 0.0
    for k in range(P):
        grad[k] = 0.0
        if want >= 2:
            for k2 in range(P):
                hess[k, k2] = 0.0
    for g in range(counts.shape[0]):
        _group_jacobian(ws, g, n1, act, S, J, spl, np.empty(0))  # every shell: the compact layout is theta's
        mu = _compact_mu(theta, act, S, n1, J)
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


@njit(cache=True, parallel=True)
def value_kernel(ws, counts, theta, mu_out, chunk):
    """sum_g counts_g log mu_g from the amplitude-contracted tables only; -inf if some mu_g <= 0.

    The same mu_g as :func:`loglike_kernel` (up to rounding: the contracted spline is the
    amplitude-weighted sum of the basis splines) at ``n + 1`` spline evaluations per shell and
    node instead of ``(n + 1)(n + 2) / 2 + 2 (n + 1)``, and only over the shells that reach the
    chunk (:func:`_chunk_shells`); with the summed table (``ws.total``, a value-only workspace)
    ``n + 1`` per node whatever the number of shells. Chunks of `chunk` groups run in parallel; their partial sums
    are added in chunk order (the same value on any number of threads).

    Parameters
    ----------
    ws : Workspace
    counts : ndarray, shape (n_groups,)
    theta : ndarray, shape (P,)
        Only its background (the last entry) is read; the amplitudes are in ``ws.cont``.
    mu_out : ndarray, shape (n_groups,) or (0,)
        Receives mu_g when not empty.
    chunk : int
        Groups per chunk.
    """
    S = ws.cont.shape[0]
    n1 = ws.pm.shape[1]
    bg = theta[theta.shape[0] - 1]
    G = counts.shape[0]
    nch = (G + chunk - 1) // chunk
    parts = np.zeros(nch)
    summed = ws.total.shape[0] > 0
    for ch in prange(nch):
        g0 = ch * chunk
        g1 = min(g0 + chunk, G)
        act = np.empty(S, dtype=np.int64)
        na = 0 if summed else _chunk_shells(ws, g0, g1, act)
        ll = 0.0
        for g in range(g0, g1):
            lam = 0.0
            for q in range(ws.K):
                e = g * ws.K + q
                i = ws.idx[e]
                if i < 0:
                    continue
                te = ws.t[e]
                if summed:  # all shells in one table
                    lam = _add_summed(ws, e, i, te, n1, lam)
                    continue
                for a in range(na):
                    j = act[a]
                    if i > ws.imax[j]:
                        continue
                    r, tt = _row(ws, j, i, te)
                    ctab = ws.cont[j, r]
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
                ll = -np.inf
            else:
                ll += c * math.log(mu)
        parts[ch] = ll
    total = 0.0
    for ch in range(nch):
        total += parts[ch]
    return total


@njit(cache=True, parallel=True)
def score_rows_kernel(ws, counts, theta, chunk, c0, c1, ll_parts, grad_parts, rows, cols, ncols, geo_parts):
    """Per chunk c0 .. c1 - 1 of `chunk` groups: sum_g c_g log mu_g, its gradient, the Fisher rows.

    Chunk ``ch`` (groups ``ch * chunk ..``) works over the shells that reach it
    (:func:`_chunk_shells`); its parameters, in ascending order, are ``cols[ch - c0, :nc]`` with
    ``nc = ncols[ch - c0]``. It writes ``ll_parts[ch - c0]`` (-inf if some mu_g <= 0),
    ``grad_parts[ch - c0] = sum_g (c_g / mu_g) J_g`` (all P entries) and
    ``rows[ch - c0, g, :nc] = sqrt(c_g) / mu_g J_g[cols]`` (zero for an empty group), so that the
    chunk's Fisher matrix ``sum_g c_g J_g J_g^T / mu_g^2`` is ``rows.T @ rows`` on those columns
    (one BLAS product, :meth:`sevi_lib.fit.points.PointSet.loglike`). If `geo_parts` (shape
    ``(c1 - c0, n_shells, 3)``) is not empty (``ws.cont`` with second derivatives),
    ``geo_parts[ch - c0, j]`` receives sum_g (c_g / mu_g) d2 mu_g / d(R R, R sigma, sigma sigma)
    of shell j (zero for a shell that does not reach the chunk): the geometry part of the
    curvature of the log-likelihood. The chunks run in parallel; what each computes does not
    depend on the thread.
    """
    S = ws.full.shape[0]
    P = theta.shape[0]
    n1 = amplitudes_per_shell(P, S)
    G = counts.shape[0]
    for ch in prange(c0, c1):
        b = ch - c0
        g0 = ch * chunk
        g1 = min(g0 + chunk, G)
        act = np.empty(S, dtype=np.int64)
        na = _chunk_shells(ws, g0, g1, act)
        cc = cols[b]
        nc = _compact_index(act, na, n1, P, cc)
        ncols[b] = nc
        J = np.empty(nc)
        v = np.empty(ws.li.shape[0])
        want_geo = geo_parts.shape[0] > 0
        sec = np.empty(3 * na if want_geo else 0)
        if want_geo:
            for j in range(S):
                for k in range(3):
                    geo_parts[b, j, k] = 0.0
        gp = grad_parts[b]
        for k in range(P):
            gp[k] = 0.0
        ll = 0.0
        for g in range(g0, g1):
            r = rows[b, g - g0]
            for k in range(nc):
                r[k] = 0.0
            c = counts[g]
            if c == 0.0 or ll == -np.inf:
                continue
            _group_jacobian(ws, g, n1, act, na, J, v, sec)
            mu = _compact_mu(theta, act, na, n1, J)
            if not mu > 0.0:
                ll = -np.inf
                continue
            ll += c * math.log(mu)
            w = c / mu
            f = math.sqrt(c) / mu
            for k in range(nc):
                gp[cc[k]] += w * J[k]
                r[k] = f * J[k]
            if want_geo:
                for a in range(na):
                    for k in range(3):
                        geo_parts[b, act[a], k] += w * sec[3 * a + k]
        ll_parts[b] = ll


@njit(cache=True)
def _cell_sums(ws, g0, g1, wgt, lo, B):
    """B[i - lo, p, m] = sum over the nodes of groups g0 .. g1 - 1 in table cell i of wgt_g t^(3 - p) P_2m.

    (t: the node's offset into its cell.) A spline is linear in its coefficients, so a weighted
    sum of table values over nodes is the table contracted with these sums; B is zeroed first.
    """
    n1 = ws.pm.shape[1]
    B[:] = 0.0
    for g in range(g0, g1):
        w = wgt[g - g0]
        if w == 0.0:
            continue
        for q in range(ws.K):
            e = g * ws.K + q
            i = ws.idx[e]
            if i < 0:
                continue
            te = ws.t[e]
            t2 = te * te
            t3 = t2 * te
            Bi = B[i - lo]
            for m in range(n1):
                u = w * ws.pm[e, m]
                Bi[0, m] += u * t3
                Bi[1, m] += u * t2
                Bi[2, m] += u * te
                Bi[3, m] += u


@njit(cache=True)
def _row_sums(ws, j, lo, hi, B, A):
    """The sums of :func:`_cell_sums` (cells lo .. hi) re-expanded per table row of shell j; first row.

    A row of ``2 ** shift[j]`` cells (inside the shell's fine start) is one cubic in the offset from
    the row's start, tt = t + u (u: the cell's start in the row), so its sums of tt^p are binomial
    combinations of the cells' sums of t^p. Rows ``r0 ..`` (r0 returned) go into A[0 ..], zeroed
    first; only cells up to the shell's edge ``imax[j]``.
    """
    n1 = B.shape[2]
    top = min(hi, ws.imax[j])
    r0, _ = _row(ws, j, lo, 0.0)
    r1, _ = _row(ws, j, top, 0.0)
    for r in range(r1 - r0 + 1):
        for p in range(4):
            for m in range(n1):
                A[r, p, m] = 0.0
    for i in range(lo, top + 1):
        r, u = _row(ws, j, i, 0.0)
        Ar = A[r - r0]
        Bi = B[i - lo]
        if u == 0.0:
            for p in range(4):
                for m in range(n1):
                    Ar[p, m] += Bi[p, m]
            continue
        u2 = u * u
        for m in range(n1):
            b0 = Bi[0, m]
            b1 = Bi[1, m]
            b2 = Bi[2, m]
            b3 = Bi[3, m]
            Ar[0, m] += b0 + 3.0 * u * b1 + 3.0 * u2 * b2 + u2 * u * b3
            Ar[1, m] += b1 + 2.0 * u * b2 + u2 * b3
            Ar[2, m] += b2 + u * b3
            Ar[3, m] += b3
    return r0, r1 - r0 + 1


@njit(cache=True, inline="always")
def _contract_pairs(tab, col0, Ar, n1, out, off):
    """out[off + l] += sum over powers p and m <= l of tab[p, col0 + pair(l, m)] Ar[p, m]."""
    for pw in range(4):
        p = col0
        for l in range(n1):  # pair_index order: l = 0, 1, ..; m = 0 .. l
            acc = 0.0
            for m in range(l + 1):
                acc += tab[pw, p] * Ar[pw, m]
                p += 1
            out[off + l] += acc


@njit(cache=True, inline="always")
def _contract(tab, col0, Ar, n1):
    """sum over powers p and m of tab[p, col0 + m] Ar[p, m]."""
    acc = 0.0
    for pw in range(4):
        for m in range(n1):
            acc += tab[pw, col0 + m] * Ar[pw, m]
    return acc


@njit(cache=True)
def _node_span(ws, g0, g1):
    """Smallest and largest table cell of the nodes of groups g0 .. g1 - 1 (1 << 62, -1 if none)."""
    lo = 1 << 62
    hi = -1
    for e in range(g0 * ws.K, g1 * ws.K):
        i = ws.idx[e]
        if i >= 0:
            lo = min(lo, i)
            hi = max(hi, i)
    return lo, hi


@njit(cache=True, parallel=True)
def score_kernel(ws, counts, theta, chunk, ll_parts, grad_parts, geo_parts):
    """Per chunk of `chunk` groups: sum_g c_g log mu_g and its gradient, without the groups' Jacobians.

    The same sums as :func:`score_rows_kernel` (up to rounding) at a cost per node that does not
    grow with the shells: mu_g comes from the summed table (``ws.total``, all shells in one table),
    and ``sum_g (c_g / mu_g) J_g`` is the tables contracted with the chunk's sums of ``(c_g
    scale_g / mu_g) t^p P_2m`` per table cell (:func:`_cell_sums`, 4 (n + 1) additions per node;
    :func:`_row_sums` per shell) instead of the (n + 1)(n + 2) / 2 + 2 (n + 1) spline evaluations
    of a Jacobian row per node and shell. Writes ``ll_parts[ch]`` (-inf if some mu_g <= 0),
    ``grad_parts[ch]`` (all P entries) and, if `geo_parts` (shape ``(n_chunks, n_shells, 3)``,
    ``ws.cont`` with second derivatives) is not empty, sum_g (c_g / mu_g) d2 mu_g / d(R R,
    R sigma, sigma sigma) of each shell. The chunks run in parallel; what each computes does not
    depend on the thread.
    """
    S = ws.full.shape[0]
    P = theta.shape[0]
    n1 = amplitudes_per_shell(P, S)
    K = ws.K
    G = counts.shape[0]
    nch = (G + chunk - 1) // chunk
    bg = theta[P - 1]
    want_geo = geo_parts.shape[0] > 0
    for ch in prange(nch):
        g0 = ch * chunk
        g1 = min(g0 + chunk, G)
        gp = grad_parts[ch]
        gp[:] = 0.0
        if want_geo:
            geo_parts[ch] = 0.0
        wgt = np.zeros(g1 - g0)
        ll = 0.0
        gb = 0.0
        for g in range(g0, g1):
            c = counts[g]
            if c == 0.0:
                continue
            lam = 0.0
            for q in range(K):
                e = g * K + q
                i = ws.idx[e]
                if i >= 0:
                    lam = _add_summed(ws, e, i, ws.t[e], n1, lam)
            sc = ws.scale[g]
            mu = sc * lam + K * sc * bg
            if not mu > 0.0:
                ll = -np.inf
                break
            ll += c * math.log(mu)
            w = c / mu
            gb += w * K * sc
            wgt[g - g0] = w * sc
        ll_parts[ch] = ll
        if ll == -np.inf:
            continue
        gp[P - 1] = gb
        lo, hi = _node_span(ws, g0, g1)
        if hi < 0:
            continue
        B = np.empty((hi - lo + 1, 4, n1))
        _cell_sums(ws, g0, g1, wgt, lo, B)
        A = np.empty((hi - lo + 1, 4, n1))
        for j in range(S):
            if ws.imax[j] < lo:
                continue
            r0, nr = _row_sums(ws, j, lo, hi, B, A)
            off = shell_offset(j, n1)
            for rr in range(nr):
                tab = ws.full[j, r0 + rr]
                ctab = ws.cont[j, r0 + rr]
                Ar = A[rr]
                _contract_pairs(tab, 0, Ar, n1, gp, off)
                gp[off + n1] += _contract(ctab, n1, Ar, n1)
                gp[off + n1 + 1] += _contract(ctab, 2 * n1, Ar, n1)
                if want_geo:
                    for k in range(3):
                        geo_parts[ch, j, k] += _contract(ctab, (3 + k) * n1, Ar, n1)


@njit(cache=True, parallel=True)
def jacobian_kernel(ws, theta, out):
    """Jacobian d mu_g / d theta of every group into out, shape (n_groups, P) (groups in parallel)."""
    S = ws.full.shape[0]
    P = theta.shape[0]
    n1 = amplitudes_per_shell(P, S)
    G = out.shape[0]
    nb = (G + 255) // 256
    for b in prange(nb):
        act = np.arange(S)
        v = np.empty(ws.li.shape[0])
        for g in range(b * 256, min((b + 1) * 256, G)):
            _group_jacobian(ws, g, n1, act, S, out[g], v, np.empty(0))


#: Fixed number of blocks of the curvature's parallel sum (the result does not depend on the threads).
CURVATURE_BLOCKS = 64


@njit(cache=True, parallel=True)
def curvature_kernel(ws, weight, theta, Q):
    """Q += sum_g weight_g d2 mu_g / d theta2 (the second-derivative part of the information).

    `ws` must hold the tables with second derivatives; Q, shape (P, P), is symmetrised. The
    groups (in radius order) are summed in :data:`CURVATURE_BLOCKS` fixed blocks in parallel, each
    as the tables contracted with its sums per table cell (:func:`_cell_sums`, :func:`_row_sums`:
    a cost per node that does not grow with the shells); the blocks are added in order (the same
    Q on any number of threads).
    """
    S = ws.full.shape[0]
    P = theta.shape[0]
    n1 = amplitudes_per_shell(P, S)
    npairs = ws.li.shape[0]
    G = weight.shape[0]
    nb = CURVATURE_BLOCKS
    size = (G + nb - 1) // nb
    parts = np.zeros((nb, P, P))
    for b in prange(nb):
        g0 = min(b * size, G)
        g1 = min(g0 + size, G)
        lo, hi = _node_span(ws, g0, g1)
        if hi < 0:
            continue
        wgt = np.empty(g1 - g0)
        for g in range(g0, g1):
            wgt[g - g0] = weight[g] * ws.scale[g]
        B = np.empty((hi - lo + 1, 4, n1))
        _cell_sums(ws, g0, g1, wgt, lo, B)
        A = np.empty((hi - lo + 1, 4, n1))
        dR = np.empty(n1)
        ds = np.empty(n1)
        Qb = parts[b]
        for j in range(S):
            if ws.imax[j] < lo:
                continue
            r0, nr = _row_sums(ws, j, lo, hi, B, A)
            off = shell_offset(j, n1)
            dR[:] = 0.0
            ds[:] = 0.0
            for rr in range(nr):
                tab = ws.full[j, r0 + rr]
                ctab = ws.cont[j, r0 + rr]
                Ar = A[rr]
                _contract_pairs(tab, npairs, Ar, n1, dR, 0)
                _contract_pairs(tab, 2 * npairs, Ar, n1, ds, 0)
                Qb[off + n1, off + n1] += _contract(ctab, 3 * n1, Ar, n1)
                Qb[off + n1, off + n1 + 1] += _contract(ctab, 4 * n1, Ar, n1)
                Qb[off + n1 + 1, off + n1 + 1] += _contract(ctab, 5 * n1, Ar, n1)
            for l in range(n1):
                Qb[off + l, off + n1] += dR[l]
                Qb[off + l, off + n1 + 1] += ds[l]
    for b in range(nb):
        for k in range(P):
            for k2 in range(k, P):
                Q[k, k2] += parts[b, k, k2]
    for k in range(P):
        for k2 in range(k):
            Q[k, k2] = Q[k2, k]


@njit(cache=True, inline="always")
def _dspl(tab, col, t):
    return (3.0 * tab[0, col] * t + 2.0 * tab[1, col]) * t + tab[2, col]


@njit(cache=True, parallel=True)
def shift_gradient_kernel(ws, c, x, z, out):
    """d mu_g / d(x0, z0) of every group into out, shape (n_groups, 2) (groups in parallel).

    The shells sit at the centre (x0, z0), the nodes at (x, z) about it, so d / d x0 = -d / d x.
    Per node, d lambda / d rho comes from the derivative of the contracted value tables
    (``ws.cont``, columns 0 .. n) and d lambda / d c from P'_2m(c) of the node's screen angle `c`
    (made per node by the recurrence of :func:`legendre_rows`, the same values, instead of an
    array as large as ``ws.pm``); the uniform background does not move with the centre.
    """
    S = ws.cont.shape[0]
    n1 = ws.pm.shape[1]
    n = n1 - 1
    L = 2 * n
    G = out.shape[0]
    nb = (G + 255) // 256
    for b in prange(nb):
        pl = np.empty(L + 1)
        dl = np.empty(L + 1)
        pmr = np.empty((1, n1))
        dpm = np.empty((1, n1))
        for g in range(b * 256, min((b + 1) * 256, G)):
            _shift_gradient_group(ws, c, x, z, out, g, S, n1, n, L, pl, dl, pmr, dpm)


@njit(cache=True, inline="always")
def _shift_gradient_group(ws, c, x, z, out, g, S, n1, n, L, pl, dl, pmr, dpm):
    """Group g of :func:`shift_gradient_kernel` (pl, dl, pmr, dpm: scratch)."""
    gx = 0.0
    gz = 0.0
    for q in range(ws.K):
        e = g * ws.K + q
        i = ws.idx[e]
        if i < 0:
            continue
        _legendre_row(c[e], n, L, True, pl, dl, pmr, dpm, 0)
        te = ws.t[e]
        drho = 0.0
        dc = 0.0
        for j in range(S):
            if i > ws.imax[j]:
                continue
            r, tt = _row(ws, j, i, te)
            ctab = ws.cont[j, r]
            for m in range(n1):
                drho += _dspl(ctab, m, tt) * ws.pm[e, m]
                dc += _spl(ctab, m, tt) * dpm[0, m]
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


@njit(cache=True, parallel=True)
def legendre_rows(c, n, pm, dpm):
    """Rows ``[1, P_2, ..., P_2n](c_e)`` into pm and their derivatives P'_2m into dpm (if not empty).

    The same recurrence, in the same floating-point order, as
    :func:`sevi_lib.core.angular.legendre_even` (identical values), one point at a time (points
    in parallel, in blocks of 4096).
    """
    L = 2 * n
    want_d = dpm.shape[0] > 0
    N = c.shape[0]
    nb = (N + 4095) // 4096
    for b in prange(nb):
        p = np.empty(L + 1)
        d = np.empty(L + 1)
        for e in range(b * 4096, min((b + 1) * 4096, N)):
            _legendre_row(c[e], n, L, want_d, p, d, pm, dpm, e)


@njit(cache=True, inline="always")
def _legendre_row(ce, n, L, want_d, p, d, pm, dpm, e):
    """Row e of :func:`legendre_rows` (p, d: scratch of L + 1 values)."""
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


@njit(cache=True, parallel=True)
def moments_grid(rho, R, s, nk, nd, xg, wg, window, out):
    """Radial moments M_k and their (R, sigma) derivatives at the grid radii `rho` into out[i, d, k].

    The radii of :func:`sevi_lib.fit.projection.radial_moments` (the same :func:`_moments_row`,
    so identical values) taken in parallel.

    Parameters
    ----------
    rho : ndarray, shape (n_grid,)
    R, s : float
        Shell radius and width.
    nk : int
        Moments k = 0 .. nk - 1 (orders 0, 2, .., 2 nk - 2).
    nd : {1, 3, 6}
        Derivative slots (:data:`sevi_lib.fit.projection.N_DERIV`).
    xg, wg : ndarray
        Gauss-Legendre nodes and weights on [-1, 1].
    window : float
        Half-width of the integration window in widths.
    out : ndarray, shape (n_grid, nd, nk)
    """
    nq = xg.shape[0]
    L = 2 * nk - 2
    norm = 2.0 / (math.pi * math.sqrt(2.0 * math.pi) * s)
    lo_shell = max(R - window * s, 1e-12)
    hi = R + window * s
    N = rho.shape[0]
    nb = (N + 63) // 64
    for b in prange(nb):
        fac = np.empty((6, nq))
        x = np.empty(nq)
        pl = np.empty((L + 1, nq))
        for i in range(b * 64, min((b + 1) * 64, N)):
            _moments_row(rho[i], R, s, nk, nd, xg, wg, norm, lo_shell, hi, fac, x, pl, out[i])


@njit(cache=True, inline="always")
def _moments_row(p, R, s, nk, nd, xg, wg, norm, lo_shell, hi, fac, x, pl, out):
    """The radial moments and their derivatives at one radius `p` into out[d, k] (fac, x, pl:
    scratch; the quadrature nodes taken together: the Legendre recurrence over all nodes at once).
    Shared by :func:`moments_grid` and :func:`sevi_lib.fit.projection.radial_moments`."""
    nq = xg.shape[0]
    L = 2 * nk - 2
    for d in range(nd):
        for k in range(nk):
            out[d, k] = 0.0
    if p < hi:
        lo = max(p, lo_shell)
        w_lo = math.sqrt(lo - p)
        w_hi = math.sqrt(hi - p)
        mid = 0.5 * (w_hi + w_lo)
        half = 0.5 * (w_hi - w_lo)
        for j in range(nq):
            w = mid + half * xg[j]
            r = p + w * w
            u = (r - R) / s
            base = wg[j] * half * norm * math.exp(-0.5 * u * u) / (r * math.sqrt(r + p))
            fac[0, j] = base
            if nd > 1:
                fac[1, j] = base * u / s
                fac[2, j] = base * (u * u - 1.0) / s
            if nd > 3:
                fac[3, j] = base * (u * u - 1.0) / (s * s)
                fac[4, j] = base * (u * u * u - 3.0 * u) / (s * s)
                fac[5, j] = base * (u ** 4 - 5.0 * u * u + 2.0) / (s * s)
            x[j] = p / r
            pl[0, j] = 1.0
        if L >= 1:
            for j in range(nq):
                pl[1, j] = x[j]
        for l in range(1, L):
            for j in range(nq):
                pl[l + 1, j] = ((2 * l + 1) * x[j] * pl[l, j] - l * pl[l - 1, j]) / (l + 1)
        for j in range(nq):
            for k in range(nk):
                v = pl[2 * k, j]
                for d in range(nd):
                    out[d, k] += fac[d, j] * v


@njit(cache=True)
def sum_tables(cont, imax, fine, shift, h, n1, out):
    """The contracted value tables of all shells summed per fine cell into out, shape (cells, 4, n1).

    A row of ``2 ** shift[j]`` cells inside a shell's fine start is one cubic in the offset
    from the row's start; cell i of it is that cubic re-expanded about the cell's start (offset u:
    a' = a, b' = 3 a u + b, c' = (3 a u + 2 b) u + c, d' = ((a u + b) u + c) u + d), so the sum is a
    cubic per cell, the same values as the shells' own tables up to rounding. Cells beyond a
    shell's ``imax`` get nothing from it (zero there).
    """
    cells = out.shape[0]
    for i in range(cells):
        for k in range(4):
            for m in range(n1):
                out[i, k, m] = 0.0
    for j in range(cont.shape[0]):
        f = fine[j]
        p = shift[j]
        for i in range(min(imax[j] + 1, cells)):
            if i >= f:
                r = (f >> p) + i - f
                u = 0.0
            else:
                r = i >> p
                u = (i & ((1 << p) - 1)) * h
            for m in range(n1):
                a = cont[j, r, 0, m]
                b = cont[j, r, 1, m]
                c = cont[j, r, 2, m]
                d = cont[j, r, 3, m]
                out[i, 0, m] += a
                out[i, 1, m] += 3.0 * a * u + b
                out[i, 2, m] += (3.0 * a * u + 2.0 * b) * u + c
                out[i, 3, m] += ((a * u + b) * u + c) * u + d

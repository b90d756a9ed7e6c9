"""The spot model of the mixture fit and its Levenberg-Marquardt solver (numba kernels).

The model of a blob is a sum of K spots of the published form, component k with parameters
``comp[k] = (a, b, A, s, rho)``:
``A exp(-[(x - a)^2 + (z - b)^2 + 2 rho (x - a)(z - b)] / (2 s^2))``, where patch pixel (i, j)
samples the model at ``(i + off, j + off)`` (``off`` = mean sub-grid offset). Width and
correlation are held near their distributions (``s ~ N(sigma_px, sigma_sd_px^2)``,
``rho ~ N(0, rho_sd^2)``) by Gaussian penalty terms; saturated pixels (255) are censored: they add
a residual only while the model is below 255.

A component lives on the disc of radius :data:`WINDOW_SIGMAS` s around it, cut to the blob's row
spans, and only on the :data:`STRIDE` grid the fit uses; values, Jacobian and the Hessian blocks
are stored compactly on that grid, the Gaussian factors come from recurrences (a few exponentials
per component, one multiplication per pixel). :func:`_lm` is Levenberg-Marquardt on all 5K
parameters (or the active ones); only overlapping components couple, so with the components
ordered by x (:func:`_order_by_x`) the normal matrix is nearly banded and is factored within its
envelope (:func:`_cholesky_env`).

The kernels take their buffers as one :data:`FitWorkspace` namedtuple (built by
:func:`fit_workspace`, one per detection thread) and the settings as one
:data:`~sevi_lib.detect.settings.KernelParams` namedtuple. The phases that decide how many
components a blob holds are in :mod:`sevi_lib.detect.spotfit`.
"""

from collections import namedtuple

import numpy as np
from numba import njit

#: The fit uses the pixels of the patch whose coordinates are both multiples of STRIDE (spots are
#: 7.7 px wide and noise-free up to rounding, so a quarter of the pixels determine them as well;
#: the fit costs a quarter).
STRIDE = 2

#: Parameters per component: a, b (patch pixel coordinates), A (peak), s (width, px), rho.
NPAR = 5

#: A removal trial gives up when this many more steps of its last decrease would not make the removal pay.
ABORT_STEPS = 4.0

#: Half-width of a component's evaluation window in widths (exp(-3.3^2 / 2) * 255 < 1.2 counts).
WINDOW_SIGMAS = 3.3

#: Weight of the shape priors, in counts of pixel residual per standard deviation.
PRIOR_WEIGHT = 2.0

#: A component's centre stays within this many pixels of its blob's rows and row spans
#: (:func:`_inside_blob`).
BLOB_SLACK = 1.0

#: Bounds of the fitted width (in units of the nominal width) and correlation.
S_MIN = 0.6
S_MAX = 1.6
RHO_MAX = 0.6




@njit(cache=True, nogil=True)
def _up(i):
    """Smallest multiple of STRIDE >= i (i >= 0)."""
    return (i + STRIDE - 1) // STRIDE * STRIDE


@njit(cache=True, nogil=True)
def _nstride(i0, i1):
    """Number of STRIDE-grid pixels in [i0, i1) for i0 on the grid."""
    return max((i1 - i0 + STRIDE - 1) // STRIDE, 0)


@njit(cache=True, nogil=True)
def _blob_spans(D, nbi, nbj, bsp, Dc):
    """Per STRIDE-grid row u of the patch, the grid columns [bsp[u, 0], bsp[u, 1]) spanning the
    blob; Dc[u, v] = D[STRIDE u, STRIDE v] (the patch on the grid, compact) on those spans."""
    for u in range(_nstride(0, nbi)):
        lo = -1
        hi = 0
        for v in range(_nstride(0, nbj)):
            d = D[STRIDE * u, STRIDE * v]
            Dc[u, v] = d
            if d >= 0.0:
                if lo < 0:
                    lo = v
                hi = v + 1
        bsp[u, 0] = max(lo, 0)
        bsp[u, 1] = hi


@njit(cache=True, nogil=True)
def _inside_blob(bsp, nbi, nbj, a, b):
    """(a, b) moved into the blob: a into the patch's rows, b into its row's span (BLOB_SLACK px).

    A spot whose centre lies outside its blob is impossible (a spot of peak >= ``peak_min`` lights
    pixels >= threshold for several pixels around its centre). Without this bound a component
    could park outside the blob, where the fit has no pixels, with an unbounded amplitude whose
    light falls only on censored (saturated) pixels: a stack of hundreds of electrons at one
    position (0.6 % of the electrons of a sharply peaked shell at 40 electrons per frame).
    """
    a = min(max(a, -BLOB_SLACK), nbi - 1.0 + BLOB_SLACK)
    nu = _nstride(0, nbi)
    u0 = min(max(int(a) // STRIDE, 0), nu - 1)
    for d in range(nu):  # the nearest STRIDE-grid row that holds blob pixels
        for u in (u0 - d, u0 + d):
            if 0 <= u < nu and bsp[u, 1] > bsp[u, 0]:
                lo = STRIDE * bsp[u, 0] - BLOB_SLACK
                hi = STRIDE * (bsp[u, 1] - 1) + STRIDE - 1.0 + BLOB_SLACK
                return a, min(max(b, lo), hi)
    return a, min(max(b, -BLOB_SLACK), nbj - 1.0 + BLOB_SLACK)


@njit(cache=True, nogil=True)
def _eval(comp, ak, na, nbi, nbj, off, win, E, tz, bsp, csp):
    """Windows and unit-amplitude spot values of the components ak[:na] on the STRIDE grid.

    ``win[k] = (i0, i1, j0, j1)`` (i0, j0 on the grid) bounds the square of half-width
    ``WINDOW_SIGMAS * s``; within it a component lives on the disc of that radius, cut to the
    blob's row spans ``bsp``: on window row u (pixel row ``i0 + STRIDE u``) on columns
    ``csp[k, u, 0] <= v < csp[k, u, 1]``, where ``E[k, u, v]`` is its value at pixel
    ``(i0 + STRIDE u, j0 + STRIDE v)`` (compact: only grid pixels are stored).
    """
    for c in range(na):
        k = ak[c]
        a = comp[k, 0]
        b = comp[k, 1]
        s = comp[k, 3]
        rho = comp[k, 4]
        half = WINDOW_SIGMAS * s
        i0 = _up(max(int(np.floor(a - half)), 0))
        i1 = max(min(int(np.ceil(a + half)) + 1, nbi), i0)
        j0 = _up(max(int(np.floor(b - half)), 0))
        j1 = max(min(int(np.ceil(b + half)) + 1, nbj), j0)
        win[k, 0] = i0
        win[k, 1] = i1
        win[k, 2] = j0
        win[k, 3] = j1
        nu = _nstride(i0, i1)
        nv = _nstride(j0, j1)
        uo = i0 // STRIDE
        vo = j0 // STRIDE
        c2 = 0.5 / (s * s)
        cr = -rho / (s * s)
        # Gaussian factors along a row or column by recurrences (exp(-(d + S)^2 c) =
        # exp(-d^2 c) * ratio, the ratio itself geometric): a few exponentials per component
        dz0 = j0 + off - b
        t = np.exp(-dz0 * dz0 * c2)
        tr = np.exp(-(2.0 * dz0 * STRIDE + STRIDE * STRIDE) * c2)
        trr = np.exp(-2.0 * STRIDE * STRIDE * c2)
        for v in range(nv):
            tz[v] = t
            t *= tr
            tr *= trr
        dx = i0 + off - a
        ex = np.exp(-dx * dx * c2)
        xr = np.exp(-(2.0 * dx * STRIDE + STRIDE * STRIDE) * c2)
        q = np.exp(cr * dx * STRIDE)
        qq = np.exp(cr * STRIDE * STRIDE)
        g0 = np.exp(cr * dx * dz0)
        gq = np.exp(cr * STRIDE * dz0)
        h2 = half * half
        bc = b - off - j0
        for u in range(nu):
            r2 = h2 - dx * dx
            lo = 0
            hi = 0
            if r2 > 0.0:
                hw = np.sqrt(r2)
                lo = max(int(np.ceil((bc - hw) / STRIDE)), 0, bsp[uo + u, 0] - vo)
                hi = min(int(np.floor((bc + hw) / STRIDE)) + 1, nv, bsp[uo + u, 1] - vo)
                hi = max(hi, lo)
            csp[k, u, 0] = lo
            csp[k, u, 1] = hi
            if hi > lo:
                gg = g0
                for v in range(lo):
                    gg *= q
                for v in range(lo, hi):
                    E[k, u, v] = ex * tz[v] * gg
                    gg *= q
            dx += STRIDE
            ex *= xr
            xr *= trr
            q *= qq
            g0 *= gq


@njit(cache=True, nogil=True)
def _model(comp, K, win, E, M, nbi, nbj, csp, bsp):
    """The model on the blob's row spans of the STRIDE grid (the only pixels ever read), compact
    like Rc: M[u, v] is pixel (STRIDE u, STRIDE v)."""
    for u in range(_nstride(0, nbi)):
        for v in range(bsp[u, 0], bsp[u, 1]):
            M[u, v] = 0.0
    for k in range(K):
        A = comp[k, 2]
        uo = win[k, 0] // STRIDE
        vo = win[k, 2] // STRIDE
        for u in range(_nstride(win[k, 0], win[k, 1])):
            lo = csp[k, u, 0]
            hi = csp[k, u, 1]
            if hi <= lo:
                continue
            Mr = M[uo + u, vo + lo:vo + hi]
            Er = E[k, u, lo:hi]
            for v in range(hi - lo):
                Mr[v] += A * Er[v]


@njit(cache=True, nogil=True)
def _sse(D, M, nbi, nbj, comp, K, par, bsp):
    """Censored squared residual plus the shape penalties (width and correlation priors of `par`);
    D and M compact on the STRIDE grid (``ws.Dc``, ``ws.M``)."""
    s = 0.0
    for u in range(_nstride(0, nbi)):
        for v in range(bsp[u, 0], bsp[u, 1]):
            d = D[u, v]
            if d < 0.0:
                continue
            if d >= 255.0:
                r = 255.0 - M[u, v]
                if r < 0.0:
                    r = 0.0
            else:
                r = d - M[u, v]
            s += r * r
    ws = PRIOR_WEIGHT / par.sigma_sd_px
    wr = PRIOR_WEIGHT / par.rho_sd
    for k in range(K):
        s += (ws * (comp[k, 3] - par.sigma_px)) ** 2 + (wr * comp[k, 4]) ** 2
    return s


@njit(cache=True, nogil=True)
def _residual(D, M, nbi, nbj, Rc, Wc, bsp):
    """Censored residual Rc and weight Wc (0: pixel outside the blob, or saturated and
    the model above 255; else 1) on the STRIDE grid, compact like D and M: Rc[u, v] is pixel (STRIDE u, STRIDE v)
    (on the blob's row spans only: the components' windows are cut to them)."""
    for u in range(_nstride(0, nbi)):
        for v in range(bsp[u, 0], bsp[u, 1]):
            d = D[u, v]
            m = M[u, v]
            w = 1.0
            if d < 0.0:
                w = 0.0
                r = 0.0
            elif d >= 255.0:
                if m >= 255.0:
                    w = 0.0
                    r = 0.0
                else:
                    r = 255.0 - m
            else:
                r = d - m
            Rc[u, v] = r
            Wc[u, v] = w


@njit(cache=True, nogil=True)
def _jacobian(comp, ak, na, win, E, off, Wc, J, csp):
    """Weighted derivatives of the model of each component ak[:na] over its window: J[k, p, u, v]
    (parameter p; grid as E, so a window row of one parameter is contiguous)."""
    for c in range(na):
        k = ak[c]
        a = comp[k, 0]
        b = comp[k, 1]
        A = comp[k, 2]
        s = comp[k, 3]
        rho = comp[k, 4]
        is2 = 1.0 / (s * s)
        is3 = is2 / s
        i0 = win[k, 0]
        j0 = win[k, 2]
        uo = i0 // STRIDE
        vo = j0 // STRIDE
        for u in range(_nstride(i0, win[k, 1])):
            dx = i0 + STRIDE * u + off - a
            lo = csp[k, u, 0]
            hi = csp[k, u, 1]
            if hi <= lo:
                continue
            Er = E[k, u, lo:hi]
            Wr = Wc[uo + u, vo + lo:vo + hi]
            J0 = J[k, 0, u, lo:hi]
            J1 = J[k, 1, u, lo:hi]
            J2 = J[k, 2, u, lo:hi]
            J3 = J[k, 3, u, lo:hi]
            J4 = J[k, 4, u, lo:hi]
            for v in range(hi - lo):
                dz = j0 + STRIDE * (lo + v) + off - b
                e = Er[v] * Wr[v]
                Ae = A * e
                J0[v] = Ae * (dx + rho * dz) * is2
                J1[v] = Ae * (dz + rho * dx) * is2
                J2[v] = e
                J3[v] = Ae * (dx * dx + dz * dz + 2.0 * rho * dx * dz) * is3
                J4[v] = -Ae * dx * dz * is2


@njit(cache=True, nogil=True, fastmath=True)
def _pair_block(J, csp, k, uk, vk, l, ul, vl, nu, H, ok, ol):
    """H[ok:ok+5, ol:ol+5] (and its transpose) += J[k]^T J[l] over the rows u < nu of their overlap
    (window rows uk + u of k, ul + u of l; columns v of the overlap are vk + v of k, vl + v of l), k != l.

    The 25 sums run over contiguous rows of J (one per parameter), so the loop vectorizes."""
    a00, a01, a02, a03, a04 = 0.0, 0.0, 0.0, 0.0, 0.0
    a10, a11, a12, a13, a14 = 0.0, 0.0, 0.0, 0.0, 0.0
    a20, a21, a22, a23, a24 = 0.0, 0.0, 0.0, 0.0, 0.0
    a30, a31, a32, a33, a34 = 0.0, 0.0, 0.0, 0.0, 0.0
    a40, a41, a42, a43, a44 = 0.0, 0.0, 0.0, 0.0, 0.0
    for u in range(nu):
        lo = max(csp[k, uk + u, 0] - vk, csp[l, ul + u, 0] - vl)
        hi = min(csp[k, uk + u, 1] - vk, csp[l, ul + u, 1] - vl)
        if hi <= lo:
            continue
        X0 = J[k, 0, uk + u, vk + lo:vk + hi]
        X1 = J[k, 1, uk + u, vk + lo:vk + hi]
        X2 = J[k, 2, uk + u, vk + lo:vk + hi]
        X3 = J[k, 3, uk + u, vk + lo:vk + hi]
        X4 = J[k, 4, uk + u, vk + lo:vk + hi]
        Y0 = J[l, 0, ul + u, vl + lo:vl + hi]
        Y1 = J[l, 1, ul + u, vl + lo:vl + hi]
        Y2 = J[l, 2, ul + u, vl + lo:vl + hi]
        Y3 = J[l, 3, ul + u, vl + lo:vl + hi]
        Y4 = J[l, 4, ul + u, vl + lo:vl + hi]
        for v in range(hi - lo):
            x0 = X0[v]
            x1 = X1[v]
            x2 = X2[v]
            x3 = X3[v]
            x4 = X4[v]
            y0 = Y0[v]
            y1 = Y1[v]
            y2 = Y2[v]
            y3 = Y3[v]
            y4 = Y4[v]
            a00 += x0 * y0
            a01 += x0 * y1
            a02 += x0 * y2
            a03 += x0 * y3
            a04 += x0 * y4
            a10 += x1 * y0
            a11 += x1 * y1
            a12 += x1 * y2
            a13 += x1 * y3
            a14 += x1 * y4
            a20 += x2 * y0
            a21 += x2 * y1
            a22 += x2 * y2
            a23 += x2 * y3
            a24 += x2 * y4
            a30 += x3 * y0
            a31 += x3 * y1
            a32 += x3 * y2
            a33 += x3 * y3
            a34 += x3 * y4
            a40 += x4 * y0
            a41 += x4 * y1
            a42 += x4 * y2
            a43 += x4 * y3
            a44 += x4 * y4
    H[ok + 0, ol + 0] += a00
    H[ol + 0, ok + 0] += a00
    H[ok + 0, ol + 1] += a01
    H[ol + 1, ok + 0] += a01
    H[ok + 0, ol + 2] += a02
    H[ol + 2, ok + 0] += a02
    H[ok + 0, ol + 3] += a03
    H[ol + 3, ok + 0] += a03
    H[ok + 0, ol + 4] += a04
    H[ol + 4, ok + 0] += a04
    H[ok + 1, ol + 0] += a10
    H[ol + 0, ok + 1] += a10
    H[ok + 1, ol + 1] += a11
    H[ol + 1, ok + 1] += a11
    H[ok + 1, ol + 2] += a12
    H[ol + 2, ok + 1] += a12
    H[ok + 1, ol + 3] += a13
    H[ol + 3, ok + 1] += a13
    H[ok + 1, ol + 4] += a14
    H[ol + 4, ok + 1] += a14
    H[ok + 2, ol + 0] += a20
    H[ol + 0, ok + 2] += a20
    H[ok + 2, ol + 1] += a21
    H[ol + 1, ok + 2] += a21
    H[ok + 2, ol + 2] += a22
    H[ol + 2, ok + 2] += a22
    H[ok + 2, ol + 3] += a23
    H[ol + 3, ok + 2] += a23
    H[ok + 2, ol + 4] += a24
    H[ol + 4, ok + 2] += a24
    H[ok + 3, ol + 0] += a30
    H[ol + 0, ok + 3] += a30
    H[ok + 3, ol + 1] += a31
    H[ol + 1, ok + 3] += a31
    H[ok + 3, ol + 2] += a32
    H[ol + 2, ok + 3] += a32
    H[ok + 3, ol + 3] += a33
    H[ol + 3, ok + 3] += a33
    H[ok + 3, ol + 4] += a34
    H[ol + 4, ok + 3] += a34
    H[ok + 4, ol + 0] += a40
    H[ol + 0, ok + 4] += a40
    H[ok + 4, ol + 1] += a41
    H[ol + 1, ok + 4] += a41
    H[ok + 4, ol + 2] += a42
    H[ol + 2, ok + 4] += a42
    H[ok + 4, ol + 3] += a43
    H[ol + 3, ok + 4] += a43
    H[ok + 4, ol + 4] += a44
    H[ol + 4, ok + 4] += a44


@njit(cache=True, nogil=True, fastmath=True)
def _diag_block(J, Rc, csp, k, uo, vo, nu, H, g, o):
    """H[o:o+5, o:o+5] += J[k]^T J[k] and g[o:o+5] += J[k]^T r over component k's window
    (its rows u < nu; window pixel (u, v) is Rc[uo + u, vo + v]); contiguous rows, as :func:`_pair_block`."""
    a00, a01, a02, a03, a04, b0 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    a11, a12, a13, a14, b1 = 0.0, 0.0, 0.0, 0.0, 0.0
    a22, a23, a24, b2 = 0.0, 0.0, 0.0, 0.0
    a33, a34, b3 = 0.0, 0.0, 0.0
    a44, b4 = 0.0, 0.0
    for u in range(nu):
        lo = csp[k, u, 0]
        hi = csp[k, u, 1]
        if hi <= lo:
            continue
        X0 = J[k, 0, u, lo:hi]
        X1 = J[k, 1, u, lo:hi]
        X2 = J[k, 2, u, lo:hi]
        X3 = J[k, 3, u, lo:hi]
        X4 = J[k, 4, u, lo:hi]
        Rr = Rc[uo + u, vo + lo:vo + hi]
        for v in range(hi - lo):
            r = Rr[v]
            x0 = X0[v]
            x1 = X1[v]
            x2 = X2[v]
            x3 = X3[v]
            x4 = X4[v]
            b0 += x0 * r
            a00 += x0 * x0
            a01 += x0 * x1
            a02 += x0 * x2
            a03 += x0 * x3
            a04 += x0 * x4
            b1 += x1 * r
            a11 += x1 * x1
            a12 += x1 * x2
            a13 += x1 * x3
            a14 += x1 * x4
            b2 += x2 * r
            a22 += x2 * x2
            a23 += x2 * x3
            a24 += x2 * x4
            b3 += x3 * r
            a33 += x3 * x3
            a34 += x3 * x4
            b4 += x4 * r
            a44 += x4 * x4
    g[o + 0] += b0
    H[o + 0, o + 0] += a00
    H[o + 0, o + 1] += a01
    H[o + 1, o + 0] += a01
    H[o + 0, o + 2] += a02
    H[o + 2, o + 0] += a02
    H[o + 0, o + 3] += a03
    H[o + 3, o + 0] += a03
    H[o + 0, o + 4] += a04
    H[o + 4, o + 0] += a04
    g[o + 1] += b1
    H[o + 1, o + 1] += a11
    H[o + 1, o + 2] += a12
    H[o + 2, o + 1] += a12
    H[o + 1, o + 3] += a13
    H[o + 3, o + 1] += a13
    H[o + 1, o + 4] += a14
    H[o + 4, o + 1] += a14
    g[o + 2] += b2
    H[o + 2, o + 2] += a22
    H[o + 2, o + 3] += a23
    H[o + 3, o + 2] += a23
    H[o + 2, o + 4] += a24
    H[o + 4, o + 2] += a24
    g[o + 3] += b3
    H[o + 3, o + 3] += a33
    H[o + 3, o + 4] += a34
    H[o + 4, o + 3] += a34
    g[o + 4] += b4
    H[o + 4, o + 4] += a44


@njit(cache=True, nogil=True)
def _cholesky_solve(H, g, n, out):
    """Solve H x = g for the leading n x n block of SPD H (H overwritten); False if singular."""
    for j in range(n):
        s = H[j, j]
        for k in range(j):
            s -= H[j, k] * H[j, k]
        if s <= 1e-300:
            return False
        d = np.sqrt(s)
        H[j, j] = d
        for i in range(j + 1, n):
            t = H[i, j]
            for k in range(j):
                t -= H[i, k] * H[j, k]
            H[i, j] = t / d
    for i in range(n):
        t = g[i]
        for k in range(i):
            t -= H[i, k] * out[k]
        out[i] = t / H[i, i]
    for i in range(n - 1, -1, -1):
        t = out[i]
        for k in range(i + 1, n):
            t -= H[k, i] * out[k]
        out[i] = t / H[i, i]
    return True


@njit(cache=True, nogil=True)
def _cholesky_env(H, g, n, out, fr):
    """Solve H x = g like :func:`_cholesky_solve` for H whose row i is zero left of column fr[i]
    (its envelope, which the factor keeps): the work is that of the envelope, not of n^3."""
    for j in range(n):
        fj = fr[j]
        s = H[j, j]
        for k in range(fj, j):
            s -= H[j, k] * H[j, k]
        if s <= 1e-300:
            return False
        d = np.sqrt(s)
        H[j, j] = d
        for i in range(j + 1, n):
            fi = fr[i]
            if fi > j:
                continue
            t = H[i, j]
            for k in range(max(fi, fj), j):
                t -= H[i, k] * H[j, k]
            H[i, j] = t / d
    for i in range(n):
        t = g[i]
        for k in range(fr[i], i):
            t -= H[i, k] * out[k]
        out[i] = t / H[i, i]
    for i in range(n - 1, -1, -1):
        t = out[i]
        for k in range(i + 1, n):
            if fr[k] <= i:
                t -= H[k, i] * out[k]
        out[i] = t / H[i, i]
    return True


#: Buffers of the mixture fit (one per detection thread), built by :func:`fit_workspace`; the
#: kernels take them as one namedtuple. D: the patch (-1 outside the blob); Dc, M: the patch and
#: the model on the STRIDE grid, compact (Dc[u, v] is D[STRIDE u, STRIDE v]); R: the
#: residual during growth, a copy of the components during removal trials; comp, trial:
#: components (a, b, A, s, rho); flag: their :data:`FREE` / :data:`SETTLED` / :data:`GROUP`
#: state; win, twin: their windows; E, J: their values and weighted Jacobians on the STRIDE grid
#: (J[k, p, u, v]: one contiguous row per parameter);
#: tz: row factors; H, Hc, g, step: the normal equations; cand: residual peaks, then electrons;
#: Rc, Wc: compact residual and weights; bsp, csp: the blob's and the components' row spans;
#: perm, fb, fr, gp, sp: the normal equations ordered by x, their envelope and solution.
FitWorkspace = namedtuple(
    "FitWorkspace",
    "D Dc M R comp flag trial win twin E J tz H Hc g step cand Rc Wc bsp csp perm fb fr gp sp",
)

#: Component flags (``ws.flag[k]``). FREE: may still be split (growth) or must still earn its
#: place (removal); SETTLED: split or merged in this growth, or kept by a removal trial, so not
#: tried again; GROUP: one of the n components a component with the light of n spots became
#: (counts as one electron even when fitted below ``min_amplitude``).
FREE = 0.0
SETTLED = 1.0
GROUP = 2.0


def fit_workspace(n, kmax, sigma_max=8.0):
    """Buffers of :func:`decompose_blob` for patches up to (n, n) pixels and `kmax` components.

    Parameters
    ----------
    n : int
        Largest patch side (pixels).
    kmax : int
        Most components (``DetectorParams.max_per_blob``).
    sigma_max : float
        Largest nominal spot width (pixels) the windows must hold.

    Returns
    -------
    FitWorkspace
    """
    L = int(2 * WINDOW_SIGMAS * S_MAX * sigma_max) + 4
    Lc = L // STRIDE + 2
    nc = n // STRIDE + 1
    k1 = kmax + 1
    H = np.zeros((NPAR * k1, NPAR * k1), dtype=np.float64)
    return FitWorkspace(
        D=np.empty((n, n), dtype=np.float64),
        Dc=np.empty((nc, nc), dtype=np.float64),
        M=np.empty((nc, nc), dtype=np.float64),
        R=np.empty((n, n), dtype=np.float64),
        comp=np.zeros((k1, NPAR), dtype=np.float64),
        flag=np.zeros(k1, dtype=np.float64),
        trial=np.zeros((k1, NPAR), dtype=np.float64),
        win=np.zeros((k1, 4), dtype=np.int64),
        twin=np.zeros((k1, 4), dtype=np.int64),
        E=np.zeros((k1, Lc, Lc), dtype=np.float64),
        J=np.zeros((k1, NPAR, Lc, Lc), dtype=np.float64),
        tz=np.zeros(L, dtype=np.float64),
        H=H,
        Hc=np.zeros_like(H),
        g=np.zeros(NPAR * k1, dtype=np.float64),
        step=np.zeros(NPAR * k1, dtype=np.float64),
        cand=np.zeros((4096, 4), dtype=np.float64),
        Rc=np.zeros((nc, nc), dtype=np.float64),
        Wc=np.zeros((nc, nc), dtype=np.float64),
        bsp=np.zeros((nc, 2), dtype=np.int64),
        csp=np.zeros((k1, Lc, 2), dtype=np.int64),
        perm=np.zeros(k1, dtype=np.int64),
        fb=np.zeros(k1, dtype=np.int64),
        fr=np.zeros(NPAR * k1, dtype=np.int64),
        gp=np.zeros(NPAR * k1, dtype=np.float64),
        sp=np.zeros(NPAR * k1, dtype=np.float64),
    )


@njit(cache=True, nogil=True)
def _normal_equations(ws, par, nbi, nbj, ak, na):
    """Residual, weighted Jacobian and the normal equations ``H``, ``g`` (shape priors included)
    of the components ak[:na] at the current ws.comp (rows and columns in ak order)."""
    comp, win, J, H, g, Rc, csp = ws.comp, ws.win, ws.J, ws.H, ws.g, ws.Rc, ws.csp
    sigma = par.sigma_px
    n = NPAR * na
    ws2 = (PRIOR_WEIGHT / par.sigma_sd_px) ** 2
    wr2 = (PRIOR_WEIGHT / par.rho_sd) ** 2
    _residual(ws.Dc, ws.M, nbi, nbj, Rc, ws.Wc, ws.bsp)
    _jacobian(comp, ak, na, win, ws.E, par.subgrid_offset, ws.Wc, J, csp)
    for u in range(n):
        g[u] = 0.0
        for w in range(n):
            H[u, w] = 0.0
    for c in range(na):
        k = ak[c]
        i0 = win[k, 0]
        j0 = win[k, 2]
        o = NPAR * c
        _diag_block(J, Rc, csp, k, i0 // STRIDE, j0 // STRIDE, _nstride(i0, win[k, 1]), H, g, o)
        for c2 in range(c + 1, na):
            l = ak[c2]
            ia0 = max(i0, win[l, 0])
            ia1 = min(win[k, 1], win[l, 1])
            ib0 = max(j0, win[l, 2])
            ib1 = min(win[k, 3], win[l, 3])
            if ia1 <= ia0 or ib1 <= ib0:
                continue
            uk = (ia0 - i0) // STRIDE
            vk = (ib0 - j0) // STRIDE
            ul = (ia0 - win[l, 0]) // STRIDE
            vl = (ib0 - win[l, 2]) // STRIDE
            _pair_block(J, csp, k, uk, vk, l, ul, vl, _nstride(ia0, ia1), H, o, NPAR * c2)
        # shape priors
        H[o + 3, o + 3] += ws2
        g[o + 3] += ws2 * (sigma - comp[k, 3])
        H[o + 4, o + 4] += wr2
        g[o + 4] -= wr2 * comp[k, 4]


@njit(cache=True, nogil=True)
def _order_by_x(ws, ak, na):
    """The linear system in components ordered by x (blobs are mostly chains): H is then nearly
    banded. Sets ws.perm (that order), ws.fb[P] (first component in it that overlaps component
    P), ws.fr (first column of each row's envelope) and ws.gp (g in that order)."""
    comp, H, g, perm, fb, fr, gp = ws.comp, ws.H, ws.g, ws.perm, ws.fb, ws.fr, ws.gp
    for P in range(na):
        x = P
        Q = P
        while Q > 0 and comp[ak[perm[Q - 1]], 0] > comp[ak[x], 0]:
            perm[Q] = perm[Q - 1]
            Q -= 1
        perm[Q] = x
    for P in range(na):
        kp = NPAR * perm[P]
        fb[P] = P
        for Q in range(P):
            if H[kp + 2, NPAR * perm[Q] + 2] != 0.0:
                fb[P] = Q
                break
        for p in range(NPAR):
            fr[NPAR * P + p] = NPAR * fb[P]
            gp[NPAR * P + p] = g[kp + p]


@njit(cache=True, nogil=True)
def _damped_step(ws, par, nbi, nbj, K, ak, na, cur, lam):
    """Up to 6 Levenberg-Marquardt steps of growing damping until one lowers the squared
    residual below `cur`; an accepted step is applied to comp and win (M, E follow it).
    Returns (improved, new residual, damping, largest position change of the step)."""
    comp, trial, win, twin, H, Hc, step, sp = ws.comp, ws.trial, ws.win, ws.twin, ws.H, ws.Hc, ws.step, ws.sp
    perm, fb = ws.perm, ws.fb
    sigma = par.sigma_px
    n = NPAR * na
    maxstep = 0.0
    for attempt in range(6):
        for P in range(na):
            kp = NPAR * perm[P]
            for Q in range(fb[P], P + 1):
                kq = NPAR * perm[Q]
                for p in range(NPAR):
                    for q in range(NPAR):
                        Hc[NPAR * P + p, NPAR * Q + q] = H[kp + p, kq + q]
            for p in range(NPAR):
                u = NPAR * P + p
                Hc[u, u] = H[kp + p, kp + p] * (1.0 + lam) + 1e-6
        if not _cholesky_env(Hc, ws.gp, n, sp, ws.fr):
            lam *= 10.0
            continue
        for P in range(na):
            for p in range(NPAR):
                step[NPAR * perm[P] + p] = sp[NPAR * P + p]
        for k in range(K):
            for u in range(NPAR):
                trial[k, u] = comp[k, u]
        for c in range(na):
            k = ak[c]
            o = NPAR * c
            trial[k, 0], trial[k, 1] = _inside_blob(ws.bsp, nbi, nbj, comp[k, 0] + step[o], comp[k, 1] + step[o + 1])
            trial[k, 2] = max(comp[k, 2] + step[o + 2], 1.0)
            trial[k, 3] = min(max(comp[k, 3] + step[o + 3], S_MIN * sigma), S_MAX * sigma)
            trial[k, 4] = min(max(comp[k, 4] + step[o + 4], -RHO_MAX), RHO_MAX)
        if na < K:  # the fixed components keep their windows and values
            for k in range(K):
                for u in range(4):
                    twin[k, u] = win[k, u]
        _eval(trial, ak, na, nbi, nbj, par.subgrid_offset, twin, ws.E, ws.tz, ws.bsp, ws.csp)
        _model(trial, K, twin, ws.E, ws.M, nbi, nbj, ws.csp, ws.bsp)
        new = _sse(ws.Dc, ws.M, nbi, nbj, trial, K, par, ws.bsp)
        if new <= cur:
            for k in range(K):
                dd = abs(trial[k, 0] - comp[k, 0]) + abs(trial[k, 1] - comp[k, 1])
                if dd > maxstep:
                    maxstep = dd
                for u in range(NPAR):
                    comp[k, u] = trial[k, u]
                for u in range(4):
                    win[k, u] = twin[k, u]
            return True, new, max(lam * 0.3, 1e-7), maxstep
        lam *= 8.0
    return False, cur, lam, maxstep


@njit(cache=True, nogil=True)
def _lm(ws, par, nbi, nbj, K, max_iter, act=None, target=np.inf):
    """Levenberg-Marquardt fit of ws.comp[:K] to ws.D; leaves win, E and M consistent with comp.
    Returns the squared residual and whether the fit converged (a last step below 0.01 px, or
    no step that improves).

    With `act`, only the components k with act[k] != 0 are fitted (the others stay fixed but
    remain in the model). A fit whose squared residual stays above `target` gives up once its
    last decrease is too small to reach it in a few more iterations (removal trials)."""
    comp, win, E, M = ws.comp, ws.win, ws.E, ws.M
    off = par.subgrid_offset
    ak = np.empty(K, dtype=np.int64)
    na = 0
    for k in range(K):
        if act is None or act[k] != 0:
            ak[na] = k
            na += 1
    for c in range(na):  # seeds and splits may start outside the blob (the centroid of a saturated arc)
        k = ak[c]
        comp[k, 0], comp[k, 1] = _inside_blob(ws.bsp, nbi, nbj, comp[k, 0], comp[k, 1])
    allk = np.arange(K)
    _eval(comp, allk, K, nbi, nbj, off, win, E, ws.tz, ws.bsp, ws.csp)
    _model(comp, K, win, E, M, nbi, nbj, ws.csp, ws.bsp)
    cur = _sse(ws.Dc, M, nbi, nbj, comp, K, par, ws.bsp)
    lam = 1e-3
    if na == 0:
        max_iter = 0
    drop = 0.0
    conv = False
    for it in range(max_iter):
        _normal_equations(ws, par, nbi, nbj, ak, na)
        _order_by_x(ws, ak, na)
        improved, new, lam, maxstep = _damped_step(ws, par, nbi, nbj, K, ak, na, cur, lam)
        if not improved:
            _eval(comp, ak, na, nbi, nbj, off, win, E, ws.tz, ws.bsp, ws.csp)
            _model(comp, K, win, E, M, nbi, nbj, ws.csp, ws.bsp)
            conv = True
            break
        drop = cur - new
        cur = new
        if maxstep < 0.01:
            conv = True
            break
        if it >= 1 and cur - target > ABORT_STEPS * drop:
            break
    return cur, conv

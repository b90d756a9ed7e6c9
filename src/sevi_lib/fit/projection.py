"""Projected shell model: the screen density of one shell, linear in its beta's.

A shell has speed r ~ Normal(R, sigma_R^2), c = cos(theta) with density
I(c) = 1/2 + sum_i beta_{2i} P_{2i}(c), and a uniform azimuth. Its velocity-space density is
g(r) I(c) / (2 pi r^2); projected along y onto the screen point (x, z) with rho = sqrt(x^2 + z^2)
and z = rho cos(alpha) it is

    f(x, z) = sum_{l even} beta_l F_l(x, z),   beta_0 = 1/2,
    F_l(x, z) = (1/pi) int_rho^inf g(r) P_l(cos(alpha) rho / r) / (r sqrt(r^2 - rho^2)) dr.

``F_0`` integrates to 2 over the plane and every other ``F_l`` to 0, so f integrates to 1.

Evaluation. P_l(q c) with q = rho / r is a polynomial in c and q; expanding it as
``sum_{m, k} D[l, m, k] P_m(c) P_k(q)`` (all indices even, ``|D| <= 1``: well conditioned)
separates the screen angle from the radius:

    F_l(rho, alpha) = sum_m G_lm(rho) P_m(cos alpha),   G_lm(rho) = sum_k D[l, m, k] M_k(rho),
    M_k(rho) = (1/pi) int g(r) P_k(rho / r) / (r sqrt(r^2 - rho^2)) dr.

The radial moments M_k have an integrable 1/sqrt singularity at r = rho (the projected rim).
The substitution r = rho + w^2 removes it (dr / sqrt(r^2 - rho^2) = 2 dw / sqrt(r + rho)); the
remaining smooth integrand is integrated by Gauss-Legendre quadrature in w over the window
r in [R - 9 sigma_R, R + 9 sigma_R] (the Gaussian beyond it is < 1e-18). Derivatives with respect
to R and sigma_R (first and second) come from differentiating g under the integral.

For many points at one geometry, :func:`radial_spline` tabulates G on a uniform rho grid as
cubic splines, so that a point costs a few multiply-adds per (l, m) pair.
"""

import math

import numpy as np
from numba import njit
from numpy.polynomial import legendre as npleg
from scipy.interpolate import CubicSpline

from sevi_lib.fit._kernels import _moments_row

WINDOW = 9.0
"""Half-width of the radial integration window, in units of sigma_R."""

N_NODES = 64
"""Gauss-Legendre nodes of the radial quadrature."""

N_DERIV = {0: 1, 1: 3, 2: 6}
"""Number of derivative slots for a derivative order: value; + d/dR, d/dsigma;
+ d2/dR2, d2/dR dsigma, d2/dsigma2."""

_XG, _WG = npleg.leggauss(N_NODES)
_D_CACHE = {}


def separation_coefficients(n):
    """Coefficients D with P_2l(q c) = sum_{m,k} D[l, m, k] P_2m(c) P_2k(q).

    Computed by exact Gauss-Legendre projection in c and in q.

    Parameters
    ----------
    n : int
        Highest even order index (orders 0, 2, ..., 2n).

    Returns
    -------
    ndarray, shape (n + 1, n + 1, n + 1)
        ``D[l, m, k]``; zero unless m <= l and k <= l.
    """
    if n in _D_CACHE:
        return _D_CACHE[n]
    x, w = npleg.leggauss(2 * n + 2)
    lmax = 2 * n
    pc = np.stack([npleg.legval(x, np.eye(lmax + 1)[l]) for l in range(0, lmax + 1, 2)])  # (n+1, nx)
    # P_2l(q c) on the (q, c) node grid
    qc = x[:, None] * x[None, :]
    plqc = np.stack([npleg.legval(qc, np.eye(lmax + 1)[l]) for l in range(0, lmax + 1, 2)])
    norm = (4 * np.arange(n + 1) + 1) / 2.0
    # project on P_2m(c) (axis 2) and P_2k(q) (axis 1)
    d = np.einsum("lqc,mc,c,kq,q->lmk", plqc, pc, w, pc, w)
    d *= norm[None, :, None] * norm[None, None, :]
    d[np.abs(d) < 1e-14] = 0.0
    d.setflags(write=False)
    _D_CACHE[n] = d
    return d


@njit(cache=True)
def _moments_kernel(rho, R, s, nk, nd, xg, wg, window, out):
    nq = xg.shape[0]
    fac = np.empty((6, nq))
    x = np.empty(nq)
    pl = np.empty((2 * nk - 1, nq))
    norm = 2.0 / (math.pi * math.sqrt(2.0 * math.pi) * s)
    lo_shell = max(R - window * s, 1e-12)
    hi = R + window * s
    for i in range(rho.shape[0]):
        _moments_row(rho[i], R, s, nk, nd, xg, wg, norm, lo_shell, hi, fac, x, pl, out[:, i, :])


def radial_moments(rho, R, sigma_R, n, derivatives=0):
    """Radial moments M_k(rho) = (1/pi) int g(r) P_k(rho/r) / (r sqrt(r^2 - rho^2)) dr.

    Parameters
    ----------
    rho : array_like
        Screen radii >= 0.
    R, sigma_R : float
        Shell radius and radial width.
    n : int
        Moments of orders k = 0, 2, ..., 2n.
    derivatives : {0, 1, 2}
        Also return derivatives with respect to (R, sigma_R): 1 adds d/dR and d/dsigma_R,
        2 adds d2/dR2, d2/dR dsigma_R and d2/dsigma_R2.

    Returns
    -------
    ndarray, shape (n_deriv, len(rho), n + 1)
        Slot 0 is the value, then the derivatives in the order listed above.
    """
    rho = np.ascontiguousarray(np.asarray(rho, dtype=np.float64).ravel())
    nd = N_DERIV[derivatives]
    out = np.empty((nd, rho.shape[0], n + 1))
    _moments_kernel(rho, float(R), float(sigma_R), n + 1, nd, _XG, _WG, WINDOW, out)
    return out


def radial_functions(rho, R, sigma_R, n, derivatives=0):
    """Radial functions G_lm(rho) of the separated projected basis.

    Parameters
    ----------
    rho : array_like
        Screen radii.
    R, sigma_R : float
    n : int
        Orders 0, 2, ..., 2n.
    derivatives : {0, 1, 2}
        As in :func:`radial_moments`.

    Returns
    -------
    ndarray, shape (n_deriv, len(rho), n + 1, n + 1)
        ``G[d, i, l, m]``: F_2l = sum_m G[., ., l, m] P_2m(cos alpha).
    """
    m = radial_moments(rho, R, sigma_R, n, derivatives)
    return np.einsum("dik,lmk->dilm", m, separation_coefficients(n))


def _screen_polar(x, z):
    x = np.asarray(x, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    rho = np.hypot(x, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(rho > 0, z / np.where(rho > 0, rho, 1.0), 0.0)
    return rho, np.clip(c, -1.0, 1.0)


def projected_basis(x, z, R, sigma_R, n, *, derivatives=0):
    """Projected Legendre basis F_0, F_2, ..., F_2n of one shell at screen points.

    Exact evaluation by quadrature at every point (use :func:`radial_spline` for many points in a
    fit).

    Parameters
    ----------
    x, z : array_like
        Screen coordinates (same shape).
    R, sigma_R : float
        Shell geometry.
    n : int
        Highest order index.
    derivatives : {0, 1, 2}
        As in :func:`radial_moments`.

    Returns
    -------
    ndarray, shape (n_deriv, n_points, n + 1)
        ``out[0, :, l]`` is F_2l; the shell density is ``0.5 * F_0 + sum_i beta_2i F_2i``.
    """
    rho, c = _screen_polar(x, z)
    g = radial_functions(rho, R, sigma_R, n, derivatives)
    pm = np.stack([npleg.legval(c, np.eye(2 * n + 1)[2 * m]) for m in range(n + 1)], axis=-1)
    return np.einsum("dilm,im->dil", g, pm)


def projected_density(x, z, R, sigma_R, beta):
    """Screen density of one shell (integrates to 1 over the plane).

    Parameters
    ----------
    x, z : array_like
        Screen coordinates.
    R, sigma_R : float
    beta : array_like, shape (N,)
        beta_2 .. beta_2N.

    Returns
    -------
    ndarray
        Density at the points, shape of `x` (per unit screen area).
    """
    beta = np.asarray(beta, dtype=np.float64)
    coef = np.concatenate([[0.5], beta])
    f = projected_basis(x, z, R, sigma_R, len(beta))[0] @ coef
    return f.reshape(np.shape(x))


def _spline_coefficients(rho, vals):
    cs = CubicSpline(rho, vals, axis=0, bc_type="not-a-knot")
    return np.ascontiguousarray(np.moveaxis(cs.c, 0, 1))


def radial_spline(R, sigma_R, n, h, rho_max, *, derivatives=0, contract=None, contract_derivatives=None):
    """Cubic-spline tables of the radial functions on the uniform grid rho = 0, h, 2h, ...

    Parameters
    ----------
    R, sigma_R : float
        Shell geometry.
    n : int
        Highest order index.
    h : float
        Grid step (a twentieth of sigma_R or finer keeps the relative error near 1e-6).
    rho_max : float
        The table covers [0, rho_max]; beyond R + 9 sigma_R all functions vanish.
    derivatives : {0, 1, 2}
        Derivative slots of the full table (see :func:`radial_moments`).
    contract : ndarray, shape (n + 1,), optional
        Coefficients a_l: also return a table of H_m = sum_l a_l G_lm (n + 1 columns per slot).
    contract_derivatives : {0, 1, 2}, optional
        Derivative slots of the contracted table (default: `derivatives`).

    Returns
    -------
    full : ndarray, shape (n_grid - 1, 4, n_deriv * n_pairs)
        Spline coefficients per interval, highest power first in t = rho - rho_i
        (value = ((c0 t + c1) t + c2) t + c3). The columns of one slot are the pairs (l, m),
        m <= l, in the order of :func:`pair_index`; slots follow each other.
    contracted : ndarray, shape (n_grid - 1, 4, n_deriv_c * (n + 1))
        Only if `contract` is given.
    """
    cd = derivatives if contract_derivatives is None else contract_derivatives
    n_grid = int(np.ceil(rho_max / h)) + 2
    rho = np.arange(n_grid) * h
    m = radial_moments(rho, R, sigma_R, n, max(derivatives, cd))
    d = separation_coefficients(n)
    li, mi = pair_index(n)
    nd = N_DERIV[derivatives]
    vals = np.einsum("dik,pk->idp", m[:nd], d[li, mi, :]).reshape(n_grid, -1)
    full = _spline_coefficients(rho, vals)
    if contract is None:
        return full
    ncd = N_DERIV[cd]
    dc = np.einsum("lmk,l->mk", d, np.asarray(contract, dtype=np.float64))
    cvals = np.einsum("dik,mk->idm", m[:ncd], dc).reshape(n_grid, -1)
    return full, _spline_coefficients(rho, cvals)


def pair_index(n):
    """Row-major (l, m) pairs with m <= l used as table columns.

    Parameters
    ----------
    n : int

    Returns
    -------
    l, m : ndarray of int, shape ((n + 1)(n + 2)/2,)
    """
    li, mi = np.tril_indices(n + 1)
    return li, mi

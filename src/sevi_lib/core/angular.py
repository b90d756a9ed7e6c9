"""Angular distributions of photoelectrons as even Legendre series.

The density of c = cos(theta) on [-1, 1] is

    I(c) = 1/2 + sum_{i=1}^{N} beta_{2i} P_{2i}(c),

so that I integrates to 1 (beta_0 = 1/2 is implicit). Throughout the project a beta vector has
shape (..., N) with ``beta[..., i]`` = beta_{2(i+1)}: beta_2 first. A parameter set is physical
only if I(c) >= 0 on all of [-1, 1]; :func:`min_density` finds the minimum exactly (roots of the
derivative, plus a dense Chebyshev grid as a safety net), not on a coarse grid only.
"""

import numpy as np
from numba import njit
from numpy.polynomial import legendre as npleg

from sevi_lib.core.errors import UnphysicalError


@njit(cache=True)
def legendre_upto(c, lmax, out):
    """Fill ``out[0..lmax]`` with P_0(c) .. P_lmax(c) by the three-term recurrence (numba).

    Parameters
    ----------
    c : float
        Argument in [-1, 1].
    lmax : int
        Highest order, >= 0.
    out : ndarray of float64, shape (>= lmax + 1,)
        Receives the values.
    """
    out[0] = 1.0
    if lmax >= 1:
        out[1] = c
    for l in range(1, lmax):
        out[l + 1] = ((2 * l + 1) * c * out[l] - l * out[l - 1]) / (l + 1)


def _legendre_all(c, lmax):
    c = np.asarray(c, dtype=np.float64)
    p = np.empty(c.shape + (lmax + 1,))
    p[..., 0] = 1.0
    if lmax >= 1:
        p[..., 1] = c
    for l in range(1, lmax):
        p[..., l + 1] = ((2 * l + 1) * c * p[..., l] - l * p[..., l - 1]) / (l + 1)
    return p


def legendre_even(c, n):
    """Even Legendre polynomials P_2, P_4, ..., P_2n at `c`.

    Parameters
    ----------
    c : array_like
        Arguments in [-1, 1].
    n : int
        Number of even orders.

    Returns
    -------
    ndarray, shape ``c.shape + (n,)``
        ``out[..., i] = P_{2(i+1)}(c)``.
    """
    return _legendre_all(c, 2 * n)[..., 2::2]


def _as_beta(beta):
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim == 0:
        raise ValueError("beta must be a vector (beta_2, beta_4, ...)")
    return beta


def density(c, beta):
    """Angular density I(c) = 1/2 + sum_i beta_{2i} P_{2i}(c).

    Parameters
    ----------
    c : array_like
        Arguments in [-1, 1].
    beta : array_like, shape (N,)
        beta_2 .. beta_2N.

    Returns
    -------
    ndarray, shape of `c`
    """
    beta = _as_beta(beta)
    return 0.5 + legendre_even(c, beta.shape[-1]) @ beta


def cdf(c, beta):
    """Cumulative distribution of c, in closed form.

    Uses int_{-1}^{c} P_l(t) dt = (P_{l+1}(c) - P_{l-1}(c)) / (2l + 1) for l >= 1.

    Parameters
    ----------
    c : array_like
        Arguments in [-1, 1].
    beta : array_like, shape (N,)

    Returns
    -------
    ndarray, shape of `c`
        F(c) with F(-1) = 0 and F(1) = 1.
    """
    beta = _as_beta(beta)
    n = beta.shape[-1]
    c = np.asarray(c, dtype=np.float64)
    p = _legendre_all(c, 2 * n + 1)
    ls = 2 * np.arange(1, n + 1)
    integrals = (p[..., ls + 1] - p[..., ls - 1]) / (2 * ls + 1)
    return 0.5 * (c + 1.0) + integrals @ beta


def full_coefficients(beta):
    """Legendre coefficients a_0 .. a_2N of I (a_0 = 1/2, odd ones zero), for numpy.polynomial.

    Parameters
    ----------
    beta : array_like, shape (N,)

    Returns
    -------
    ndarray, shape (2N + 1,)
    """
    beta = _as_beta(beta)
    a = np.zeros(2 * beta.shape[-1] + 1)
    a[0] = 0.5
    a[2::2] = beta
    return a


_GRID = np.cos(np.linspace(0.0, np.pi, 4097))


def min_density(beta):
    """Minimum of I(c) on [-1, 1] and where it is reached.

    The candidates are the end points and the real roots of I'(c) in [-1, 1] (companion matrix of
    the Legendre series), together with a 4097-point Chebyshev grid as a safety net against
    ill-conditioned roots; the smallest value found is returned.

    Parameters
    ----------
    beta : array_like, shape (N,)

    Returns
    -------
    value : float
        min I(c).
    c_min : float
        Argument of the minimum.
    """
    a = full_coefficients(beta)
    cands = [_GRID]
    if len(a) > 2:
        roots = npleg.legroots(npleg.legder(a))
        roots = roots[np.abs(np.imag(roots)) < 1e-7].real
        cands.append(np.clip(roots, -1.0, 1.0))
    c = np.concatenate(cands)
    vals = npleg.legval(c, a)
    k = int(np.argmin(vals))
    return float(vals[k]), float(c[k])


def is_physical(beta, tol=1e-12):
    """Whether I(c) >= -tol on all of [-1, 1].

    Parameters
    ----------
    beta : array_like, shape (N,) or (..., N)
        One beta vector or a stack of them.
    tol : float
        Allowed negative excursion (round-off).

    Returns
    -------
    bool or ndarray of bool
        One flag per beta vector.
    """
    beta = _as_beta(beta)
    if beta.ndim == 1:
        return min_density(beta)[0] >= -tol
    flat = beta.reshape(-1, beta.shape[-1])
    return np.array([min_density(b)[0] >= -tol for b in flat]).reshape(beta.shape[:-1])


def check_physical(beta, what="beta", tol=1e-12):
    """Raise :class:`~sevi_lib.core.errors.UnphysicalError` unless I(c) >= 0 on [-1, 1].

    Parameters
    ----------
    beta : array_like, shape (N,)
    what : str
        Name used in the message (e.g. ``"shell 0 of config.yaml"``).
    tol : float
        Allowed negative excursion.

    Returns
    -------
    ndarray
        `beta` as float64, for chaining.
    """
    beta = _as_beta(beta)
    if not np.all(np.isfinite(beta)):
        raise UnphysicalError(f"{what}: beta contains non-finite values")
    value, where = min_density(beta)
    if value < -tol:
        raise UnphysicalError(
            f"{what}: unphysical beta, the angular density is {value:.4g} < 0 at cos(theta) = {where:.4f}"
        )
    return beta


def distance_weights(n):
    """Weights 2/(4i + 1), i = 1..n, of the per-shell distance (L2 distance between densities).

    Parameters
    ----------
    n : int

    Returns
    -------
    ndarray, shape (n,)
    """
    i = np.arange(1, n + 1)
    return 2.0 / (4.0 * i + 1.0)


def beta_from_density(func, n, n_nodes=256):
    """Project a density on [-1, 1] onto even Legendre polynomials.

    beta_l = (2l + 1)/2 * int_{-1}^{1} I(c) P_l(c) dc, by Gauss-Legendre quadrature. The density
    is assumed normalised to 1; the P_0 coefficient is not returned.

    Parameters
    ----------
    func : callable
        Vectorised density, ``func(c) -> I(c)``.
    n : int
        Number of even orders returned (beta_2 .. beta_2n).
    n_nodes : int
        Quadrature nodes; exact for polynomial densities of degree < 2 * n_nodes - 2n.

    Returns
    -------
    ndarray, shape (n,)
    """
    x, w = npleg.leggauss(n_nodes)
    f = np.asarray(func(x), dtype=np.float64)
    ls = 2 * np.arange(1, n + 1)
    return (2 * ls + 1) / 2.0 * ((w * f) @ legendre_even(x, n))

"""Maps of the screen: the one count-map binner, the quadrant fold and the radial profile.

Every stage that turns electrons into a map (simulation, detection, training synthesis) or
reduces a map (the fit's frame-sum model, the network's input view, radii from a map) uses these,
so the pixel convention (``numpy.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])``,
``Image[ix, iz]``, centre on the corner between pixels 511 and 512) is written once.
"""

import numpy as np
from numba import njit

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres

_EDGE_STEP = 1.0 / PIX_PER_UNIT


@njit(cache=True, nogil=True)
def count_map_kernel(x, z, out):
    """Add screen positions to a 1024 x 1024 float64 map in place (numba; for use inside kernels).

    The binning of :func:`count_map`, which checks its arguments and calls this.
    """
    n = N_PIX
    for k in range(x.shape[0]):
        xi = x[k]
        zi = z[k]
        if not (-1.0 <= xi <= 1.0 and -1.0 <= zi <= 1.0):
            continue
        i = min(int((xi + 1.0) * PIX_PER_UNIT), n - 1)
        j = min(int((zi + 1.0) * PIX_PER_UNIT), n - 1)
        # (u + 1) * 512 may round across a bin edge; edges k/512 - 1 are exact, so compare to them
        if xi < i * _EDGE_STEP - 1.0:
            i -= 1
        elif i < n - 1 and xi >= (i + 1) * _EDGE_STEP - 1.0:
            i += 1
        if zi < j * _EDGE_STEP - 1.0:
            j -= 1
        elif j < n - 1 and zi >= (j + 1) * _EDGE_STEP - 1.0:
            j += 1
        out[i, j] += 1.0


def count_map(x, z, out=None):
    """1024 x 1024 count map of screen positions (numba).

    Exactly ``numpy.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])[0]``: bins closed
    on the left, the last bin also holds 1.0, positions outside the screen (or NaN) dropped.

    Parameters
    ----------
    x, z : array_like of float, shape (n,)
        Screen coordinates.
    out : ndarray of float64, shape (1024, 1024), optional
        Counts are added to it (for accumulating over chunks).

    Returns
    -------
    ndarray of float64, shape (1024, 1024)
        ``out[ix, iz]``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    z = np.ascontiguousarray(z, dtype=np.float64).ravel()
    if x.shape != z.shape:
        raise ValueError(f"x and z differ in length: {x.shape} vs {z.shape}")
    if out is None:
        out = np.zeros((N_PIX, N_PIX))
    elif out.shape != (N_PIX, N_PIX) or out.dtype != np.float64:
        raise ValueError(f"out must be float64 ({N_PIX}, {N_PIX}), got {out.dtype} {out.shape}")
    count_map_kernel(x, z, out)
    return out


def fold(count_map):
    """Sum the four quadrants of a count map onto one.

    Parameters
    ----------
    count_map : ndarray, shape (..., 2m, 2m)
        Maps indexed ``[ix, iz]`` whose centre lies on the corner between pixels m - 1 and m.

    Returns
    -------
    ndarray, shape (..., m, m)
        ``out[i, k]`` sums the pixels at |x| and |z| index i and k from the centre; the total is
        conserved. Integer input is summed in int64, float input in float64, always in the order
        ``((x+ z+ + x- z+) + x+ z-) + x- z-`` (so float maps fold to the same bits everywhere).
    """
    a = np.asarray(count_map)
    dtype = np.int64 if np.issubdtype(a.dtype, np.integer) else np.float64
    m = a.shape[-1] // 2
    if a.shape[-2] != 2 * m or a.shape[-1] != 2 * m:
        raise InputError(f"view: fold needs a square map with an even side, got {a.shape}")
    a = a.astype(dtype, copy=False)
    out = a[..., m:, m:] + a[..., m - 1 :: -1, m:]
    out += a[..., m:, m - 1 :: -1]
    out += a[..., m - 1 :: -1, m - 1 :: -1]
    return out


def unfold(quadrant):
    """Mirror one quadrant onto a full map (the adjoint of :func:`fold`).

    Parameters
    ----------
    quadrant : ndarray, shape (m, m, ...)
        ``quadrant[i, k]`` for the pixels i and k from the centre.

    Returns
    -------
    ndarray of float64, shape (2m, 2m, ...)
        Every one of the four mirror pixels holds the quadrant's value.
    """
    q = np.asarray(quadrant)
    m = q.shape[0]
    out = np.empty((2 * m, 2 * m) + q.shape[2:])
    out[m:, m:] = q
    out[m - 1 :: -1, m:] = q
    out[m:, m - 1 :: -1] = q
    out[m - 1 :: -1, m - 1 :: -1] = q
    return out


def radial_profile(count_map, bin_width=1.0 / PIX_PER_UNIT):
    """Counts per radial bin of a count map.

    Parameters
    ----------
    count_map : ndarray, shape (1024, 1024)
        ``Image[ix, iz]``.
    bin_width : float
        Width of the rho bins in screen units (default one pixel).

    Returns
    -------
    rho : ndarray
        Bin centres.
    counts : ndarray
        Counts whose pixel centre falls in each bin.
    """
    centres = pixel_centres()
    rho = np.hypot(centres[:, None], centres[None, :])
    edges = np.arange(0.0, np.sqrt(2.0) + bin_width, bin_width)
    counts, _ = np.histogram(rho, bins=edges, weights=np.asarray(count_map, dtype=np.float64))
    return 0.5 * (edges[1:] + edges[:-1]), counts

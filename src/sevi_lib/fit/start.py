"""Start values of the fit, from the data: the most prominent peaks of the radial profile.

The profile here bins *points* (electron radii, or the radii of the non-empty pixels' centres
weighted by their counts) on the fixed grid [0, 1.5] with one-pixel bins.
:func:`sevi_lib.core.maps.radial_profile` is the same binning for a whole map, but it needs a map
(the unbinned fit has none) and ends at sqrt(2); the profile's length enters the smoothing and
the peak prominences, so using it would change start values (and answers) in rare cases.
"""

import numpy as np
from scipy import signal

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.layout import ParamLayout

#: Start width of every shell when radii are given without widths (screen units).
DEFAULT_SIGMA = 0.008


def initial_geometry(rho, weights=None, n_shells=2):
    """Start radii and widths from the most prominent peaks of the radial profile.

    Parameters
    ----------
    rho : ndarray
        Screen radii of electrons (or pixel centres).
    weights : ndarray, optional
        Weight of each radius (pixel counts).
    n_shells : int

    Returns
    -------
    R, sigma_R : ndarray, shape (n_shells,)
        Sorted by radius.

    Raises
    ------
    InputError
        If fewer than `n_shells` peaks are found.
    """
    bw = 1.0 / (2 * PIX_PER_UNIT)
    hist, edges = np.histogram(rho, bins=np.arange(0.0, 1.5 + bw, bw), weights=weights)
    # the projected shell density per unit rho is rim-dominated; smooth with a 2-bin Gaussian
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    smooth = np.convolve(hist, k / k.sum(), mode="same")
    peaks, props = signal.find_peaks(smooth, prominence=0.0)
    if len(peaks) < n_shells:
        raise InputError(f"radial profile shows {len(peaks)} peak(s), {n_shells} shells expected")
    best = np.sort(peaks[np.argsort(props["prominences"])[::-1][:n_shells]])
    width = signal.peak_widths(smooth, best, rel_height=0.5)[0] * bw
    centres = 0.5 * (edges[:-1] + edges[1:])
    R = centres[best] + 0.5 * bw
    sigma = np.clip(width / 2.5, 2 * bw, 0.05)
    return R, sigma


def start_theta(rho, weights, S, n, total, R0=None, sigma0=None):
    """Start parameter vector: found (or given) geometry, isotropic shells sharing `total`.

    Parameters
    ----------
    rho : ndarray
        Radii of the data points.
    weights : ndarray or None
        Their weights (None: one each).
    S, n : int
        Shells and beta's per shell.
    total : float
        Expected number of electrons (split evenly between the shells).
    R0, sigma0 : array_like, optional
        Given start geometry (widths default to :data:`DEFAULT_SIGMA`).

    Returns
    -------
    theta : ndarray
    R0, sigma0 : ndarray
    """
    if R0 is None:
        R0, s0 = initial_geometry(rho, weights, S)
    else:
        R0 = np.asarray(R0, dtype=np.float64)
        s0 = np.asarray(sigma0 if sigma0 is not None else np.full(S, DEFAULT_SIGMA), dtype=np.float64)
    a = np.zeros((S, n + 1))
    a[:, 0] = total / (2.0 * S)
    outside = np.sum(weights[rho > R0.max() + 12 * s0.max()]) if weights is not None else \
        np.count_nonzero(rho > R0.max() + 12 * s0.max())
    b = (outside + 1.0) / 4.0
    return ParamLayout(S, n).pack(a, R0, s0, b), R0, s0


def table_step(s0, h=None):
    """Radial spline step: `h` if given, else a 24th of the smallest start width (clipped)."""
    if h is not None:
        return float(h)
    return float(np.clip(np.min(s0) / 24.0, 1.0 / 16384, 1.0 / 2048))

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
from sevi_lib.fit.search import find_shells

#: Start width of every shell when radii are given without widths (screen units).
DEFAULT_SIGMA = 0.008


def initial_geometry(rho, weights=None, n_shells=2, *, rho_limit=1.0):
    """Start radii and widths from the most prominent peaks of the radial profile.

    A peak whose half maximum reaches `rho_limit` is the screen's edge, no shell: a uniform level
    (a background, an intensity image's offset) grows linearly in rho up to the edge, where the
    edge cuts the rings, a peak of large prominence and a width of 0.1 or more.

    Parameters
    ----------
    rho : ndarray
        Screen radii of electrons (or pixel centres).
    weights : ndarray, optional
        Weight of each radius (pixel counts).
    n_shells : int
    rho_limit : float
        Distance from the centre to the nearest screen edge (the screen's half width about the
        screen centre).

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
    centres = 0.5 * (edges[:-1] + edges[1:])
    if len(peaks):
        edge = centres[peaks] + 0.5 * bw * signal.peak_widths(smooth, peaks, rel_height=0.5)[0] > rho_limit
        peaks, props = peaks[~edge], {"prominences": props["prominences"][~edge]}
    if len(peaks) < n_shells:
        raise InputError(f"radial profile shows {len(peaks)} peak(s) inside the screen, {n_shells} shells expected")
    best = np.sort(peaks[np.argsort(props["prominences"])[::-1][:n_shells]])
    width = signal.peak_widths(smooth, best, rel_height=0.5)[0] * bw
    R = centres[best] + 0.5 * bw
    sigma = np.clip(width / 2.5, 2 * bw, 0.05)
    return R, sigma


def start_theta(rho, weights, S, n, total, *, R0=None, sigma0=None):
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


def shell_geometry(rho, weights, n_shells, *, R0=None, sigma0=None, centre=(0.0, 0.0), what="data"):
    """Number of shells and their start geometry, with the shell search's report.

    Parameters
    ----------
    rho : ndarray
        Radii of the data points about the (start) centre.
    weights : ndarray or None
    n_shells : int or None
        None or 0: the number of significant radial peaks (:func:`sevi_lib.fit.search.find_shells`),
        which also give the start radii and widths; else that many shells, started at the most
        prominent peaks (:func:`initial_geometry`) or at `R0`.
    R0, sigma0 : array_like, optional
        Given start geometry (its length fixes the number of shells when `n_shells` is automatic).
    centre : tuple of float
        Recorded in the report.
    what : str
        Name of the data in error messages.

    Returns
    -------
    S : int
    R0, sigma0 : ndarray or None
        None when :func:`start_theta` should find them (`n_shells` given, no `R0`).
    search : dict
        :meth:`sevi_lib.fit.search.ShellSearch.to_dict`, plus ``n_shells_given`` when fixed.

    Raises
    ------
    InputError
        No significant peak (automatic), or fewer peaks than `n_shells`.
    """
    found = find_shells(rho, weights, centre=centre)
    search = found.to_dict()
    if R0 is not None:
        R0 = np.atleast_1d(np.asarray(R0, dtype=np.float64))
        n_shells = n_shells or len(R0)
    if n_shells:
        search["n_shells_given"] = int(n_shells)
        return int(n_shells), R0, sigma0, search
    if found.n_found == 0:
        raise InputError(f"{what}: the radial profile shows no significant peak (none with Z >= "
                         f"{found.threshold:g}; see --shells to fix the number of shells)")
    R = np.array([p["R"] for p in found.peaks])
    s = np.array([p["sigma"] for p in found.peaks])
    return found.n_found, R, s, search


def fit_with_search(fit_at, radii, weights, *, n_shells, R0, sigma0, c0, free, what):
    """Shell search, fit, and (automatic count, free centre) the search again about the fitted centre.

    A start centre a few pixels off smears the rings of the radial profile, so two close shells
    can look like one; the search is repeated about the fitted centre, and when it finds another
    number of shells the fit is repeated from there (with that centre and the new peaks).

    Parameters
    ----------
    fit_at : callable
        ``(S, R0, sigma0, centre, search) -> FitResult``.
    radii : callable
        ``centre -> rho`` of the data points about it.
    weights : ndarray or None
    n_shells, R0, sigma0
        As in :func:`shell_geometry`.
    c0 : ndarray, shape (2,)
        Start (or fixed) centre.
    free : bool
        Whether the centre is fitted.
    what : str

    Returns
    -------
    FitResult
    """
    S, R, s, search = shell_geometry(radii(c0), weights, n_shells, R0=R0, sigma0=sigma0, centre=c0, what=what)
    result = fit_at(S, R, s, c0, search)
    if n_shells or R0 is not None or not free:
        return result
    c1 = np.asarray(result.centre, dtype=np.float64)
    S1, R1, s1, search1 = shell_geometry(radii(c1), weights, None, R0=None, sigma0=None, centre=c1, what=what)
    search1["about"] = "the fitted centre"
    if S1 == S:
        result.shell_search = search1
        return result
    search1["first_pass"] = search
    return fit_at(S1, R1, s1, c1, search1)

"""The unbinned fit: extended Poisson likelihood of electron positions."""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.fit.centre import parse_centre, start_centre
from sevi_lib.fit.optimise import fit_poisson
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import fit_with_search, start_theta, table_step

_D = FitSettings()


def fit_electrons(x, z, *, n_beta=_D.n_beta, n_shells=_D.shells, R0=None, sigma0=None, h=None,
                  max_iter=_D.max_iter, log=None, what="electrons", centre=_D.centre, n_frames=None):
    """Unbinned extended-likelihood fit of electron positions.

    Parameters
    ----------
    x, z : array_like
        Screen coordinates of detected electrons.
    n_beta : int
        Number of fitted beta's per shell (beta_2 .. beta_2N).
    n_shells : int or None
        Number of shells; None or 0: the number of significant radial peaks
        (:func:`sevi_lib.fit.search.find_shells`; the result's ``shell_search``).
    R0, sigma0 : array_like, optional
        Start geometry; by default from the radial profile's peaks.
    h : float, optional
        Radial table step (default: a 24th of the smallest start width).
    max_iter : int
    log : callable, optional
        Receives one progress line per iteration.
    what : str
        Name of the data in error messages (e.g. the file).
    centre : str or (float, float)
        ``"free"``: the image centre is fitted (started at the centroid of the electrons);
        ``"screen"``: fixed at (0, 0); a pair: fixed there (screen units).
    n_frames : int, optional
        Frames the electrons came from (the background is also reported per frame).

    Returns
    -------
    sevi_lib.fit.result.FitResult

    Raises
    ------
    InputError
        Fewer than :func:`~sevi_lib.fit.settings.min_electrons` electrons, x and z differ in length,
        or no shell found.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    if x.shape != z.shape:
        raise InputError(f"{what}: x and z differ in length ({x.size} vs {z.size})")
    _check_count(x.size, n_beta, n_shells, what)
    c0, free = parse_centre(centre)
    if free:
        c0 = start_centre(x, z)
    # radius order: the kernels then walk the spline tables cell after cell (cache-friendly), and
    # each chunk of electrons works only with the shells that reach its innermost one (the
    # likelihood is a sum over electrons, so the order changes only its rounding)
    order = np.argsort(np.hypot(x - c0[0], z - c0[1]), kind="stable")
    x, z = x[order], z[order]
    ones = np.ones(x.size)

    def fit_at(S, R0, sigma0, c, search):
        _check_count(x.size, n_beta, S, what)
        rho = np.hypot(x - c[0], z - c[1])
        theta, R0, s0 = start_theta(rho, None, S, n_beta, float(x.size), R0=R0, sigma0=sigma0)
        step = table_step(s0, h)
        # a free centre: one table length for every centre within 25 px of the start (shared tables)
        rho_max = float(rho.max()) + 0.05 if free else None

        def make_points(cc):
            return PointSet(x - cc[0], z - cc[1], 1, ones, n_beta, step, rho_max)

        return fit_poisson("unbinned", make_points, ones, theta, S, max_iter=max_iter, log=log, n_data=x.size,
                           diagnostics={"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": step,
                            "centre_start": np.asarray(c).tolist()},
                           centre=c, free_centre=free, n_frames=n_frames, shell_search=search)

    return fit_with_search(fit_at, lambda c: np.hypot(x - c[0], z - c[1]), None, n_shells=n_shells, R0=R0,
                           sigma0=sigma0, c0=c0, free=free,
                           what=what)


def _check_count(n, n_beta, n_shells, what):
    need = min_electrons(n_beta, n_shells)
    if n < need:
        raise InputError(f"{what}: too few electrons to fit: {n} (at least {need} needed for "
                         f"{n_shells or 1} shell(s) with {n_beta} beta's)")

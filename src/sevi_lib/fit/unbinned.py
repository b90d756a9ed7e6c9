"""The unbinned fit: extended Poisson likelihood of electron positions."""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.fit.optimise import fit_poisson
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import start_theta, table_step

_D = FitSettings()


def fit_electrons(x, z, n_beta=_D.n_beta, n_shells=_D.n_shells, R0=None, sigma0=None, h=None,
                  max_iter=_D.max_iter, log=None, what="electrons"):
    """Unbinned extended-likelihood fit of electron positions.

    Parameters
    ----------
    x, z : array_like
        Screen coordinates of detected electrons.
    n_beta : int
        Number of fitted beta's per shell (beta_2 .. beta_2N).
    n_shells : int
    R0, sigma0 : array_like, optional
        Start geometry; by default from the radial profile's peaks.
    h : float, optional
        Radial table step (default: a 24th of the smallest start width).
    max_iter : int
    log : callable, optional
        Receives one progress line per iteration.
    what : str
        Name of the data in error messages (e.g. the file).

    Returns
    -------
    sevi_lib.fit.result.FitResult

    Raises
    ------
    InputError
        Fewer than :func:`~sevi_lib.fit.settings.min_electrons` electrons, or x and z differ in length.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    if x.shape != z.shape:
        raise InputError(f"{what}: x and z differ in length ({x.size} vs {z.size})")
    need = min_electrons(n_beta, n_shells)
    if x.size < need:
        raise InputError(f"{what}: too few electrons to fit: {x.size} (at least {need} needed for "
                         f"{n_shells} shells with {n_beta} beta's)")
    rho = np.hypot(x, z)
    theta, R0, s0 = start_theta(rho, None, n_shells, n_beta, float(x.size), R0, sigma0)
    pts = PointSet(x, z, 1, np.ones(x.size), n_beta, table_step(s0, h))
    return fit_poisson("unbinned", pts, np.ones(x.size), theta, n_shells, max_iter, log, x.size,
                       {"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": pts.h})

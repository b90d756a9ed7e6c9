"""The binned fit: Poisson likelihood of a count map, each pixel integrated with 2 x 2 Gauss nodes."""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.fit.optimise import fit_poisson
from sevi_lib.fit.points import PointSet, pixel_nodes
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import start_theta, table_step

_D = FitSettings()


def check_map(image, what):
    """A 1024 x 1024 finite non-negative map as float64, else InputError naming `what`."""
    image = np.asarray(image)
    if image.shape != (N_PIX, N_PIX):
        raise InputError(f"{what}: expected a {N_PIX} x {N_PIX} map, got shape {image.shape}")
    if not np.all(np.isfinite(image)) or np.any(image < 0):
        raise InputError(f"{what}: map holds negative or non-finite values")
    return image.astype(np.float64)


def fit_count_map(image, n_beta=_D.n_beta, n_shells=_D.n_shells, R0=None, sigma0=None, h=None,
                  max_iter=_D.max_iter, log=None, what="count map"):
    """Binned Poisson fit of a count map (``numpy.histogram2d(x, z, bins=1024, range=[[-1,1],[-1,1]])``).

    Parameters
    ----------
    image : ndarray, shape (1024, 1024)
        Counts, ``Image[ix, iz]``.
    n_beta, n_shells, R0, sigma0, h, max_iter, log
        As in :func:`sevi_lib.fit.unbinned.fit_electrons`.
    what : str
        Name used in error messages.

    Returns
    -------
    sevi_lib.fit.result.FitResult
    """
    image = check_map(image, what)
    ix, iz = np.nonzero(image)
    counts = image[ix, iz]
    need = min_electrons(n_beta, n_shells)
    if counts.sum() < need:
        raise InputError(f"{what}: too few counts to fit ({counts.sum():g}; at least {need} needed for "
                         f"{n_shells} shells with {n_beta} beta's)")
    hp = 1.0 / PIX_PER_UNIT
    centres = pixel_centres()
    rho = np.hypot(centres[ix], centres[iz])
    theta, R0, s0 = start_theta(rho, counts, n_shells, n_beta, float(counts.sum()), R0, sigma0)
    x, z = pixel_nodes(ix, iz)
    pts = PointSet(x, z, 4, np.full(len(ix), hp * hp / 4.0), n_beta, table_step(s0, h))
    return fit_poisson("binned", pts, counts, theta, n_shells, max_iter, log, counts.sum(),
                       {"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": pts.h,
                        "pixels": len(ix)})

"""The binned fit: Poisson likelihood of a count map, each pixel integrated with 2 x 2 Gauss nodes."""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.fit.centre import parse_centre, start_centre
from sevi_lib.fit.optimise import fit_poisson
from sevi_lib.fit.points import PointSet, pixel_nodes
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import fit_with_search, start_theta, table_step

_D = FitSettings()


def check_map(image, what):
    """A 1024 x 1024 finite non-negative map as float64, else InputError naming `what`."""
    image = np.asarray(image)
    if image.shape != (N_PIX, N_PIX):
        raise InputError(f"{what}: expected a {N_PIX} x {N_PIX} map, got shape {image.shape}")
    if not np.all(np.isfinite(image)) or np.any(image < 0):
        raise InputError(f"{what}: map holds negative or non-finite values")
    return image.astype(np.float64)


def fit_count_map(image, n_beta=_D.n_beta, n_shells=_D.shells, R0=None, sigma0=None, h=None,
                  max_iter=_D.max_iter, log=None, what="count map", centre=_D.centre, n_frames=None):
    """Binned Poisson fit of a count map (``numpy.histogram2d(x, z, bins=1024, range=[[-1,1],[-1,1]])``).

    Parameters
    ----------
    image : ndarray, shape (1024, 1024)
        Counts, ``Image[ix, iz]``.
    n_beta, n_shells, R0, sigma0, h, max_iter, log, centre, n_frames
        As in :func:`sevi_lib.fit.unbinned.fit_electrons` (a free centre starts at the
        count-weighted centroid of the pixel centres).
    what : str
        Name used in error messages.

    Returns
    -------
    sevi_lib.fit.result.FitResult
    """
    image = check_map(image, what)
    ix, iz = np.nonzero(image)
    counts = image[ix, iz]
    _check_counts(counts.sum(), n_beta, n_shells, what)
    hp = 1.0 / PIX_PER_UNIT
    centres = pixel_centres()
    c0, free = parse_centre(centre)
    if free:
        c0 = start_centre(centres[ix], centres[iz], counts)
    # radius order (cache-friendly table walks; see fit_electrons)
    order = np.argsort(np.hypot(centres[ix] - c0[0], centres[iz] - c0[1]), kind="stable")
    ix, iz, counts = ix[order], iz[order], counts[order]
    x, z = pixel_nodes(ix, iz)
    scale = np.full(len(ix), hp * hp / 4.0)
    xc, zc = centres[ix], centres[iz]

    def fit_at(S, R0, sigma0, c, search):
        _check_counts(counts.sum(), n_beta, S, what)
        rho = np.hypot(xc - c[0], zc - c[1])
        theta, R0, s0 = start_theta(rho, counts, S, n_beta, float(counts.sum()), R0, sigma0)
        step = table_step(s0, h)
        # a free centre: one table length for every centre within 25 px of the start (shared tables)
        rho_max = float(np.hypot(np.abs(x - c[0]), np.abs(z - c[1])).max()) + 0.05 if free else None

        def make_points(cc):
            return PointSet(x - cc[0], z - cc[1], 4, scale, n_beta, step, rho_max)

        return fit_poisson("binned", make_points, counts, theta, S, max_iter, log, counts.sum(),
                           {"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": step,
                            "pixels": len(ix), "centre_start": np.asarray(c).tolist()},
                           centre=c, free_centre=free, n_frames=n_frames, shell_search=search)

    return fit_with_search(fit_at, lambda c: np.hypot(xc - c[0], zc - c[1]), counts, n_shells, R0, sigma0, c0,
                           free, what)


def _check_counts(total, n_beta, n_shells, what):
    need = min_electrons(n_beta, n_shells)
    if total < need:
        raise InputError(f"{what}: too few counts to fit ({total:g}; at least {need} needed for "
                         f"{n_shells or 1} shell(s) with {n_beta} beta's)")

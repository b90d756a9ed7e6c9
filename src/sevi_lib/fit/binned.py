"""The binned fit: Poisson likelihood of a count map, each pixel integrated with 2 x 2 Gauss nodes.

Every binned fit also measures the dispersion of its pixels (variance over mean, 1 for Poisson
counts; :func:`sevi_lib.fit.dispersion.variance_fit`) and reports it in
:attr:`~sevi_lib.fit.result.FitResult.dispersion`. With ``dispersion=phi`` the map is divided by
phi before the fit (the quasi-likelihood of an intensity image,
:func:`sevi_lib.fit.dispersion.fit_intensity_map`).
"""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.fit import _kernels
from sevi_lib.fit.centre import parse_centre, start_centre
from sevi_lib.fit.dispersion import MEANING, variance_fit
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.optimise import fit_poisson
from sevi_lib.fit.points import PointSet, pixel_nodes
from sevi_lib.fit.result import make_result
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


def fit_count_map(image, *, n_beta=_D.n_beta, n_shells=_D.shells, R0=None, sigma0=None, h=None,
                  max_iter=_D.max_iter, log=None, what="count map", centre=_D.centre, n_frames=None,
                  dispersion=1.0, level=0.0):
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
    dispersion : float
        The image is divided by it before the fit (and the shell search): 1 for counts (the
        default, the image is used as it is), phi for an intensity image, whose quotient is then
        in effective electrons (:mod:`sevi_lib.fit.dispersion`; weights, background and
        ``n_data`` come out in those units, standard errors multiplied by sqrt(phi) relative to
        a Poisson fit of the image itself).
    level : float
        A flat level every pixel holds (image units; e.g. a camera's pedestal): start values
        only (the start background, the shells' share of the total, the weights of a free
        centre's start). The fit's background estimates it; 0 (the default) changes nothing.

    Returns
    -------
    sevi_lib.fit.result.FitResult
        Its ``dispersion`` holds the measured dispersion in image units
        (:func:`pixel_dispersion`).
    """
    image = check_map(image, what)
    dispersion = float(dispersion)
    if not (np.isfinite(dispersion) and dispersion > 0):
        raise InputError(f"{what}: the dispersion must be a positive number, got {dispersion}")
    if dispersion != 1.0:
        image = image / dispersion
    level = float(level) / dispersion
    ix, iz = np.nonzero(image)
    counts = image[ix, iz]
    _check_counts(counts.sum(), n_beta, n_shells, what)
    hp = 1.0 / PIX_PER_UNIT
    centres = pixel_centres()
    c0, free = parse_centre(centre)
    if free:
        c0 = start_centre(centres[ix], centres[iz], np.maximum(counts - level, 0.0) if level > 0 else counts)
    # radius order (cache-friendly table walks, few shells per chunk of pixels; see fit_electrons)
    order = np.argsort(np.hypot(centres[ix] - c0[0], centres[iz] - c0[1]), kind="stable")
    ix, iz, counts = ix[order], iz[order], counts[order]
    x, z = pixel_nodes(ix, iz)
    scale = np.full(len(ix), hp * hp / 4.0)
    xc, zc = centres[ix], centres[iz]

    def fit_at(S, R0, sigma0, c, search):
        _check_counts(counts.sum(), n_beta, S, what)
        rho = np.hypot(xc - c[0], zc - c[1])
        theta, R0, s0 = start_theta(rho, counts, S, n_beta, float(counts.sum()), R0=R0, sigma0=sigma0)
        if level > 0:  # the flat level is background, not shell (a bad start otherwise: wide shells)
            _start_level(theta, S, n_beta, level, float(counts.sum()))
        step = table_step(s0, h)
        # a free centre: one table length for every centre within 25 px of the start (shared tables)
        rho_max = float(np.hypot(np.abs(x - c[0]), np.abs(z - c[1])).max()) + 0.05 if free else None

        def make_points(cc):
            return PointSet(x - cc[0], z - cc[1], 4, scale, n_beta, step, rho_max)

        return fit_poisson("binned", make_points, counts, theta, S, max_iter=max_iter, log=log, n_data=counts.sum(),
                           diagnostics={"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": step,
                            "pixels": len(ix), "centre_start": np.asarray(c).tolist()},
                           centre=c, free_centre=free, n_frames=n_frames, shell_search=search)

    result = fit_with_search(fit_at, lambda c: np.hypot(xc - c[0], zc - c[1]), counts, n_shells=n_shells, R0=R0,
                             sigma0=sigma0, c0=c0,
                             free=free, what=what)
    result.dispersion = pixel_dispersion(result, image, n_beta, dispersion)
    return result


def _start_level(theta, S, n_beta, level, total):
    """Start values (in place) of a map with a flat `level` per pixel: b from it, the rest to the shells."""
    layout = ParamLayout(S, n_beta)
    flat = level * N_PIX * N_PIX
    theta[layout.background] = level * PIX_PER_UNIT ** 2
    for j in range(S):
        theta[layout.offset(j)] = max(total - flat, 0.1 * total) / (2.0 * S)


def result_theta(result):
    """The parameter vector (:mod:`sevi_lib.fit.layout`) of a fit's shells and background."""
    a = np.concatenate([0.5 * result.weights[:, None], result.beta * result.weights[:, None]], axis=1)
    return ParamLayout(len(result.R), result.beta.shape[1]).pack(a, result.R, result.sigma_R,
                                                                  result.background_density)


def _pixel_chunks(result, chunk, value_only=False):
    """(theta, flat pixel indices, PointSet, shared workspace) of every chunk of the screen's pixels.

    `value_only`: the workspace holds only the value tables
    (:meth:`~sevi_lib.fit.points.PointSet.workspace`).
    """
    theta = result_theta(result)
    S, n = len(result.R), result.beta.shape[1]
    c = np.asarray(result.centre, dtype=np.float64)
    step = float(result.diagnostics["table_step"])
    rho_max = float(np.sqrt(2.0) + np.abs(c).max()) + 0.01
    hp = 1.0 / PIX_PER_UNIT
    ws = None
    for k0 in range(0, N_PIX * N_PIX, chunk):
        flat = np.arange(k0, min(k0 + chunk, N_PIX * N_PIX))
        ix, iz = np.divmod(flat, N_PIX)
        x, z = pixel_nodes(ix, iz)
        pts = PointSet(x - c[0], z - c[1], 4, np.full(len(ix), hp * hp / 4.0), n, step, rho_max)
        ws = pts.workspace(theta, S, value_only=value_only) if ws is None else pts.workspace(theta, S, like=ws)
        yield theta, flat, pts, ws


def pixel_expectations(result, chunk=1 << 16):
    """Expected value of every pixel under a binned fit (its units), shape (1024, 1024).

    The fit's model at its centre, each pixel integrated with the fit's 2 x 2 Gauss nodes and
    radial table step, evaluated in chunks of `chunk` pixels that share one set of tables.
    """
    S = len(result.R)
    mu = np.empty(N_PIX * N_PIX)
    for theta, flat, pts, ws in _pixel_chunks(result, chunk, value_only=True):
        out = np.empty(len(flat))
        pts.loglike(theta, np.zeros(len(flat)), S, want=0, mu_out=out, like=ws)
        mu[flat] = out
    return mu.reshape(N_PIX, N_PIX)


def sandwich_result(result, phi, read_variance, n_frames=None, chunk=1 << 15):
    """The fit with sandwich standard errors for pixel variances ``phi mu + read_variance``.

    The Poisson (quasi-)likelihood weighs each pixel by 1 / mu; when the pixels' variance is
    ``phi mu + s2`` (fitted units) the covariance of the estimate is ``A^-1 B A^-1`` with
    ``A = sum J J^T / mu`` and ``B = sum J J^T (phi mu + s2) / mu^2`` over all pixels (J = d mu /
    d(theta, centre), the centre's columns when it is free, so it shares one matrix with the
    shells). With s2 = 0 this is phi times the expected information's inverse: the
    quasi-Poisson standard errors. The point estimates are the fit's.

    Parameters
    ----------
    result : FitResult
        A binned fit.
    phi, read_variance : float
        The pixel variance law in the fitted units (:func:`sevi_lib.fit.dispersion.variance_fit`).
    n_frames : int, optional
        Frames of the data (the background per frame).
    chunk : int
        Pixels per chunk.

    Returns
    -------
    FitResult
        A new result (``diagnostics["standard_errors"]`` says how they were made; ``dispersion``
        kept).
    """
    S = len(result.R)
    free = not result.centre_fixed
    A = B = None
    for theta, flat, pts, ws in _pixel_chunks(result, chunk):
        P = len(theta)
        J = np.empty((len(flat), P + (2 if free else 0)))
        Jt = np.empty((len(flat), P))
        _kernels.jacobian_kernel(ws, theta, Jt)
        J[:, :P] = Jt
        if free:
            J[:, P:] = pts.shift_gradient(theta, S, like=ws)
        mu = np.empty(len(flat))
        pts.loglike(theta, np.zeros(len(flat)), S, want=0, mu_out=mu, like=ws)
        keep = mu > 0
        J, mu = J[keep], mu[keep]
        var = np.maximum(phi * mu + read_variance, 0.0)
        a = J.T @ (J / mu[:, None])
        b = J.T @ (J * (var / mu ** 2)[:, None])
        A, B = (a, b) if A is None else (A + a, B + b)
    try:
        Ai = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        Ai = np.linalg.pinv(A)
    cov = Ai @ B @ Ai
    P = len(theta)
    diagnostics = dict(result.diagnostics, standard_errors=(
        f"sandwich over all pixels for the variance law phi mu + s2 (fitted units: phi = {phi:.6g}, "
        f"s2 = {read_variance:.6g})"))
    out = make_result(result.method, theta, result.objective, None, S, n_iter=result.n_iter, converged=result.converged,
                      active=bool(np.any(result.constraint_active)), n_data=result.n_data, cov=cov[:P, :P],
                      diagnostics=diagnostics, centre=result.centre, n_frames=n_frames,
                      shell_search=result.shell_search, centre_cov=cov[P:, P:] if free else None)
    out.dispersion = dict(result.dispersion)
    return out


def pixel_dispersion(result, data, n_beta, scale=1.0):
    """The dispersion of the fitted pixels, in the units of the image before division by `scale`.

    :func:`sevi_lib.fit.dispersion.variance_fit` of `data` (the fitted map) against
    :func:`pixel_expectations` (pixels with at least :data:`~sevi_lib.fit.dispersion.MU_MIN`
    expected in the fitted units), phi multiplied by `scale` and the read variance by its square.

    Returns
    -------
    dict
        ``phi``, ``phi_se``, ``read_variance``, ``read_variance_se``, ``pixels``, ``mu_min``,
        ``scale`` (the divisor of the fitted image), ``meaning``.
    """
    mu = pixel_expectations(result)
    n_params = ParamLayout(len(result.R), n_beta).size + (0 if result.centre_fixed else 2)
    est = variance_fit(data, mu, n_params)
    for key in ("phi", "phi_se"):
        est[key] *= scale
    for key in ("read_variance", "read_variance_se"):
        est[key] *= scale * scale
    return dict(est, scale=float(scale), meaning=MEANING)


def _check_counts(total, n_beta, n_shells, what):
    need = min_electrons(n_beta, n_shells)
    if total < need:
        raise InputError(f"{what}: too few counts to fit ({total:g}; at least {need} needed for "
                         f"{n_shells or 1} shell(s) with {n_beta} beta's)")

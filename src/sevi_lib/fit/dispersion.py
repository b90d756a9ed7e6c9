"""Accumulated camera images: the binned fit as a Poisson quasi-likelihood with a dispersion phi.

Many labs accumulate frames on the camera instead of counting electrons. Such an image is,
pixel by pixel and approximately, the count map times a counts-per-electron scale g (the mean
spot flux) plus read noise: its expectation is ``g mu`` (mu the expected electrons in the
pixel) and its variance ``g^2 (1 + cv^2) mu + s2`` (cv the coefficient of variation of the
gain, s2 the read-noise variance summed over the frames). Divided by

    phi = g (1 + cv^2),

the image ``y = I / phi`` has the expectation ``mu / (1 + cv^2)`` and, read noise aside, a
variance equal to its mean: it is fitted as if it held Poisson counts of *effective electrons*
(the number of Poisson electrons carrying the same information as the image). This is the
Poisson quasi-likelihood: the point estimates of the shapes (R, sigma_R, beta's, centre) do
not depend on the scale, the Poisson standard errors of ``I`` itself would be too small by
sqrt(phi) and the shell search's Z (:mod:`sevi_lib.fit.search`) too large by sqrt(phi); on
``I / phi`` both are right. Weights, background and ``n_data`` of such a fit are in effective
electrons (multiply by phi for image units; the electron number itself, ``g`` and ``cv`` are
not separately identifiable from one image).

phi is estimated from the fit (:func:`variance_fit`): the squared residuals of the pixels with
at least :data:`MU_MIN` expected effective electrons against ``phi mu + s2``, weighted least
squares with the weights of their own variance (with s2 = 0 this is the Pearson chi^2 / dof,
the standard quasi-Poisson estimator; the intercept keeps read noise out of phi). It needs a
first phi for the shell search and the scale, so :func:`fit_intensity_map` starts from a
model-free estimate (:func:`pilot_dispersion`), fits, and refits with the fit's phi until they
agree within :data:`PHI_TOL`.

Limits: pixels must be independent (each electron's signal in one pixel, as in centroided or
small-spot images). An image of spots spread over many pixels (the raw-frame sum of the
published camera) has correlated pixels; its per-pixel variance understates the information
loss, and the ``sum`` method (:mod:`sevi_lib.fit.framesum`) models it instead. The read noise
is estimated (``read_variance``) but not weighted into the fit: it only matters in pixels with
few effective electrons, where the shells' parameters have little information.
"""

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.fit.result import SCREEN_AREA

#: Pixels with fewer expected effective electrons do not enter the dispersion estimate.
MU_MIN = 0.25

#: Relative agreement of the fitted phi and the phi the image was divided by that ends the refits.
PHI_TOL = 0.02

#: A count map whose phi exceeds this (and 1 by five standard errors) is not Poisson.
PHI_WARN = 2.0

MEANING = ("phi: the variance of an image pixel over its mean, in image units per effective electron; "
           "for an accumulated camera image an estimate of g (1 + cv^2), g the counts per electron "
           "(the mean spot flux) and cv the gain's coefficient of variation; 1 for Poisson counts. "
           "read_variance: the variance of a pixel whose image value is zero (read noise summed over the frames, "
           "if zero is the image's dark level), image units squared")


def is_intensity(image):
    """Whether a map is an intensity image (the automatic choice of ``sevi fit``).

    True when some value is negative or not an integer: a count map from the detector never is
    (an intensity image with integer values, e.g. summed camera counts, has to be named as one).

    Parameters
    ----------
    image : ndarray

    Returns
    -------
    bool
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        return bool(np.any(image < 0))
    finite = image[np.isfinite(image)]
    return bool(np.any(finite < 0) or np.any(finite != np.round(finite)))


def variance_fit(y, mu, n_params=0, mu_min=MU_MIN, n_iter=6):
    """phi and s2 of ``Var y = phi mu + s2`` from the residuals of a fit.

    Weighted least squares of ``(y - mu)^2`` on ``(mu, 1)`` over the pixels with ``mu >= mu_min``,
    with weights ``1 / (2 V^2 + phi V)``, ``V = phi mu + s2`` from the previous iterate (the
    variance of a squared residual: twice the variance squared, plus the fourth cumulant of
    few-count pixels, about ``phi V``); it starts from the Pearson chi^2 over the pixels
    (``sum (y - mu)^2 / mu / n``, the standard quasi-Poisson estimator, s2 = 0). phi is multiplied by ``n / (n - n_params)``
    (the degrees of freedom). Standard errors are sandwich estimates (no assumption on the
    residuals' kurtosis). s2 may come out negative (an estimate; or a uniform offset added to
    the image, which the model counts as signal).

    Parameters
    ----------
    y, mu : ndarray
        Data and fitted expectation of every pixel (same units).
    n_params : int
        Parameters of the fit.
    mu_min : float
    n_iter : int

    Returns
    -------
    dict
        ``phi``, ``phi_se``, ``read_variance``, ``read_variance_se`` (in the units of `y`),
        ``pixels`` (how many entered), ``mu_min``; phi is NaN when fewer than ten pixels do.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    mu = np.asarray(mu, dtype=np.float64).ravel()
    sel = mu >= mu_min
    return _regression((y[sel] - mu[sel]) ** 2, mu[sel], n_params, mu_min, n_iter)


def _regression(r2, m, n_params, mu_min, n_iter):
    """:func:`variance_fit` on the selected pixels' squared residuals `r2` and expectations `m`."""
    n = len(m)
    out = {"phi": float("nan"), "phi_se": float("nan"), "read_variance": 0.0, "read_variance_se": float("nan"),
           "pixels": n, "mu_min": float(mu_min)}
    if n < 10:
        return out
    phi = float(np.sum(r2 / m) / n)  # Pearson
    s2 = 0.0
    X = np.stack([m, np.ones(n)], axis=1)
    cov = np.full((2, 2), np.nan)
    for _ in range(n_iter):
        v = np.maximum(phi * m + s2, 0.25 * phi * m)
        w = 1.0 / (2.0 * v * v + phi * v)
        A = X.T @ (X * w[:, None])
        try:
            Ai = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            return out
        coef = Ai @ (X.T @ (w * r2))
        if not np.all(np.isfinite(coef)) or coef[0] <= 0:
            break
        phi, s2 = float(coef[0]), float(coef[1])
        e = r2 - X @ coef
        Bw = X * (w * e)[:, None]
        cov = Ai @ (Bw.T @ Bw) @ Ai
    dof = n / max(n - n_params, 1)
    out.update(phi=phi * dof, phi_se=float(np.sqrt(max(cov[0, 0], 0.0))) * dof, read_variance=s2,
               read_variance_se=float(np.sqrt(max(cov[1, 1], 0.0))))
    return out


def pilot_dispersion(image, n_groups=24):
    """A model-free phi of an image (the start of :func:`fit_intensity_map`).

    Each interior pixel's value is compared with the mean of its eight neighbours: the squared
    difference ``d^2`` has the expectation ``(1 + 1/8) Var`` where the image is smooth. The
    pixels are grouped by the mean of the 24 pixels three away (independent of both, so the
    grouping selects nothing of their noise); per group, the mean of ``d^2 / (1 + 1/8)`` against
    the mean m of the 16 pixels two away is a point of ``phi m + s2``, and the line through the
    groups (weighted least squares) gives phi. The thin shells' curvature adds to ``d^2``, so the
    estimate is rough (within about 30 % on shell images), which is all the first shell search
    needs.

    Parameters
    ----------
    image : ndarray, shape (N, N)
    n_groups : int
        Quantile groups of the pixels with signal.

    Returns
    -------
    float
        phi (1.0 when the image holds too little signal to tell).
    """
    img = np.asarray(image, dtype=np.float64)
    w = 3
    n1, n2 = img.shape[0] - 2 * w, img.shape[1] - 2 * w
    c = img[w:w + n1, w:w + n2]
    rings = [np.zeros_like(c) for _ in range(w + 1)]
    for dx in range(-w, w + 1):
        for dz in range(-w, w + 1):
            rings[max(abs(dx), abs(dz))] += img[w + dx:w + dx + n1, w + dz:w + dz + n2]
    d2 = ((c - rings[1] / 8.0) ** 2 / (1.0 + 1.0 / 8.0)).ravel()
    m = (rings[2] / 16.0).ravel()
    z = (rings[3] / 24.0).ravel()
    level = np.median(z)  # the dark part of the image (read noise, background) and above
    keep = z > level
    if np.count_nonzero(keep) < 100 * n_groups:
        return 1.0
    edges = np.quantile(z[keep], np.linspace(0.0, 1.0, n_groups + 1))
    k = np.clip(np.searchsorted(edges, z[keep], side="right") - 1, 0, n_groups - 1)
    cnt = np.bincount(k, minlength=n_groups).astype(np.float64)
    ok = cnt > 1
    mm = np.bincount(k, m[keep], n_groups)[ok] / cnt[ok]
    dd = np.bincount(k, d2[keep], n_groups)[ok] / cnt[ok]
    wt = cnt[ok] / np.maximum(dd, 1e-300) ** 2
    X = np.stack([mm, np.ones(len(mm))], axis=1)
    try:
        coef = np.linalg.solve(X.T @ (X * wt[:, None]), X.T @ (wt * dd))
    except np.linalg.LinAlgError:
        return 1.0
    return float(coef[0]) if np.isfinite(coef[0]) and coef[0] > 0 else 1.0


def flat_level(image):
    """A start value of an image's flat level: the median of its corners (farther than 1 from the
    screen centre, where no shell of radius below about 0.95 reaches), 0 if that is negative."""
    c = pixel_centres()
    far = np.hypot(c[:, None], c[None, :]) > 1.0
    return max(float(np.median(np.asarray(image)[far])), 0.0)


def fit_intensity_map(image, dispersion=None, max_fits=3, what="intensity image", n_frames=None, **kw):
    """Quasi-likelihood fit of an accumulated camera image (intensities, not electron counts).

    The image is divided by phi and fitted as a count map
    (:func:`sevi_lib.fit.binned.fit_count_map` with ``dispersion=phi``); phi starts at
    :func:`pilot_dispersion` and is replaced by the fit's own (:func:`variance_fit` through
    :func:`sevi_lib.fit.binned.pixel_dispersion`) until the two agree within :data:`PHI_TOL`
    (at most `max_fits` fits; each repeats the shell search on the rescaled image). An image with
    negative values (dark-subtracted) is first lifted by a uniform offset, ``-min``, which the
    fit's flat background absorbs; the reported background has it taken out again.

    Parameters
    ----------
    image : ndarray, shape (1024, 1024)
        Accumulated intensity, ``Image[ix, iz]``, finite.
    dispersion : float, optional
        A known phi (image units per effective electron): one fit, no estimate of the scale
        (its measured phi is still reported).
    max_fits : int
    what : str
        Name used in error messages.
    n_frames : int, optional
        Frames accumulated (the background is also reported per frame).
    **kw
        Further arguments of :func:`~sevi_lib.fit.binned.fit_count_map` (``n_beta``,
        ``n_shells``, ``centre``, ``log``, ...).

    Returns
    -------
    sevi_lib.fit.result.FitResult
        Weights, background, ``n_data`` and ``floor`` in effective electrons (image / phi);
        standard errors those of the quasi-likelihood: sandwich estimates for the measured
        variance law ``phi mu + read_variance``
        (:func:`~sevi_lib.fit.binned.sandwich_result`; sqrt(phi) times the Poisson ones
        without read noise). The shell search and floor refer to the last fit's scale. ``dispersion`` holds ``phi`` (the last
        fit's estimate, in image units), ``phi_se``, ``read_variance``, ``scale`` (the phi the
        image was divided by), ``quasi_likelihood`` (True), ``pilot``, ``offset`` (added to every
        pixel, image units), ``fits`` (scale and phi of every fit) and ``meaning``.

    Raises
    ------
    InputError
        Not a finite 1024 x 1024 map, no signal, a bad `dispersion`, or what the fit raises.
    """
    # local: fit.binned imports this module
    from sevi_lib.fit.binned import fit_count_map, sandwich_result

    img = np.asarray(image, dtype=np.float64)
    if img.shape != (N_PIX, N_PIX) or not np.all(np.isfinite(img)):
        raise InputError(f"{what}: expected a finite {N_PIX} x {N_PIX} map, got shape {img.shape}")
    offset = max(0.0, -float(img.min()))
    if offset > 0:
        img = img + offset
    if not img.sum() > 0:
        raise InputError(f"{what}: the image holds no signal")
    level = flat_level(img)
    pilot = pilot_dispersion(img)
    phi = pilot if dispersion is None else float(dispersion)
    fits = []
    for _ in range(max(1, int(max_fits))):
        result = fit_count_map(img, dispersion=phi, what=what, n_frames=n_frames, level=level, **kw)
        est = result.dispersion["phi"]
        fits.append({"scale": phi, "phi": est, "phi_se": result.dispersion["phi_se"],
                     "shells": len(result.R)})
        if dispersion is not None or not (np.isfinite(est) and est > 0) or abs(est / phi - 1.0) <= PHI_TOL:
            break
        phi = est
    disp = result.dispersion
    scale = disp["scale"]
    if np.isfinite(disp["phi"]) and disp["phi"] > 0:
        result = sandwich_result(result, disp["phi"] / scale, disp["read_variance"] / scale ** 2, n_frames)
    if offset > 0:  # the offset, as a flat density of effective electrons per unit screen area
        disp["read_variance"] += disp["phi"] * offset  # the fit counted it as signal
        b_off = offset / scale * PIX_PER_UNIT ** 2
        result.background_density -= b_off
        result.background -= SCREEN_AREA * b_off
        if result.background_per_frame is not None:
            result.background_per_frame -= SCREEN_AREA * b_off / n_frames
    result.dispersion = disp
    disp.update(quasi_likelihood=True, pilot=pilot, offset=offset, level=level, fits=fits,
                given=dispersion is not None)
    return result

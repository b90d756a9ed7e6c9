"""The camera's spot model measured from the isolated spots of a sample of frames.

The second half of the camera survey (:mod:`sevi_lib.detect.camera`): from the frames it samples
for the spot model (:func:`~sevi_lib.detect.camera.spot_frames`, read in chunks),
:func:`measure_spot_model` estimates the spot width and its spread, the correlation (shape), the
gain (peak) distribution and the saturation level, with standard errors, as a
:class:`SpotMeasurement`; :meth:`SpotMeasurement.model` is the
:class:`~sevi_lib.core.spots.SpotModel` detection and calibration then use.

**Isolated spots** (:func:`isolated_spots`, numba kernels one frame at a time in
:mod:`sevi_lib.detect._isolated`; chunks of the sample on several threads): the 8-connected
blobs of pixels ``>= threshold`` with one local maximum (3 x 3, on the frame smoothed by a 3 x 3
box, so that read noise makes no maxima), no lit pixel of another blob within ``reach = max(ceil(4
s0), h)`` pixels (a disc) of the blob's intensity centroid, which lies at least ``reach`` pixels
from the frame's edges, ``h = ceil(3 s0)`` for the rough width ``s0`` that the blobs' areas and
peaks imply (a Gaussian of peak A is above T on ``2 pi s^2 ln(A / T)`` pixels). The patch of
half-width ``h`` around the centroid is fitted, its pixels nearer to another blob's light
(within ``1.2 s0``) left out.

**Spot fit** (:func:`fit_spots`, one numba kernel over all patches): Levenberg-Marquardt of
``pedestal + A exp(-[dx^2 + dz^2 + 2 rho dx dz] / (2 s^2))`` on the patch's pixels, each sampled
at its mean sub-grid offset (``subgrid_offset``, as the detector does), saturated pixels
censored (a residual only while the model is below the saturation level), hot pixels left out,
the pedestal fixed at the noise survey's. A pixel's value is a mean over points spread around
that offset (variance 0.08 px^2 per axis on the published 5 x 5 sub-grid), which widens the spot
by that variance and lowers its peak in proportion; the measured width is
``sqrt(s_fit^2 - 0.08)`` and the gain ``A_fit s_fit^2 / s^2``, so that the renderer reproduces the
frames. Standard errors per spot from ``sigma^2 (J^T J)^-1`` with the residual variance. A spot
whose mean squared residual lies above ``min(CHI2_CUT, 1 + PAIR_SIGMAS x robust sd)`` times the
median over the spots is not a single spot (a neighbour's light; under read noise, a pair of
electrons 2-4 px apart, whose shape departs from one spot by less than the noise per pixel but
by many standard deviations of the residual over a thousand pixels) and is left out.

**Width and shape**: the mean width and its standard error; the spread over electrons is the
standard deviation of the fitted widths less the fits' own errors (method of moments); the
correlation likewise (its mean is reported and should be near 0).

**Gain law**: the gamma (Polya) law, the standard model of an electron multiplier's pulse height
(:mod:`sevi_lib.core.spots`), fitted by maximum likelihood to the spot gains, truncated below at
``gain_floor`` (= 2 threshold: fainter spots are not reliably found, and detection loses them
anyway), with standard errors from the observed information. The few "isolated" spots that
are two electrons closer than the spot width (one round spot of twice the light) are not
separated: they raise the mean gain by about their fraction (the electrons per pixel times the
spot's area, about 1 % at 80 electrons per frame); a mixture with a law of doubled shape was
tried and dropped, its fraction trades off against the cv of a broad law (cv 0.7: 17 % "pairs",
mean 11 % low). Its goodness of fit is a Pearson chi^2 of
the gain histogram (bins of at least 5 expected spots); with the histogram, the fitted curve and
the mean radial profile it goes to the report.

**Saturation**: the frames are uint8, so the camera clips at 255; the survey reports the fraction
of lit pixels there.
"""

from __future__ import annotations

import collections
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from numba import njit

from sevi_lib.core.spots import SpotModel
from sevi_lib.detect._isolated import cut_patches, isolated_workspace, label_frame, select_isolated

__all__ = ["SpotMeasurement", "fit_gain", "fit_spots", "isolated_spots", "measure_spot_model"]

#: Variance (px^2 per axis) of the points a pixel averages around its mean offset (published
#: 5 x 5 sub-grid at 0, 0.2, .., 0.8 px).
SUBGRID_VAR = 0.08

#: Bins of the mean radial profile, in widths.
PROFILE_BINS = np.linspace(0.0, 3.5, 36)

#: Pixels where the spot model is below this (counts above the pedestal) are left out of its fit:
#: the published generator cuts every spot off where it falls below 1 count, and the faint tails
#: are where the neighbours' light is; chosen by the model, not the data, so noise selects nothing.
MODEL_FLOOR = 1.5

#: Spots whose mean squared residual exceeds this many times the median are not single spots
#: (a neighbour's light, a pair a few pixels apart) and are left out.
CHI2_CUT = 3.0

#: ... and so are those whose mean squared residual over the median lies more than this many
#: robust standard deviations (1.4826 x the median absolute deviation over the spots) above 1,
#: where that is tighter than ``CHI2_CUT``: under read noise the residual of a single spot is the
#: noise, whose mean square over ~1000 pixels is known to a few per cent, and a pair of electrons
#: 2-4 px apart adds less than ``CHI2_CUT`` times it but many standard deviations.
PAIR_SIGMAS = 5.0

#: Levenberg-Marquardt iterations per spot.
MAX_ITER = 40

#: Under read noise, lit pixels this close (gaps up to twice this, pixels) are one blob when
#: isolated spots are chosen (:func:`isolated_spots`' ``join_px``): the fragments that noise lifts
#: above the threshold at a spot's edge lie within a pixel or two of it.
JOIN_PX = 2


# ------------------------------------------------------------------------------ isolated spots
def _rough_width(area, peak, threshold):
    """Median width (px) implied by blob areas and peaks: area = 2 pi s^2 ln(peak / threshold)."""
    ok = peak > 1.5 * threshold
    if not np.any(ok):
        return math.nan
    s2 = area[ok] / (2.0 * np.pi * np.log(peak[ok] / threshold))
    return float(np.sqrt(np.median(s2)))


def isolated_spots(frames, threshold, mask=None, half_width=None, max_spots=20000, *, join_px=0, rough_width=None):
    """Patches around the isolated single spots of `frames` (see the module docstring).

    Parameters
    ----------
    frames : ndarray of uint8, shape (k, n, m)
    threshold : float
        Lit pixels are ``>= threshold``.
    mask : ndarray of bool, shape (n, m), optional
        Pixels left out (hot pixels): NaN in the patches, never lit.
    half_width : int, optional
        Patch half-width; default ``ceil(3 s0)`` from the blobs' rough width ``s0``.
    max_spots : int
        At most this many patches (the first ones in frame order).
    join_px : int
        Lit pixels closer than ``join_px + 1`` pixels to one another (gaps of up to ``2 join_px``
        pixels, 8-connected) belong to one blob. 0 (noise-free frames): blobs are the 8-connected
        lit pixels. Under read noise the edge of a spot is ragged: noise lifts single pixels just
        outside its lit area above the threshold, and such fragments, counted as another blob
        near the spot, would reject it; faint spots have shallow edges and many fragments, so the
        sample (and the gain law fitted to it) would lean to bright spots
        (:func:`measure_spot_model` joins them).
    rough_width : float, optional
        ``s0`` as found on an earlier chunk of the same sample, so that every chunk is cut
        alike; default: from the blobs of the first 16 frames.

    Returns
    -------
    patches : ndarray of float64, shape (n_spots, 2 h + 1, 2 h + 1)
        Pixel values, NaN where masked.
    corners : ndarray of int64, shape (n_spots, 3)
        Frame index and the pixel ``(ix, iz)`` of each patch's element [0, 0].
    rough_width : float
        ``s0`` (px; NaN when no blob is bright enough).
    """
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    n_i, n_j = frames.shape[1:]
    ws = isolated_workspace((n_i, n_j))
    masked = np.zeros((n_i, n_j), dtype=np.bool_) if mask is None else np.asarray(mask, dtype=np.bool_)
    if rough_width is not None:
        s0 = float(rough_width)
    else:  # from the blobs (8-connected lit pixels) of the first frames
        areas, peaks = [], []
        for f in frames[: min(len(frames), 16)]:
            count = label_frame(ws, f, masked, float(threshold), 0)
            areas.append(ws.area[1: count + 1].copy())
            peaks.append(ws.peak[1: count + 1].astype(np.float64))
        s0 = _rough_width(np.concatenate(areas), np.concatenate(peaks), threshold) if areas else math.nan
    if half_width is None:
        half_width = int(math.ceil(3.0 * s0)) if math.isfinite(s0) else 12
    h = max(int(half_width), 3)
    # a neighbour's light falls below half a count about one width beyond its lit pixels
    tail = int(math.ceil(1.2 * s0)) if math.isfinite(s0) else 8
    # a spot of peak <= 400 is lit out to 2.8 widths (threshold >= 10): no other blob may come closer
    reach = max(int(math.ceil(4.0 * s0)) if math.isfinite(s0) else 32, h)
    # no lit pixel of another blob within `reach` px of the centroid: a disc that does not depend on
    # the spot's own brightness, so that the sample is not biased towards faint spots
    d = np.arange(-reach, reach + 1)
    di, dj = np.meshgrid(d, d, indexing="ij")
    inside = di**2 + dj**2 <= reach * reach
    disc = np.column_stack([di[inside], dj[inside]]).astype(np.int64)
    P = 2 * h + 1
    out, corners = [], []
    total = 0
    for fi, f in enumerate(frames):
        if total >= max_spots:
            break
        count = label_frame(ws, f, masked, float(threshold), int(join_px))
        pos, own = np.empty((count, 2), dtype=np.int64), np.empty(count, dtype=np.int64)
        got = select_isolated(ws, count, reach, disc, max_spots - total, pos, own) if count else 0
        if got == 0:
            continue
        patch = np.empty((got, P, P))
        cut_patches(ws, f, masked, pos, own, got, h, tail, patch)
        out.append(patch)
        corners.append(np.column_stack([np.full(got, fi), pos[:got] - h]))
        total += got
    if not out:
        return np.empty((0, P, P)), np.empty((0, 3), dtype=np.int64), s0
    return np.concatenate(out), np.concatenate(corners).astype(np.int64), s0


# ------------------------------------------------------------------------------------ spot fit
@njit(cache=True, nogil=True)
def _spot_sse(D, p, ped, sat, off, J, r):
    """Residuals r, Jacobian J (rows of used pixels) and SSE of one spot model; returns (sse, n used)."""
    a, b, A, s, rho = p[0], p[1], p[2], p[3], p[4]
    inv = 1.0 / (s * s)
    n = 0
    sse = 0.0
    for i in range(D.shape[0]):
        dx = i + off - a
        for j in range(D.shape[1]):
            d = D[i, j]
            if d != d:  # masked
                continue
            dz = j + off - b
            q = dx * dx + dz * dz + 2.0 * rho * dx * dz
            e = math.exp(-0.5 * q * inv)
            g = A * e
            if g < MODEL_FLOOR:  # the faint tail: left out (see MODEL_FLOOR)
                continue
            m = ped + g
            if d >= sat and m >= sat:
                res = 0.0
                for c in range(5):
                    J[n, c] = 0.0
            else:
                res = d - m
                J[n, 0] = g * (dx + rho * dz) * inv
                J[n, 1] = g * (dz + rho * dx) * inv
                J[n, 2] = e
                J[n, 3] = g * q * inv / s
                J[n, 4] = -g * dx * dz * inv
            r[n] = res
            sse += res * res
            n += 1
    return sse, n


@njit(cache=True, nogil=True)
def _fit_one(D, p, ped, sat, off, J, r, trial, cov):
    """Levenberg-Marquardt of one spot from p (updated); returns (sse, n used, converged)."""
    sse, n = _spot_sse(D, p, ped, sat, off, J, r)
    lam = 1e-3
    conv = False
    H = np.empty((5, 5))
    g = np.empty(5)
    for _ in range(MAX_ITER):
        for u in range(5):
            g[u] = 0.0
            for w in range(5):
                H[u, w] = 0.0
        for k in range(n):
            for u in range(5):
                ju = J[k, u]
                g[u] += ju * r[k]
                for w in range(u, 5):
                    H[u, w] += ju * J[k, w]
        for u in range(5):
            for w in range(u):
                H[u, w] = H[w, u]
        improved = False
        for _t in range(8):
            Hd = H.copy()
            for u in range(5):
                Hd[u, u] = H[u, u] * (1.0 + lam) + 1e-12
            try:
                step = np.linalg.solve(Hd, g)
            except Exception:  # noqa: BLE001 (numba: singular matrix)
                lam *= 10.0
                continue
            for u in range(5):
                trial[u] = p[u] + step[u]
            trial[3] = max(trial[3], 0.3)
            trial[4] = min(max(trial[4], -0.95), 0.95)
            trial[2] = max(trial[2], 1e-3)
            new, n2 = _spot_sse(D, trial, ped, sat, off, J, r)
            if new <= sse:
                small = abs(sse - new) <= 1e-10 * (sse + 1e-300) or abs(step[0]) + abs(step[1]) < 1e-6
                p[:] = trial
                sse = new
                n = n2
                lam = max(lam * 0.3, 1e-9)
                improved = True
                if small:
                    conv = True
                break
            lam *= 10.0
            _spot_sse(D, p, ped, sat, off, J, r)  # restore J, r at p
        if not improved:
            conv = True  # no downhill step: at a minimum (or stuck)
        if conv:
            break
    # covariance (J^T J)^-1 at p
    sse, n = _spot_sse(D, p, ped, sat, off, J, r)
    for u in range(5):
        for w in range(5):
            acc = 0.0
            for k in range(n):
                acc += J[k, u] * J[k, w]
            H[u, w] = acc
    try:
        inv = np.linalg.inv(H)
        for u in range(5):
            for w in range(5):
                cov[u, w] = inv[u, w]
    except Exception:  # noqa: BLE001
        for u in range(5):
            for w in range(5):
                cov[u, w] = np.inf
    return sse, n, conv


@njit(cache=True, nogil=True)
def _fit_patches(patches, start, ped, sat, off, out):
    """Fit every patch from its start (a, b, A, s, rho); out[:, :] = p (5), se (5), sse, n, converged."""
    P = patches.shape[1]
    J = np.empty((P * patches.shape[2], 5))
    r = np.empty(P * patches.shape[2])
    trial = np.empty(5)
    cov = np.empty((5, 5))
    p = np.empty(5)
    for k in range(patches.shape[0]):
        for u in range(5):
            p[u] = start[k, u]
        sse, n, conv = _fit_one(patches[k], p, ped, sat, off, J, r, trial, cov)
        var = sse / max(n - 5, 1)
        for u in range(5):
            out[k, u] = p[u]
            out[k, 5 + u] = math.sqrt(max(cov[u, u] * var, 0.0)) if cov[u, u] < np.inf else np.inf
        out[k, 10] = sse
        out[k, 11] = n
        out[k, 12] = 1.0 if conv else 0.0


def fit_spots(patches, pedestal=0.0, saturation=255.0, subgrid_offset=0.4, width0=None):
    """Fit one spot to each patch (see the module docstring).

    Parameters
    ----------
    patches : ndarray, shape (n, P, P)
        Pixel values, NaN where masked; the spot's peak near the centre.
    pedestal : float
        The camera's pedestal (counts), fixed.
    saturation : float
        Pixels at or above it are censored.
    subgrid_offset : float
        Mean sample offset of a pixel from its lower edge (px).
    width0 : float, optional
        Starting width (px); default a third of the patch half-width.

    Returns
    -------
    ndarray, shape (n, 13)
        ``a, b`` (patch pixel coordinates), ``A, s, rho`` (as fitted, pixel point samples), their
        five standard errors, the SSE, the pixels used and 1 where converged.
    """
    patches = np.ascontiguousarray(patches, dtype=np.float64)
    n, P, _ = patches.shape
    h = (P - 1) // 2
    start = np.empty((n, 5))
    start[:, 0] = h + 0.5
    start[:, 1] = h + 0.5
    with np.errstate(invalid="ignore"):
        centre = patches[:, h, h]
    start[:, 2] = np.where(np.isfinite(centre), np.maximum(centre - pedestal, 1.0), 50.0)
    start[:, 3] = float(width0) if width0 else max(h / 3.0, 1.0)
    start[:, 4] = 0.0
    out = np.empty((n, 13))
    if n:
        _fit_patches(patches, start, float(pedestal), float(saturation), float(subgrid_offset), out)
    return out


# ------------------------------------------------------------------------------------ gain law
def _gamma_logpdf(x, k, theta):
    # local: scipy.special takes about a second to import and detection needs it only here
    from scipy.special import gammaln

    return (k - 1.0) * np.log(x) - x / theta - k * math.log(theta) - gammaln(k)


def _gamma_nll(params, A, floor):
    """Negative log-likelihood of (log mean, log cv) for gains A of a gamma law truncated below at floor."""
    # local: scipy.special takes about a second to import and detection needs it only here
    from scipy.special import gammaincc

    mean, cv = math.exp(params[0]), math.exp(params[1])
    k = 1.0 / (cv * cv)
    theta = mean / k
    keep = gammaincc(k, floor / theta)
    return -(float(np.sum(_gamma_logpdf(A, k, theta))) - A.size * math.log(max(keep, 1e-300)))


def _numerical_cov(fun, x, steps):
    """Inverse of the central-difference Hessian of `fun` at `x` (inf where singular)."""
    d = len(x)
    H = np.empty((d, d))
    f0 = fun(x)
    for a in range(d):
        for b in range(a, d):
            ea = np.zeros(d)
            eb = np.zeros(d)
            ea[a] = steps[a]
            eb[b] = steps[b]
            if a == b:
                H[a, a] = (fun(x + ea) - 2 * f0 + fun(x - ea)) / steps[a] ** 2
            else:
                H[a, b] = H[b, a] = (fun(x + ea + eb) - fun(x + ea - eb) - fun(x - ea + eb) + fun(x - ea - eb)) / (
                    4 * steps[a] * steps[b])
    try:
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full((d, d), np.inf)


def fit_gain(A, floor):
    """Maximum-likelihood gamma gain law of spot gains truncated below at `floor`.

    Parameters
    ----------
    A : array_like
        Spot gains (counts); those below `floor` are ignored.
    floor : float
        Truncation: gains below it are not in the sample.

    Returns
    -------
    dict
        ``mean``, ``cv`` and their standard errors (``mean_se``, ``cv_se``: observed information,
        delta method), ``n`` (gains used), ``chi2``, ``dof``, ``p`` (Pearson test of the histogram,
        about 40 bins of equal counts), ``edges``, ``counts``, ``expected`` (the histogram and the
        fitted law's expectation per bin, for the report).

    Raises
    ------
    ValueError
        Fewer than 20 gains above the floor.
    """
    # local: scipy.optimize/special/stats take seconds to import and detection needs them only here
    from scipy.optimize import minimize
    from scipy.special import gammaincc
    from scipy.stats import chi2 as chi2_law

    A = np.asarray(A, dtype=np.float64)
    A = A[np.isfinite(A) & (A >= floor)]
    if A.size < 20:
        raise ValueError(f"only {A.size} isolated spots brighter than {floor:g} counts: too few to fit the gain law")
    m, sd = float(A.mean()), float(A.std())
    x0 = np.array([math.log(m), math.log(min(max(sd / m, 0.03), 2.0))])
    res = minimize(_gamma_nll, x0, args=(A, floor), method="Nelder-Mead",
                   options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 4000})
    x = res.x
    cov = _numerical_cov(lambda p: _gamma_nll(p, A, floor), x, np.array([1e-3, 1e-3]))
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    mean, cv = math.exp(x[0]), math.exp(x[1])
    k = 1.0 / (cv * cv)
    theta = mean / k
    edges = np.unique(np.quantile(A, np.linspace(0, 1, min(41, max(A.size // 25, 4) + 1))))
    edges[0], edges[-1] = floor, edges[-1] * 1.0001
    above = gammaincc(k, edges / theta) / max(gammaincc(k, floor / theta), 1e-300)
    expected = A.size * (above[:-1] - above[1:])
    expected[-1] += A.size * above[-1]
    counts = np.histogram(A, edges)[0].astype(np.float64)
    use = expected > 0
    chi2 = float(np.sum((counts[use] - expected[use]) ** 2 / expected[use]))
    dof = max(int(use.sum()) - 1 - 2, 1)
    return {"mean": mean, "mean_se": mean * float(se[0]), "cv": cv, "cv_se": cv * float(se[1]), "n": int(A.size),
            "chi2": chi2, "dof": dof, "p": float(chi2_law.sf(chi2, dof)), "edges": edges.tolist(),
            "counts": counts.tolist(), "expected": expected.tolist()}


# --------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class SpotMeasurement:
    """The spot model a survey measured (``camera.json``'s ``spot`` entry).

    Attributes
    ----------
    n_spots : int
        Isolated spots whose fits are used.
    sigma_px, sigma_px_se : float
        Mean spot width (pixels) and its standard error.
    sigma_sd_px, sigma_sd_px_se : float
        Spread of the width over electrons (pixels) and its standard error.
    rho_mean, rho_sd, rho_sd_se : float
        Mean and spread of the correlation, the spread's standard error.
    gain_mean, gain_mean_se, gain_cv, gain_cv_se : float
        The gamma gain law's mean (counts) and coefficient of variation, with standard errors.
    gain_floor : float
        Gains below this were not used (truncated likelihood).
    gain_chi2, gain_dof, gain_p : float
        Pearson test of the gain histogram against the fitted law.
    fit_chi2 : float
        Median over the spots of the mean squared residual of the spot fit over the noise variance
        (read noise^2 + 1/12 rounding): about 1 when the spots have the model's shape.
    saturation_level : int
        The level at which the camera clips: 255 (the frames are uint8).
    saturated_fraction : float
        Fraction of the lit pixels at the saturation level.
    gain_hist : dict
        ``edges``, ``counts``, ``expected`` (the report's gain histogram).
    profile : dict
        ``r`` (bin centres, widths), ``mean`` (mean (value - pedestal) / A over the spots), ``model``
        (``exp(-r^2 / 2)``): the mean radial profile.
    n_frames : int
        Frames the isolated spots came from (0: not recorded, a ``camera.json`` written before).
    """

    n_spots: int
    sigma_px: float
    sigma_px_se: float
    sigma_sd_px: float
    sigma_sd_px_se: float
    rho_mean: float
    rho_sd: float
    rho_sd_se: float
    gain_mean: float
    gain_mean_se: float
    gain_cv: float
    gain_cv_se: float
    gain_floor: float
    gain_chi2: float
    gain_dof: int
    gain_p: float
    fit_chi2: float
    saturation_level: int = 255
    saturated_fraction: float = 0.0
    gain_hist: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)
    n_frames: int = 0

    def model(self):
        """The :class:`~sevi_lib.core.spots.SpotModel` measured (gamma gain law)."""
        return SpotModel(sigma_px=float(self.sigma_px), sigma_sd_px=float(min(self.sigma_sd_px, 0.5 * self.sigma_px)),
                         rho_sd=float(min(self.rho_sd, 1.0)), gain="gamma", gain_mean=float(self.gain_mean),
                         gain_cv=float(min(max(self.gain_cv, 0.01), 3.0))).validate()

    def to_dict(self):
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; ``ValueError`` on a missing or unknown key."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"spot: unknown key(s) {', '.join(unknown)}")
        missing = sorted(f.name for f in fields(cls) if f.name not in d and f.name not in (
            "saturation_level", "saturated_fraction", "gain_hist", "profile", "n_frames"))
        if missing:
            raise ValueError(f"spot: missing key(s) {', '.join(missing)}")
        return cls(**d)

    def summary_lines(self):
        """Lines for ``sevi survey`` and the detection summary."""
        return [
            f"spot model from {self.n_spots} isolated spots{f' of {self.n_frames} frames' if self.n_frames else ''}: width {self.sigma_px:.3f} +- {self.sigma_px_se:.3f} px "
            f"(spread {self.sigma_sd_px:.3f} +- {self.sigma_sd_px_se:.3f}), correlation spread {self.rho_sd:.3f} "
            f"+- {self.rho_sd_se:.3f} (mean {self.rho_mean:+.3f})",
            f"gain (gamma law): mean {self.gain_mean:.1f} +- {self.gain_mean_se:.1f} counts, cv {self.gain_cv:.3f} "
            f"+- {self.gain_cv_se:.3f} ({self.gain_floor:g} counts and up); "
            f"histogram chi2/dof {self.gain_chi2:.1f}/{self.gain_dof} (p = {self.gain_p:.2g}); spot-fit "
            f"residual / noise {self.fit_chi2:.2f}; {100 * self.saturated_fraction:.2f} % of lit pixels saturated "
            f"(at {self.saturation_level})",
        ]


def _spread(values, errors):
    """(mean, se of mean, sd net of the errors, se of that sd) of measurements with their errors."""
    n = values.size
    mean = float(values.mean())
    var = float(values.var(ddof=1))
    noise = float(np.mean(np.minimum(errors, 5.0 * np.median(errors)) ** 2))  # a few failed fits: no weight
    sd = math.sqrt(max(var - noise, 0.0))
    sd_se = math.sqrt(2.0 / max(n - 1, 1)) * var / max(2.0 * sd, math.sqrt(var / max(n, 1)) + 1e-12)
    return mean, math.sqrt(var / n), sd, sd_se


def _spots_in_chunks(chunks, threshold, mask, join_px, max_spots, threads, fit_args):
    """:func:`isolated_spots` and :func:`fit_spots` over `chunks` in order, `threads` chunks at a time.

    The first chunk fixes the rough width (the fits' starting width) and the patch size for the
    rest (every chunk is cut alike); the patches are the first `max_spots` in frame order
    whatever the thread count (the kernels release the GIL, so the chunks run in parallel), and
    each spot's fit depends on its patch alone. At most ``2 threads`` chunks are held in memory
    at once. `fit_args` are :func:`fit_spots`' pedestal, saturation and subgrid offset.

    Returns
    -------
    patches, fits : list of ndarray
        Per chunk, in order (the last ones may be empty).
    s0 : float or None
        The rough width (None: no chunk).
    counts : tuple of int
        Frames, lit pixels and pixels at the saturation level (255) over all chunks.
    """
    parts, fitted, pending = [], [], collections.deque()
    state = {"s0": None, "h": None, "total": 0, "frames": 0, "lit": 0, "sat": 0}

    def find(chunk, s0, h):
        got, _, s = isolated_spots(chunk, threshold, mask=mask, half_width=h, max_spots=max_spots, join_px=join_px,
                                   rough_width=s0)
        return got, fit_spots(got, *fit_args, width0=s if math.isfinite(s) else None), s

    def collect(job):
        got, fits, s = job.result()
        if state["s0"] is None:
            state["s0"], state["h"] = s, (got.shape[1] - 1) // 2
        keep = max(max_spots - state["total"], 0)
        parts.append(got[:keep])
        fitted.append(fits[:keep])
        state["total"] += len(parts[-1])

    threads = max(int(threads), 1)
    with ThreadPoolExecutor(threads) as pool:
        for chunk in chunks:
            chunk = chunk[None] if chunk.ndim == 2 else chunk
            state["frames"] += len(chunk)
            state["lit"] += int(np.count_nonzero(chunk >= threshold))
            state["sat"] += int(np.count_nonzero(chunk == 255))
            if state["s0"] is None and pending:  # the first chunk's rough width cuts the others
                collect(pending.popleft())
            if state["total"] >= max_spots:
                continue
            pending.append(pool.submit(find, chunk, state["s0"], state["h"]))
            while len(pending) >= 2 * threads or (pending and pending[0].done()):
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    return parts, fitted, state["s0"], (state["frames"], state["lit"], state["sat"])


def measure_spot_model(frames, *, threshold, pedestal=0.0, read_noise=0.0, mask=None, subgrid_offset=0.4,
                       max_spots=20000, threads=1):
    """Measure the spot model from the isolated spots of `frames` (see the module docstring).

    Parameters
    ----------
    frames : ndarray of uint8, shape (k, n, m), or an iterable of such arrays
        The sample, whole or in chunks (read one at a time: a sample of a thousand frames need
        not be in memory at once).
    threshold : float
        Lit pixels are ``>= threshold`` (the detector's threshold under the survey's noise).
    pedestal, read_noise : float
        From the noise survey (counts).
    mask : ndarray of bool, optional
        Hot pixels.
    subgrid_offset : float
        Mean sample offset of a pixel (px).
    max_spots : int
        At most this many isolated spots are fitted.
    threads : int
        Chunks whose isolated spots are found at a time (the answer does not depend on it).

    Returns
    -------
    SpotMeasurement

    Raises
    ------
    ValueError
        Too few isolated spots to measure the model.
    """
    chunks = [frames] if isinstance(frames, np.ndarray) else frames
    level = 255  # uint8 frames: the camera clips at 255
    parts, fitted, _, (n_frames, n_lit, n_sat) = _spots_in_chunks(
        chunks, threshold, mask, JOIN_PX if read_noise > 0 else 0, max_spots, threads,
        (pedestal, float(level), subgrid_offset))
    sat_frac = n_sat / max(n_lit, 1)
    patches = np.concatenate(parts) if parts else np.empty((0, 1, 1))
    if len(patches) < 20:
        raise ValueError(f"only {len(patches)} isolated spots in {n_frames} sampled frames: too few to measure the "
                         "spot model")
    fits = np.concatenate(fitted)
    h = (patches.shape[1] - 1) // 2
    a, b, A, s, rho = fits[:, 0], fits[:, 1], fits[:, 2], fits[:, 3], fits[:, 4]
    se = fits[:, 5:10]
    ok = (fits[:, 12] > 0) & np.all(np.isfinite(se), axis=1) & (A > 0) & (s > 0.5) & (s < 0.45 * h * 2)
    ok &= (np.abs(a - h - 0.5) < 2.0) & (np.abs(b - h - 0.5) < 2.0) & (np.abs(rho) < 0.9)
    red = fits[:, 10] / np.maximum(fits[:, 11] - 5, 1)
    if np.count_nonzero(ok) >= 20:
        q = red / np.median(red[ok])
        spread = 1.4826 * float(np.median(np.abs(q[ok] - 1.0)))
        ok &= q <= min(CHI2_CUT, 1.0 + PAIR_SIGMAS * spread)
    if np.count_nonzero(ok) < 20:
        raise ValueError(f"only {np.count_nonzero(ok)} isolated spots could be fitted: too few to measure the spot model")
    s_fit, A_fit = s[ok], A[ok]
    s_true = np.sqrt(np.maximum(s_fit**2 - SUBGRID_VAR, 0.01))
    gain = A_fit * s_fit**2 / s_true**2
    s_se = se[ok, 3] * s_fit / s_true
    s_mean, s_mean_se, s_sd, s_sd_se = _spread(s_true, s_se)
    r_mean, _, r_sd, r_sd_se = _spread(rho[ok], se[ok, 4])
    floor = 2.0 * float(threshold)
    g = fit_gain(gain, floor)
    noise_var = read_noise**2 + 1.0 / 12.0
    fit_chi2 = float(np.median(red[ok]) / noise_var)
    # mean radial profile in widths (unsaturated spots, pixels not masked)
    P = patches.shape[1]
    ii = np.arange(P)[None, :, None] + subgrid_offset
    jj = np.arange(P)[None, None, :] + subgrid_offset
    sel = np.flatnonzero(ok)
    dx = ii - a[sel, None, None]
    dz = jj - b[sel, None, None]
    r = np.sqrt(dx**2 + dz**2) / s[sel, None, None]
    v = (patches[sel] - pedestal) / A[sel, None, None]
    unsat = (np.nanmax(patches[sel], axis=(1, 2)) < level)[:, None, None] & np.isfinite(v)
    rr, vv = np.broadcast_to(r, v.shape)[unsat], v[unsat]
    nb = np.histogram(rr, PROFILE_BINS)[0]
    sb = np.histogram(rr, PROFILE_BINS, weights=vv)[0]
    centres = 0.5 * (PROFILE_BINS[1:] + PROFILE_BINS[:-1])
    prof = np.where(nb > 0, sb / np.maximum(nb, 1), np.nan)
    return SpotMeasurement(
        n_spots=int(ok.sum()), sigma_px=s_mean, sigma_px_se=s_mean_se, sigma_sd_px=s_sd, sigma_sd_px_se=s_sd_se,
        rho_mean=r_mean, rho_sd=r_sd, rho_sd_se=r_sd_se, gain_mean=g["mean"], gain_mean_se=g["mean_se"],
        gain_cv=g["cv"], gain_cv_se=g["cv_se"], gain_floor=floor, gain_chi2=g["chi2"], gain_dof=g["dof"],
        gain_p=g["p"], fit_chi2=fit_chi2, saturation_level=int(level), saturated_fraction=sat_frac,
        gain_hist={"edges": g["edges"], "counts": g["counts"], "expected": g["expected"]}, n_frames=n_frames,
        profile={"r": centres.tolist(), "mean": [None if not np.isfinite(x) else float(x) for x in prof],
                 "model": np.exp(-0.5 * centres**2).tolist()})

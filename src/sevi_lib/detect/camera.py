"""The camera survey: read noise, pedestal and hot pixels estimated from the frames themselves.

A lab camera adds Gaussian read noise to every pixel before rounding and clipping to [0, 255]
(so an empty pixel reads 0, 1, 2, .. with ``P(0) = Phi((0.5 - pedestal) / sd)``) and has a few
hot pixels, lit at a fixed level in every frame. :func:`survey_frames` looks at a sample of
frames spread over the file (:class:`~sevi_lib.detect.settings.SurveySettings`, 64 by default;
a measured spot model from a larger one, :func:`spot_frames`) and returns a :class:`CameraSurvey`;
``sevi survey`` writes it as JSON and ``sevi detect --camera`` reads it back
(:mod:`sevi_lib.detect.shards`).

**Noise.** The pixel values far from any light follow the clipped, rounded normal
``v = clip(round(pedestal + sd e), 0, 255)``, ``e ~ N(0, 1)``; its two parameters are
estimated by maximum likelihood from the histogram of such values (:func:`fit_clipped_normal`,
the likelihood of the histogram bins, conditional on the values being below the bright level,
with the standard errors from the observed information). "Far from light" means more than
``exclude_px`` pixels (Chebyshev distance) from every pixel at or above the bright level
``B = max(ceil(pedestal + k sd), bright_floor)`` (``k = noise_sigmas``), so that the tails of
the spots (below 0.5 counts only 25-27 px from a spot's centre) do not widen the noise. The
bright level needs the noise, so the estimate is iterated to a fixed point (at most 4 fits):
from the lowest level ``bright_floor`` or, when (almost) no pixel lies far from such values (a
noisy camera: fewer than :data:`MIN_QUIET_FRACTION` of them), from a first fit to the low values
of all pixels (at most the 75 % quantile + 2).
With two distinct values only the data determine one parameter: the pedestal is then fixed
(at 0 when 0 is one of them, else at their mean) and the width fitted; with one distinct value
the noise is 0 (the published frames: every pixel far from a spot is exactly 0).

**Hot pixels.** A pixel is hot when it is at or above the bright level in most sampled frames
(more than half) *and* the median over the sampled frames of its excess over the median of
its 8 neighbours is at least the bright level. Light of electrons spreads over a spot 7.7 px
wide, so even the pixels at the poles of the rings, lit in most frames, exceed their
neighbours by a count or two at most; a hot pixel stands alone. Its level is its median value.

**What detection does with it** (:meth:`CameraSurvey.detector_params` and
:class:`~sevi_lib.detect.blobs.FrameDetector`): the blob threshold becomes at least
``ceil(pedestal + k sd)`` (and ``peak_min`` at least that); a local maximum (seed of the fit,
test of an isolated spot) must be the highest pixel within the radius over which a spot falls
by ``k sd`` (:meth:`CameraSurvey.peak_radius`: 4 px for sd 1.5; 3 x 3 without noise), since the
flat top of a noisy spot has spurious 3 x 3 maxima that seed spurious fit components (with
the 3 x 3 rule, 1.5 counts of noise cost 7 % of precision at 80 electrons per frame, with
radius 4 it is back at the noise-free value); masked pixels read 0 for the
detector, so they seed no blob and join none, and inside a blob they are outside it for the
spot fit (zero weight in the residual; an isolated spot's centroid leaves them out). The
raw-frame sum keeps them (the frame-sum fit masks them itself).

The loops over pixels are numba kernels (:func:`quiet_histogram`).
"""

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from numba import njit

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.io import FrameReader, check_input, check_outputs, file_fingerprint, write_text
from sevi_lib.core.progress import ProgressLog
from sevi_lib.core.spots import SpotModel
from sevi_lib.detect.settings import NO_FAINT_PASS, DetectorParams, FaintParams, SurveySettings, spot_detector_params
from sevi_lib.detect.spotmodel import SpotMeasurement, measure_spot_model

__all__ = ["CameraSurvey", "detected_gain_check", "fit_clipped_normal", "quiet_histogram", "read_survey",
           "spot_model_checks", "survey_file", "survey_frames", "write_survey"]

#: Value of the ``kind`` key of a survey's JSON.
KIND = "sevi camera survey"


@dataclass(frozen=True)
class CameraSurvey:
    """What a camera survey found (``sevi survey``'s JSON, ``sevi detect --camera``).

    Attributes
    ----------
    read_noise, read_noise_se : float
        Read-noise standard deviation (counts) and its standard error.
    pedestal, pedestal_se : float
        Mean of the noise before rounding and clipping (counts) and its standard error.
    hot_pixels : tuple of (int, int)
        Masked pixels ``(ix, iz)`` (``Image[ix, iz]``), sorted.
    hot_levels : tuple of float
        Median value of each hot pixel over the sampled frames (counts).
    bright_level : int
        Pixels at or above this were light, not noise (see the module).
    noise_pixels : int
        Pixel values (all sampled frames) in the final noise fit.
    frames_sampled : tuple of int
        Indices of the sampled frames in the file.
    n_file_frames : int
        Frames in the file.
    settings : dict
        The :class:`~sevi_lib.detect.settings.SurveySettings` used.
    source : str
        The frames file, as given ('' for frames given as an array).
    frames_fingerprint : str
        Its :func:`~sevi_lib.core.io.file_fingerprint` ('' for an array).
    spot : dict or None
        The spot model measured from the isolated spots
        (:class:`~sevi_lib.detect.spotmodel.SpotMeasurement` as a dict; None when too few).
    spot_model : dict
        The :class:`~sevi_lib.core.spots.SpotModel` detection and calibration use (empty: the
        published model).
    spot_model_source : str
        Where it comes from: ``measured``, ``published`` (chosen, or measured and consistent
        with the published model within the tolerances of :func:`spot_model_checks`) or ``given``.
    warnings : tuple of str
        What the data contradict (one line each, with the numbers); the survey, the detection
        summary and the top of the report show them.
    pileup : dict or None
        The pile-up prior measured for a spot model other than the published one
        (:func:`~sevi_lib.detect.pileup.measure_pileup`: ``odds``, ``ratio``, ``target``,
        ``electrons``, ..); detection then draws ambiguous counts from the posterior under it
        (:meth:`detector_params`). None: the published model's fixed prior and mode.
    """

    read_noise: float
    read_noise_se: float
    pedestal: float
    pedestal_se: float
    hot_pixels: tuple = ()
    hot_levels: tuple = ()
    bright_level: int = 4
    noise_pixels: int = 0
    frames_sampled: tuple = ()
    n_file_frames: int = 0
    settings: dict = field(default_factory=lambda: SurveySettings().to_dict())
    source: str = ""
    frames_fingerprint: str = ""
    spot: dict | None = None
    spot_model: dict = field(default_factory=dict)
    spot_model_source: str = "published"
    warnings: tuple = ()
    pileup: dict | None = None

    def spots(self):
        """The :class:`~sevi_lib.core.spots.SpotModel` in use."""
        return SpotModel.from_dict(self.spot_model)

    def faint_fraction(self, params=None):
        """Fraction of the electrons whose spot peaks below the detection floor (the gain law in use).

        The floor is :meth:`detection_floor`. Detection cannot find them: it finds about
        ``1 - faint_fraction`` of the electrons wherever they land, which thins the image without
        biasing its shape.
        """
        return _below(self.spots(), self.detection_floor(params))

    def detection_floor(self, params=None):
        """Faintest spot peak (counts) detection finds: ``peak_min``, or under read noise the faint-spot pass's.

        Under read noise the faint-spot pass (:meth:`faint_params`) finds an isolated spot whose
        filtered value reaches its level; its floor is the peak at which the expected filtered
        value of a spot centred on a pixel (the model's width, the pixels' clipped and rounded
        noise) equals the level, where half of such spots are found.
        """
        p = self.detector_params(params)
        fp = self.faint_params(p)
        if not fp.on:
            return float(p.peak_min)
        return min(float(p.peak_min), _faint_floor(fp, p.sigma_px, self.pedestal, self.read_noise))

    def faint_params(self, params=None):
        """The faint-spot pass of the blob scan for this camera (:data:`~sevi_lib.detect.settings.FaintParams`).

        Without read noise there is none (:data:`~sevi_lib.detect.settings.NO_FAINT_PASS`): every
        spot above ``threshold`` is a blob then. Under read noise a spot of a broad or dim gain
        law can peak below ``peak_min`` (about ``k`` noise standard deviations) and be lost; its
        light summed over a box of ``+-h`` pixels, ``h = round(1.41 width - 0.5)`` (the box that
        best separates a Gaussian spot from white noise), stands out of the noise of that sum,
        which grows only as the square root of the box's ``ni = (2h + 1)^2`` pixels. The filter is
        that sum less its expected read noise (``ni`` times the mean of a clipped, rounded pixel
        of the survey's pedestal and noise); its noise has the standard deviation
        ``sqrt(ni (sd^2 + 1/12))`` (``sd^2 + 1/12`` bounds the variance of a rounded, clipped
        pixel, also on a faint spot). A maximum of the filter within a width (at least 2 px) above
        ``k`` of them (``k`` = the survey's ``noise_sigmas``, 6: about 1e-9 of the maxima of pure
        noise) outside every blob the scan counted is one electron. It is evaluated every half
        width (``step``), then refined at full resolution.

        Parameters
        ----------
        params : DetectorParams, optional
            Made for this camera by :meth:`detector_params` (again: it is idempotent).

        Returns
        -------
        FaintParams
        """
        if not self.read_noise > 0:
            return NO_FAINT_PASS
        s = self.detector_params(params).sigma_px
        h = max(1, int(round(1.41 * s - 0.5)))
        ni = (2 * h + 1) ** 2
        d = np.arange(-h, h + 1, dtype=np.float64)
        scale = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2.0 * s * s)).sum()
        level = self.noise_sigmas * math.sqrt(ni * (self.read_noise**2 + 1.0 / 12.0))
        return FaintParams(1, h, float(ni * _clipped_mean(self.pedestal, self.read_noise, 0.0)), max(1, int(s // 2)),
                           max(2, int(round(s))), float(level), float(scale))

    def detection_efficiency(self, params=None):
        """Fraction of the electrons detection can see, ``1 - faint_fraction``, and its standard error.

        The standard error comes from those of the measured gain law (mean and cv, taken as
        independent; central differences): zero for a published or given model, whose law is
        fixed.

        Returns
        -------
        efficiency, efficiency_se : float
        """
        m = self.spots()
        floor = self.detection_floor(params)
        eff = 1.0 - _below(m, floor)
        if self.spot_model_source != "measured" or self.spot is None:
            return eff, 0.0
        meas = SpotMeasurement.from_dict(self.spot)
        var = 0.0
        for name, se in (("gain_mean", meas.gain_mean_se), ("gain_cv", meas.gain_cv_se)):
            if not se > 0 or not math.isfinite(se):
                continue
            h = 0.1 * se
            lo, hi = (_below(replace(m, **{name: getattr(m, name) + d}), floor) for d in (-h, h))
            var += ((hi - lo) / (2.0 * h) * se) ** 2
        return eff, math.sqrt(var)

    def corrected_count(self, n_detected, params=None):
        """Efficiency-corrected electron count: an *estimate* of the electrons that reached the detector.

        ``n_detected / efficiency`` (:meth:`detection_efficiency`): detection misses the
        electrons whose spot peaks below its floor, wherever they land, so the count scales
        and the shape of the image does not. Its variance adds the binomial thinning of the
        arrivals, ``N f / (1 - f)`` for the estimate N and the faint fraction f, and the
        uncertainty of the gain law, ``(N se_eff / eff)^2``. It assumes the gain law below the
        floor, where no spot is seen; a camera whose faint electrons do not follow the law
        fitted above ``gain_floor`` makes it wrong.

        Returns
        -------
        estimate, estimate_se : float
        """
        eff, eff_se = self.detection_efficiency(params)
        est = float(n_detected) / eff
        return est, math.sqrt(est * (1.0 - eff) / eff + (est * eff_se / eff) ** 2)

    @property
    def noise_sigmas(self):
        """k of the noise-implied threshold (from :attr:`settings`)."""
        return float(self.settings.get("noise_sigmas", SurveySettings.noise_sigmas))

    @property
    def threshold(self):
        """The lowest blob threshold the noise allows: ``ceil(pedestal + k sd)`` (0 without noise)."""
        return max(math.ceil(self.pedestal + self.noise_sigmas * self.read_noise - 1e-9), 0)

    def mask(self):
        """Hot-pixel mask, bool (1024, 1024), ``Image[ix, iz]``."""
        m = np.zeros((N_PIX, N_PIX), dtype=bool)
        for ix, iz in self.hot_pixels:
            m[ix, iz] = True
        return m

    def detector_params(self, params=None):
        """`params` (DetectorParams) for this camera: its spot model (:func:`spot_detector_params`)
        and the thresholds the noise implies.

        ``threshold`` becomes ``max(threshold, self.threshold)`` (at most 254), ``peak_min`` at
        least that, and ``peak_radius`` at least :meth:`peak_radius`; with a measured
        :attr:`pileup`, ``pileup_odds`` is its odds and ``count_draw`` 1; everything else is kept.
        Without noise (published frames) `params` is returned unchanged.

        Raises
        ------
        ValueError
            If the noise needs a threshold above 254 counts.
        """
        params = params or DetectorParams()
        if self.threshold > 254:
            raise ValueError(f"read noise {self.read_noise:.3g} over a pedestal of {self.pedestal:.3g} counts needs "
                             f"a threshold of {self.threshold} counts, above 254")
        params = spot_detector_params(self.spots(), params)
        if self.pileup is not None:
            params = replace(params, pileup_odds=float(self.pileup["odds"]), count_draw=1)
        thr = max(params.threshold, self.threshold)
        radius = max(params.peak_radius, self.peak_radius(params))
        if thr == params.threshold and radius == params.peak_radius:
            return params
        return replace(params, threshold=thr, peak_min=max(params.peak_min, thr), peak_radius=radius)

    def render_effects(self):
        """This camera's read noise and hot pixels (at their measured levels) for the renderer.

        :func:`sevi_lib.simulate.render.camera_effects` of them: None without either. The
        calibration and the pile-up measurement render their frames through it.
        """
        # local: the renderer is needed only where frames are rendered
        from sevi_lib.core.io import HOT_PIXEL_DTYPE
        from sevi_lib.simulate.render import camera_effects

        hot = np.zeros(len(self.hot_pixels), dtype=HOT_PIXEL_DTYPE)
        if len(hot):
            hot["ix"], hot["iz"] = np.asarray(self.hot_pixels, dtype=np.int64).T
            hot["level"] = self.hot_levels
        return camera_effects(float(self.read_noise), hot)

    def peak_radius(self, params=None):
        """Radius of a local maximum under this noise: the smallest r >= 1 (at most 8) over which a
        nominal spot (``params.amplitude``, ``params.sigma_px``) falls by ``k sd`` (1 without noise).

        With read noise the flat top of a spot has spurious 3 x 3 maxima that seed spurious
        components of the mixture fit (which then leave the blob with the light of a spot each);
        a maximum over this radius is a spot's. For sd = 1.5, k = 6: r = 4 (the spot falls by 9
        counts within 4 px).
        """
        params = params or DetectorParams()
        drop = self.noise_sigmas * self.read_noise
        r = 1
        if drop > 0:
            while r < 8 and params.amplitude * (1.0 - math.exp(-r * r / (2.0 * params.sigma_px**2))) < drop:
                r += 1
        return r

    def to_dict(self):
        """Plain dict (JSON): the fields plus ``kind`` and the derived ``threshold`` and ``hot_pixel_count``."""
        d = asdict(self)
        d["hot_pixels"] = [list(p) for p in self.hot_pixels]
        d["hot_levels"] = list(self.hot_levels)
        d["frames_sampled"] = list(self.frames_sampled)
        d["warnings"] = list(self.warnings)
        return {"kind": KIND, **d, "threshold": self.threshold, "hot_pixel_count": len(self.hot_pixels)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (derived keys are ignored).

        Raises
        ------
        ValueError
            Not a survey, a missing or unknown key, a malformed hot pixel.
        """
        if not isinstance(d, dict) or d.get("kind") != KIND:
            raise ValueError(f"not a camera survey (no \"kind\": \"{KIND}\")")
        d = {k: v for k, v in d.items() if k not in ("kind", "threshold", "hot_pixel_count")}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}")
        try:
            hot = tuple((int(p[0]), int(p[1])) for p in d.get("hot_pixels", ()))
        except (TypeError, ValueError, IndexError):
            raise ValueError("hot_pixels must be a list of [ix, iz] pairs") from None
        if any(not (0 <= i < N_PIX and 0 <= j < N_PIX) for i, j in hot):
            raise ValueError(f"a hot pixel lies outside the {N_PIX} x {N_PIX} frame")
        levels = tuple(float(v) for v in d.get("hot_levels", ()))
        if len(levels) != len(hot):
            raise ValueError(f"{len(hot)} hot pixels but {len(levels)} levels")
        d.update(hot_pixels=hot, hot_levels=levels, frames_sampled=tuple(int(i) for i in d.get("frames_sampled", ())),
                 warnings=tuple(str(w) for w in d.get("warnings", ())))
        if d.get("spot") is not None:
            SpotMeasurement.from_dict(d["spot"])  # ValueError when malformed
        pileup = d.get("pileup")
        if pileup is not None:
            try:
                odds = float(pileup["odds"])
            except (TypeError, KeyError, ValueError):
                raise ValueError("pileup must be a mapping with a numeric \"odds\"") from None
            if not 0 < odds <= 10:
                raise ValueError(f"pileup odds {odds:g} outside (0, 10]")
        SpotModel.from_dict(d.get("spot_model") or {})
        for key in ("read_noise", "read_noise_se", "pedestal", "pedestal_se"):
            if key not in d:
                raise ValueError(f"missing key {key}")
            d[key] = float(d[key])
        if not d["read_noise"] >= 0 or not math.isfinite(d["pedestal"]):
            raise ValueError("read_noise must be >= 0 and pedestal finite")
        return cls(**d)

    def summary_lines(self):
        """Lines for the detection summary."""
        n = len(self.frames_sampled)
        lines = [
            (f"camera survey: {n} of {self.n_file_frames} frames, read noise {self.read_noise:.3f} "
             f"+- {self.read_noise_se:.3f} counts, pedestal {self.pedestal:.3f} +- {self.pedestal_se:.3f}, "
             f"noise-implied threshold {self.threshold} (pedestal + {self.noise_sigmas:g} sd)"),
            f"hot pixels masked: {len(self.hot_pixels)}",
        ]
        for (ix, iz), level in zip(self.hot_pixels, self.hot_levels):
            lines.append(f"  ({ix}, {iz}): {level:g}")
        if self.spot is not None:
            lines += SpotMeasurement.from_dict(self.spot).summary_lines()
        m = self.spots()
        lines.append(f"spot model in use ({self.spot_model_source}): width {m.sigma_px:.3f} px (spread "
                     f"{m.sigma_sd_px:.3f}), correlation spread {m.rho_sd:.3f}, {m.gain} gain mean {m.gain_mean:.1f} "
                     f"counts, cv {m.gain_cv:.3f}")
        try:
            floor = self.detection_floor()
            eff, eff_se = self.detection_efficiency()
            how = ", the faint-spot pass's under read noise" if self.faint_params().on else ""
            lines.append(f"electrons fainter than the detection floor (peak {floor:.3g} counts{how}): "
                         f"{100 * self.faint_fraction():.2f} % by the gain law (lost everywhere alike)")
            lines.append(f"detection efficiency (estimate, by the gain law): {eff:.4f} +- {eff_se:.4f}; detected "
                         f"counts x {1 / eff:.4f} estimate the electrons that arrived")
        except ValueError:
            pass
        if self.pileup is not None:
            p = self.pileup
            bound = f" (at the search's {p['at_bound']} bound)" if p.get("at_bound") else ""
            lines.append(f"pile-up prior (measured on {p['frames']} frames of {p['electrons']} electrons resampled from "
                         f"the detected ones, rendered with this spot model): odds {p['odds']:.3g}{bound}, detected / "
                         f"rendered {p['ratio']:.4f} against {p['target']:.4f}; counts drawn from the posterior")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return lines


def _clipped_mean(pedestal, sd, light):
    """Mean of ``clip(round(pedestal + light + sd e), 0, 255)``, e ~ N(0, 1), for an array (or a number) `light`."""
    # local: scipy.special takes about a second to import and detection needs it only here
    from scipy.special import ndtr

    light = np.asarray(light, dtype=np.float64)
    k = np.arange(1, 256, dtype=np.float64) - 0.5
    return ndtr((pedestal + light[..., None] - k) / sd).sum(axis=-1)


def _faint_floor(fp, sigma_px, pedestal, read_noise):
    """Spot peak (counts) whose expected faint-spot filter value, centred on a pixel, equals ``fp.level``."""
    d = np.arange(-fp.inner, fp.inner + 1, dtype=np.float64)
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2.0 * sigma_px**2))
    lo, hi = 0.0, 255.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _clipped_mean(pedestal, read_noise, mid * g).sum() - fp.background < fp.level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _below(model, floor):
    """Fraction of the electrons of spot model `model` whose gain is below `floor` counts."""
    # local: scipy.stats takes about a second to import and detection needs it only here
    from scipy.stats import gamma as gamma_law
    from scipy.stats import norm

    if model.gain == "normal":
        return float(norm.cdf(floor, model.gain_mean, max(model.gain_sd, 1e-9)))
    return float(gamma_law.cdf(floor, model.gamma_shape, scale=model.gain_mean / model.gamma_shape))


def write_survey(path, survey):
    """Write `survey` as JSON, atomically."""
    d = survey.to_dict()
    write_text(path, "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}\n")


def read_survey(path):
    """Read a survey written by :func:`write_survey`.

    Raises
    ------
    sevi_lib.core.errors.InputError
        Missing, unreadable or not a survey (one line naming the file).
    """
    check_input(path)
    try:
        d = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    try:
        return CameraSurvey.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------------ the noise
def _log_probs(mu, sd, cap):
    """log P(v = k | v <= cap), k = 0..cap, of ``clip(round(mu + sd e), 0, 255)``."""
    # local: scipy.special takes about a second to import and detection needs it only here
    from scipy.special import log_ndtr

    k = np.arange(cap + 1, dtype=np.float64)
    hi = (k + 0.5 - mu) / sd
    lo = (k - 0.5 - mu) / sd
    # log(Phi(hi) - Phi(lo)) without cancellation, on the side of the mean where the tail is small:
    # log Phi(hi) + log1p(-Phi(lo) / Phi(hi)) below it, the mirror image above it
    up = lo > 0.0
    a = np.where(up, log_ndtr(-lo), log_ndtr(hi))
    b = np.where(up, log_ndtr(-hi), log_ndtr(lo))
    with np.errstate(divide="ignore"):
        lp = a + np.log1p(-np.exp(b - a))
    lp[0] = log_ndtr(hi[0])  # clipped at 0
    if cap >= 255:
        lp[255] = log_ndtr(-lo[255])  # clipped at 255
        return lp
    return lp - log_ndtr((cap + 0.5 - mu) / sd)


def fit_clipped_normal(hist):
    """Maximum-likelihood pedestal and read noise from a histogram of pixel values.

    The values are modelled as ``clip(round(mu + sd e), 0, 255)``, ``e ~ N(0, 1)``, observed only
    below ``len(hist)`` (the likelihood is conditional on that).

    Parameters
    ----------
    hist : array_like of int
        ``hist[v]``: pixels of value v, v = 0 .. len(hist) - 1.

    Returns
    -------
    mu, sd, mu_se, sd_se : float
        Estimates and standard errors (observed information; 0 where fixed). One distinct value
        v: ``(v, 0, 0, 0)``. Two distinct values: mu fixed (0 if 0 is one of them, else their
        mean), sd fitted.

    Raises
    ------
    ValueError
        An empty histogram.
    """
    # local: scipy.optimize takes about a second to import and detection needs it only here
    from scipy.optimize import minimize, minimize_scalar

    h = np.asarray(hist, dtype=np.float64)
    nz = np.flatnonzero(h)
    if nz.size == 0:
        raise ValueError("no pixel values to fit")
    if nz.size == 1:
        return float(nz[0]), 0.0, 0.0, 0.0
    cap = h.size - 1
    v = np.arange(cap + 1)
    mean = float((h * v).sum() / h.sum())

    seen = h > 0

    def nll(mu, sd):
        return -float(np.dot(h[seen], _log_probs(mu, sd, cap)[seen]))

    if nz.size == 2:
        mu = 0.0 if nz[0] == 0 else mean
        res = minimize_scalar(lambda t: nll(mu, math.exp(t)), bounds=(math.log(0.02), math.log(256.0)),
                              method="bounded", options={"xatol": 1e-8})
        sd = math.exp(res.x)
        e = 1e-4 * sd
        curv = (nll(mu, sd + e) - 2 * nll(mu, sd) + nll(mu, sd - e)) / (e * e)
        return mu, sd, 0.0, (1.0 / math.sqrt(curv) if curv > 0 else math.inf)
    sd0 = max(math.sqrt(max((h * (v - mean) ** 2).sum() / h.sum(), 0.0)), 0.3)
    res = minimize(lambda p: nll(p[0], math.exp(p[1])), x0=[mean, math.log(sd0)], method="L-BFGS-B",
                   bounds=[(-64.0, 255.0), (math.log(0.02), math.log(256.0))],
                   options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500})
    mu, sd = float(res.x[0]), float(math.exp(res.x[1]))
    # observed information in (mu, sd) by central differences
    p = np.array([mu, sd])
    step = np.array([1e-3 * max(sd, 0.1), 1e-3 * sd])
    H = np.empty((2, 2))
    f0 = nll(mu, sd)
    for a in range(2):
        for b in range(a, 2):
            if a == b:
                ea = np.zeros(2)
                ea[a] = step[a]
                H[a, a] = (nll(*(p + ea)) - 2 * f0 + nll(*(p - ea))) / step[a] ** 2
            else:
                ea = np.zeros(2)
                eb = np.zeros(2)
                ea[a] = step[a]
                eb[b] = step[b]
                H[a, b] = H[b, a] = (nll(*(p + ea + eb)) - nll(*(p + ea - eb)) - nll(*(p - ea + eb))
                                     + nll(*(p - ea - eb))) / (4 * step[a] * step[b])
    try:
        cov = np.linalg.inv(H)
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        se = np.array([math.inf, math.inf])
    return mu, sd, float(se[0]), float(se[1])


@njit(cache=True, nogil=True)
def quiet_histogram(frame, bright, radius, near, last, hist):
    """Add to `hist` the values of the pixels farther than `radius` (Chebyshev) from every pixel >= `bright`.

    Parameters
    ----------
    frame : ndarray of uint8, shape (n, m)
    bright : int
    radius : int
    near : ndarray of uint8, shape (n, m)
        Workspace (overwritten): bit 1 where a bright pixel lies within `radius` along the row,
        bit 2 where such a pixel lies within `radius` rows above.
    last : ndarray of int64, shape (m,)
        Workspace (overwritten).
    hist : ndarray of int64, shape (256,)
        Accumulated histogram.

    Returns
    -------
    int
        Pixels added.
    """
    n, m = frame.shape
    far = 1 << 30
    # along rows: distance to the nearest bright pixel of the row <= radius
    for i in range(n):
        prev = -far
        for j in range(m):
            if frame[i, j] >= bright:
                prev = j
            near[i, j] = 1 if j - prev <= radius else 0
        nxt = far
        for j in range(m - 1, -1, -1):
            if frame[i, j] >= bright:
                nxt = j
            if nxt - j <= radius:
                near[i, j] = 1
    # along columns: a row-near pixel within radius rows above (bit 2, forward pass) or below
    # (backward pass, which counts the pixels near nothing); rows stay contiguous in memory
    for j in range(m):
        last[j] = -far
    for i in range(n):
        for j in range(m):
            if near[i, j] & 1:
                last[j] = i
            if i - last[j] <= radius:
                near[i, j] |= 2
    for j in range(m):
        last[j] = far
    added = 0
    for i in range(n - 1, -1, -1):
        for j in range(m):
            if near[i, j] & 1:
                last[j] = i
            if near[i, j] == 0 and last[j] - i > radius:
                hist[frame[i, j]] += 1
                added += 1
    return added


#: The fewest pixels far from light, as a fraction of the sampled pixels, that the noise is fitted
#: to. Below it the bright level is taken for noise, not light: at the floor of 4 counts a noise
#: of 1.5 counts lights 1 % of the pixels, so only a few pixels in a corner lie 24 px from all of
#: them, and their values (mostly 0) made a noise of 0.6 a false fixed point (a 3000-frame file
#: of config/lab.yaml: 4 pixels, noise 0.62 for 1.5).
MIN_QUIET_FRACTION = 1e-3


def _quiet_fit(frames, bright, radius):
    """(mu, sd, mu_se, sd_se, n) from the pixels of `frames` far from pixels >= bright.

    None when fewer than :data:`MIN_QUIET_FRACTION` of the pixels are that far from light.
    """
    n, m = frames.shape[1:]
    near = np.empty((n, m), dtype=np.uint8)
    last = np.empty(m, dtype=np.int64)
    hist = np.zeros(256, dtype=np.int64)
    total = 0
    for f in frames:
        total += quiet_histogram(f, int(bright), int(radius), near, last, hist)
    if total == 0 or total < MIN_QUIET_FRACTION * frames.size:
        return None
    return (*fit_clipped_normal(hist[:bright]), total)


def _bright_level(mu, sd, settings):
    level = math.ceil(mu + settings.noise_sigmas * sd - 1e-9)
    return int(min(max(level, settings.bright_floor), 255))


def _hot_pixels(frames, bright):
    """Hot pixels of the sampled frames: lit in most and well above their neighbours (see the module)."""
    k = frames.shape[0]
    lit = np.zeros(frames.shape[1:], dtype=np.int32)
    for f in frames:
        lit += f >= bright
    ci, cj = np.nonzero(2 * lit > k)
    if ci.size == 0:
        return [], []
    n, m = frames.shape[1:]
    centre = frames[:, ci, cj].astype(np.float64)  # (k, c)
    neigh = []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            ii, jj = ci + di, cj + dj
            inside = (ii >= 0) & (ii < n) & (jj >= 0) & (jj < m)
            v = frames[:, np.clip(ii, 0, n - 1), np.clip(jj, 0, m - 1)].astype(np.float64)
            v[:, ~inside] = np.nan
            neigh.append(v)
    med8 = np.nanmedian(np.stack(neigh), axis=0)  # (k, c)
    excess = np.median(centre - med8, axis=0)
    hot = excess >= bright
    pixels = [(int(i), int(j)) for i, j in zip(ci[hot], cj[hot])]
    levels = [float(v) for v in np.median(centre[:, hot], axis=0)]
    return pixels, levels


def sample_indices(n_frames, n_sample):
    """Indices of `n_sample` frames spread evenly over `n_frames` (all of them if fewer).

    Examples
    --------
    >>> sample_indices(10, 4).tolist()
    [0, 3, 6, 9]
    """
    if n_frames <= n_sample:
        return np.arange(n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, n_sample)).astype(np.int64))


def survey_frames(source, settings=None, threads=1, progress=0.0):
    """Survey the camera: read noise, pedestal, hot pixels, spot model and pile-up prior from a sample of frames.

    The pile-up prior is measured (:func:`~sevi_lib.detect.pileup.measure_pileup`) when the spot
    model in use is not the published one.

    Parameters
    ----------
    source : str or Path or sevi_lib.core.io.FrameReader or ndarray
        A ``FinalImage`` file, an open reader of one, or frames (uint8, (k, 1024, 1024)).
    settings : SurveySettings, optional
    threads : int
        Decompression threads (a path), chunks of the spot model's sample searched for isolated
        spots at a time and detection threads of the pile-up measurement; the survey does not
        depend on it.
    progress : float
        Seconds between progress lines (stderr) while the spot model's sample is read; 0: silent.

    Returns
    -------
    CameraSurvey

    Raises
    ------
    sevi_lib.core.errors.InputError
        An unreadable file, no frames, no pixel far from light.
    """
    settings = (settings or SurveySettings()).validate()
    name, fingerprint = "", ""
    if isinstance(source, np.ndarray):
        frames_all = source[None] if source.ndim == 2 else source
        n_file = frames_all.shape[0]
        idx = sample_indices(n_file, settings.n_sample)
        frames = np.ascontiguousarray(frames_all[idx], dtype=np.uint8)

        def read(rows):
            return np.ascontiguousarray(frames_all[rows], dtype=np.uint8)
    elif isinstance(source, FrameReader):
        name = str(source.path)
        n_file = source.n_frames

        def read(rows):
            out = np.empty((len(rows), N_PIX, N_PIX), dtype=np.uint8)
            for r, i in enumerate(rows):
                out[r] = source.read(int(i), int(i) + 1)[1][0]
            return out

        idx = sample_indices(n_file, settings.n_sample)
        frames = read(idx)
        fingerprint = file_fingerprint(source.path)
    else:
        with FrameReader(source, threads=threads) as reader:
            return survey_frames(reader, settings, threads, progress)
    if frames.shape[0] == 0:
        raise InputError(f"{name or 'frames'}: no frames to survey")
    # the bright level needs the noise: a fixed point of (noise fit of the pixels far from light ->
    # bright level), from the lowest level (a quiet camera: a few counts of a faint spot's tail are
    # light, not noise) or, when every pixel lies near such a value (a noisy camera), from the
    # low values of all pixels
    bright = settings.bright_floor
    got = _quiet_fit(frames, bright, settings.exclude_px)
    if got is None:
        hist = np.bincount(frames.ravel(), minlength=256)
        q75 = int(np.searchsorted(np.cumsum(hist), 0.75 * hist.sum()))
        mu, sd, _, _ = fit_clipped_normal(hist[: max(q75 + 2, 3) + 1])
        bright = _bright_level(mu, sd, settings)
    for _ in range(4):
        if got is None:
            got = _quiet_fit(frames, bright, settings.exclude_px)
        if got is None:
            raise InputError(f"{name or 'frames'}: fewer than {MIN_QUIET_FRACTION:.1%} of the pixels of the "
                             f"{frames.shape[0]} sampled frames lie {settings.exclude_px} px from light "
                             f"(>= {bright} counts); cannot estimate the noise")
        mu, sd, mu_se, sd_se, n_px = got
        got = None
        new = _bright_level(mu, sd, settings)
        if new == bright:
            break
        bright = new
    if sd == 0.0 and mu == 0.0:
        mu = 0.0  # no noise: the pedestal is 0 (a clipped pedestal below 0 is not identifiable)
    bright = _bright_level(mu, sd, settings)
    pixels, levels = _hot_pixels(frames, bright)
    survey = CameraSurvey(read_noise=float(sd), read_noise_se=float(sd_se), pedestal=float(mu), pedestal_se=float(mu_se),
                          hot_pixels=tuple(pixels), hot_levels=tuple(levels), bright_level=bright,
                          noise_pixels=int(n_px), frames_sampled=tuple(int(i) for i in idx), n_file_frames=int(n_file),
                          settings=settings.to_dict(), source=name, frames_fingerprint=fingerprint)
    survey = _with_spot_model(survey, frames, settings)
    spot_idx = sample_indices(n_file, spot_frames(n_file, settings))
    unmeasured = survey.spot is None and settings.given_model() is None  # too few spots in the first sample
    if (survey.spot_model_source == "measured" or unmeasured) and not np.array_equal(spot_idx, idx):
        # the model in use is measured (not published, not given), or could not be measured yet:
        # from the larger sample (the published model's exact values and a given model need only
        # the first sample's check)
        log = ProgressLog(spot_idx.size, f"survey {name or 'frames'}: spot model", every=float(progress))

        def chunks():
            for i in range(0, spot_idx.size, SPOT_CHUNK):
                yield read(spot_idx[i: i + SPOT_CHUNK])
                log(min(i + SPOT_CHUNK, spot_idx.size))

        survey = _with_spot_model(survey, chunks(), settings, threads)
    if survey.spot_model_source == "published":
        return survey
    # local: the measurement renders frames (the simulator's kernels), needed only here
    from sevi_lib.detect.pileup import measure_pileup

    pileup = measure_pileup(frames, survey, threads=threads)
    warnings = survey.warnings
    if pileup["at_bound"] and abs(pileup["ratio"] - pileup["target"]) > PILEUP_WARN:
        warnings += (f"the pile-up prior lies beyond the search's {pileup['at_bound']} bound ({pileup['odds']:g}): "
                     f"detected / rendered {pileup['ratio']:.4f} against {pileup['target']:.4f}; the electron count "
                     "is off by the difference",)
    return replace(survey, pileup=pileup, warnings=warnings)


#: Most frames whose isolated spots measure the spot model (:attr:`SurveySettings.spot_fraction`):
#: 1000 frames hold about 20000-35000 isolated spots, of which :func:`measure_spot_model` fits the
#: first 20000 (``max_spots``): the gain law's mean to 0.3-0.5 % at a cv of 0.45-0.7.
SPOT_FRAMES_MAX = 1000

#: Frames of the spot sample read at a time (about that many MiB).
SPOT_CHUNK = 64


def spot_frames(n_file, settings):
    """Frames of an `n_file`-frame file whose isolated spots measure the spot model.

    ``spot_fraction`` of the file, at least ``n_sample`` and at most :data:`SPOT_FRAMES_MAX`
    frames, never more than the file holds.
    """
    want = max(settings.n_sample, min(SPOT_FRAMES_MAX, int(math.ceil(settings.spot_fraction * n_file))))
    return int(min(n_file, want))


def _with_spot_model(survey, frames, settings, threads=1):
    """`survey` with the spot model measured from `frames` (an array or chunks of one, `threads` chunks at a time), the
    model in use and the checks."""
    threshold = max(DetectorParams().threshold, survey.threshold)
    warnings = []
    try:
        measured = measure_spot_model(frames, threshold=threshold, pedestal=survey.pedestal,
                                      read_noise=survey.read_noise,
                                      mask=survey.mask() if survey.hot_pixels else None,
                                      subgrid_offset=DetectorParams().subgrid_offset, threads=threads)
    except ValueError as exc:
        measured = None
        warnings.append(f"spot model not measured ({exc}); the {'given' if settings.given_model() else 'published'} "
                        "model is used unchecked")
    given = settings.given_model()
    if given is not None:
        model, source = given, ("published" if settings.spot_model == "published" else "given")
    elif measured is not None and not spot_model_checks(measured, SpotModel()):
        model, source = SpotModel(), "published"
    elif measured is not None:
        model, source = measured.model(), "measured"
    else:
        model, source = SpotModel(), "published"
    if measured is not None:
        if given is not None:
            warnings += [f"the {source} spot model contradicts the frames' isolated spots: {w}"
                         for w in spot_model_checks(measured, model)]
        if measured.fit_chi2 > SHAPE_CHI2_MAX:
            warnings.append(f"the isolated spots are not Gaussian spots: spot-fit residual / noise "
                            f"{measured.fit_chi2:.2f} (about 1 for the model's shape, warned above {SHAPE_CHI2_MAX:g})")
        if measured.gain_p < GAIN_P_MIN:
            warnings.append(f"the spot gains fit no gamma law: chi2/dof {measured.gain_chi2:.1f}/{measured.gain_dof} "
                            f"(p = {measured.gain_p:.2g}); counting electrons by the gain law is approximate")
    return replace(survey, spot=None if measured is None else measured.to_dict(), spot_model=model.to_dict(),
                   spot_model_source=source, warnings=tuple(warnings))


#: The survey warns when the pile-up prior lies at a bound of its search and the count of the
#: rendered frames misses its target by more than this (a fraction): a prior at its low bound
#: with the count a few tenths of a per cent over (bright single spots of a broad law split in
#: two, which no prior undoes) is not worth a warning at the top of the report.
PILEUP_WARN = 0.01

#: Largest spot-fit residual / noise of the isolated spots before the survey warns that the spots
#: are not Gaussian (1.00 +- 0.03 on simulated cameras with widths 4-9.5 px, with and without noise).
SHAPE_CHI2_MAX = 1.5

#: Smallest p-value of the gain histogram's test before the survey warns that no gamma law fits.
GAIN_P_MIN = 1e-3

#: Tolerances of :func:`spot_model_checks`: (measured - model) must be within this many standard
#: errors or this fraction of the model's value (the larger), for the width, the gain's mean and
#: the gain's cv.
CHECK_SE = 5.0
CHECK_REL = {"sigma_px": 0.03, "gain_mean": 0.05, "gain_cv": 0.25}


def spot_model_checks(measured, model):
    """What the measured spot model contradicts in `model`: one line per contradiction, with numbers.

    Parameters
    ----------
    measured : sevi_lib.detect.spotmodel.SpotMeasurement
    model : sevi_lib.core.spots.SpotModel

    Returns
    -------
    list of str
        Empty when the width, the gain's mean and its cv agree within :data:`CHECK_SE` standard
        errors or :data:`CHECK_REL` (the larger).
    """
    out = []
    for key, name, unit in (("sigma_px", "spot width", " px"), ("gain_mean", "mean gain", " counts"),
                            ("gain_cv", "gain cv", "")):
        got, se, want = getattr(measured, key), getattr(measured, key + "_se"), getattr(model, key)
        if abs(got - want) > max(CHECK_SE * se, CHECK_REL[key] * want):
            out.append(f"{name} {got:.3g} +- {se:.2g}{unit} measured, {want:.3g}{unit} in the model")
    return out


def survey_file(frames, out, settings=None, threads=1, progress=0.0):
    """``sevi survey``: survey a frames file and write the JSON `out` atomically.

    The output is checked before any work (not the input, not a directory, writable).

    Returns
    -------
    CameraSurvey
    """
    check_input(frames)
    check_outputs([out], [frames])
    survey = survey_frames(frames, settings, threads=threads, progress=progress)
    write_survey(out, survey)
    return survey


#: Total-variation distance between the isolated detected electrons' gains and the gain law in use
#: beyond which :func:`detected_gain_check` warns: 0.056-0.080 where the law is the survey's, on
#: simulated cameras of widths 5-9.5 px and gain cv 0.1-0.45 (isolated spots lean towards fainter
#: ones, a peak pixel lies a little below the spot's peak); 0.62 for the published law on a
#: camera of gain cv 0.45.
GAIN_TV_MAX = 0.15


def detected_gain_check(electrons, survey, used=None):
    """Do the detected electrons' gains follow the gain law detection used?

    The electrons found alone in their blob (``blob_size`` and ``multiplicity`` 1) carry their
    spot's peak (``amplitude``: the peak pixel, or the fitted peak of a bright spot); over the
    whole run they must follow the gain law in use, truncated below at ``peak_min``. A law fixed
    by hand that the camera does not have, or a gain that drifted after the survey's frames, shows
    here. The measure is the total-variation distance between the two histograms (20 bins of
    equal counts): with millions of electrons any test rejects a law that is right to a per cent,
    the distance says by how much it is wrong.

    Parameters
    ----------
    electrons : structured ndarray
        The detector's table (:data:`~sevi_lib.detect.blobs.ELECTRON_DTYPE`).
    survey : CameraSurvey
    used : DetectorParams, optional
        The parameters detection used (the survey's applied); default those the survey implies.

    Returns
    -------
    dict or None
        ``n``, ``mean`` (observed), ``law_mean`` (the law's, truncated), ``tv`` and ``warning`` (a
        line, or None); None with fewer than 200 such electrons.
    """
    # local: scipy.stats takes about a second to import and detection needs it only here
    from scipy.stats import gamma as gamma_law
    from scipy.stats import norm

    m = survey.spots()
    floor = float((used or survey.detector_params()).peak_min)
    sel = (electrons["blob_size"] == 1) & (electrons["multiplicity"] == 1)
    a = np.asarray(electrons["amplitude"][sel], dtype=np.float64)
    a = a[a >= floor]
    if a.size < 200:
        return None
    if m.gain == "normal":
        law = norm(m.gain_mean, max(m.gain_sd, 1e-9))
    else:
        law = gamma_law(m.gamma_shape, scale=m.gain_mean / m.gamma_shape)
    edges = np.unique(np.quantile(a, np.linspace(0, 1, 21)))
    edges[0], edges[-1] = floor, np.inf
    keep = max(float(law.sf(floor)), 1e-300)
    expected = -np.diff(law.sf(edges)) / keep
    observed = np.histogram(a, edges)[0] / a.size
    tv = 0.5 * float(np.abs(observed - expected).sum())
    x = np.linspace(floor, max(floor, float(law.ppf(1 - 1e-6))), 4001)
    w = law.pdf(x)
    law_mean = float((x * w).sum() / max(w.sum(), 1e-300))
    warning = None
    if tv > GAIN_TV_MAX:
        warning = (f"the gains of the {a.size} electrons detected alone do not follow the gain law in use "
                   f"({survey.spot_model_source}): total-variation distance {tv:.2f} (warned above {GAIN_TV_MAX:g}); "
                   f"mean peak {a.mean():.1f} counts against the law's {law_mean:.1f}")
    return {"n": int(a.size), "mean": float(a.mean()), "law_mean": law_mean, "tv": tv, "warning": warning}

"""Detector settings: :class:`DetectorParams` (the one place their defaults live) and the
namedtuple of scalars the numba kernels read them from.

The kernels take the settings as one :data:`KernelParams` namedtuple whose fields are the fields
of :class:`DetectorParams`, in the same order and with the type each field declares (``int`` or
``float``); :func:`kernel_params` builds it. A kernel reads ``par.sigma_px``, never an index, so
there is no packing order to keep in step with the kernels: a field that does not exist fails
at compile time.
"""

import json
import math
from collections import namedtuple
from dataclasses import asdict, dataclass, fields, replace

from sevi_lib.core.errors import SettingsError, check_settings
from sevi_lib.core.spots import SpotModel


@dataclass(frozen=True)
class DetectorParams:
    """Detector parameters (the ``detect:`` section of the workflow config, minus ``shards``...).

    Attributes
    ----------
    threshold : int
        Pixel value (counts) from which a pixel belongs to a blob.
    peak_min : int
        Blobs whose brightest pixel is below this are ignored (no electron is that faint).
    peak_radius : int
        A local maximum (a seed of the mixture fit; a second one makes a blob not isolated) is
        the highest pixel within this many pixels (Chebyshev distance). 1 (3 x 3) for the
        noise-free published frames; the camera survey raises it under read noise, where the
        flat top of a spot has spurious 3 x 3 maxima (:mod:`sevi_lib.detect.camera`).
    amplitude : float
        Mean peak of one spot (counts): the mean of the gain law.
    sigma_px : float
        Spot width used by the mixture fit (pixels).
    sigma_sd_px : float
        Spread of the spot width over electrons (pixels): the width prior of the mixture fit.
    rho_sd : float
        Spread of the spots' correlation: the correlation prior of the mixture fit.
    gain_cv : float
        Coefficient of variation of the gain law (a gamma law of mean ``amplitude``): a fitted
        component of peak-equivalent light ``a`` holds the n electrons that maximise
        ``log Gamma(a; n / cv^2, amplitude cv^2) + (n - 1) log pileup_odds - log (n - 1)!``.
    pileup_odds : float
        Prior odds of one more electron in one unresolved component (Poisson with this mean for
        the electrons beyond the first). With a narrow gain law (published: cv 0.1) the count
        hardly depends on it; with a broad one it keeps a bright single electron one electron.
        The camera survey measures it for a camera other than the published one
        (:func:`~sevi_lib.detect.pileup.measure_pileup`).
    count_draw : int
        0: a fitted component holds the most probable count (the posterior's mode). 1: the
        components left single by the fit hold a count drawn from the posterior under
        ``pileup_odds``, keyed by their light (:func:`~sevi_lib.detect.spotfit.n_electrons_drawn`;
        the same light, the same count). The mode counts an unresolved pair under a broad gain
        law as one electron more often than not, so a dense image counts short; the draw counts
        right on average when the prior is the camera's. The survey turns it on with the prior
        it measures.
    merge_px : float
        Components that converge closer than this (pixels) are merged into one.
    subgrid_offset : float
        Mean sample offset of a pixel from its lower edge (pixels); 0.4 for the published
        5 x 5 sub-grid at 0, 0.2, .., 0.8.
    single_max_peak : float
        Largest peak of a blob accepted as one isolated spot without fitting.
    single_max_flux : float
        Largest blob flux, in units of one spot's expected flux above `threshold`, accepted as
        one isolated spot without fitting.
    single_max_elongation : float
        Largest ratio of the blob's principal second moments accepted as one isolated spot.
    add_threshold : float
        Residual peak (counts) at which the fit adds a component.
    min_amplitude : float
        Components fitted below this amplitude (counts) are dropped.
    split_ratio : float
        A component of flux >= ``split_ratio`` mean spots is tried as two.
    removal_cost : float
        A component fainter than 0.8 mean spots is kept only if removing it (and refitting)
        raises the squared residual of its blob by at least this much (counts^2).
    max_per_blob : int
        Most components fitted in one blob.
    max_iter : int
        Levenberg-Marquardt iterations per fit.
    max_per_frame : int
        Capacity of the per-frame electron buffer; a frame with more electrons is an error.
    """

    threshold: int = 10
    peak_min: int = 30
    peak_radius: int = 1
    amplitude: float = 100.0
    sigma_px: float = 7.68
    sigma_sd_px: float = 0.512
    rho_sd: float = 0.1
    gain_cv: float = 0.1
    pileup_odds: float = 0.1
    count_draw: int = 0
    merge_px: float = 3.0
    subgrid_offset: float = 0.4
    single_max_peak: float = 140.0
    single_max_flux: float = 1.45
    single_max_elongation: float = 1.6
    add_threshold: float = 25.0
    min_amplitude: float = 40.0
    split_ratio: float = 1.5
    removal_cost: float = 750.0
    max_per_blob: int = 32
    max_iter: int = 30
    max_per_frame: int = 4096

    @classmethod
    def from_config(cls, section):
        """Build from a config mapping, ignoring keys that are not detector parameters.

        Parameters
        ----------
        section : dict or None
            E.g. ``config["detect"]``.

        Returns
        -------
        DetectorParams
        """
        section = section or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in names})

    def to_dict(self):
        """Parameters as a plain dict."""
        return asdict(self)

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first out-of-range parameter; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid.
        """
        check_settings([
            (1 <= self.threshold <= 254, "threshold must be in 1..254"),
            (self.threshold <= self.peak_min <= 255, "peak_min must be in threshold..255"),
            (1 <= self.peak_radius <= 8, "peak_radius must be in 1..8"),
            (self.amplitude > 0, "amplitude must be > 0"),
            (self.sigma_px > 0, "sigma_px must be > 0"),
            (self.sigma_sd_px > 0, "sigma_sd_px must be > 0"),
            (0 < self.rho_sd <= 1, "rho_sd must be in (0, 1]"),
            (0.01 <= self.gain_cv <= 3, "gain_cv must be in [0.01, 3]"),
            (0 < self.pileup_odds <= 10, "pileup_odds must be in (0, 10]"),
            (self.count_draw in (0, 1), "count_draw must be 0 or 1"),
            (self.merge_px > 0, "merge_px must be > 0"),
            (0 <= self.subgrid_offset < 1, "subgrid_offset must be in [0, 1)"),
            (self.add_threshold > 0, "add_threshold must be > 0"),
            (0 <= self.min_amplitude < self.amplitude, "min_amplitude must be in [0, amplitude)"),
            (self.split_ratio > 1, "split_ratio must be > 1"),
            (1 <= self.max_per_blob <= 255, "max_per_blob must be in 1..255"),
            (self.max_iter >= 1, "max_iter must be >= 1"),
            (self.max_per_frame >= 1, "max_per_frame must be >= 1"),
        ])
        return self


#: The settings as the numba kernels see them: one field per :class:`DetectorParams` field.
KernelParams = namedtuple("KernelParams", [f.name for f in fields(DetectorParams)])

_TYPES = {"int": int, "float": float, int: int, float: float}

#: The faint-spot pass of the blob scan as its kernel reads it (:meth:`~sevi_lib.detect.camera.
#: CameraSurvey.faint_params` builds it from the survey's read noise): ``on`` (0: no pass),
#: ``inner`` (half-width of the filter's box, pixels), ``background`` (the box's expected sum of
#: read noise alone, counts), ``step`` (the filter's lattice, pixels), ``radius`` (a seed is the
#: filter's lattice maximum within this Chebyshev distance), ``level`` (the filter's value from
#: which a maximum is a spot: ``k`` standard deviations of its read noise) and ``scale`` (the
#: filter's value per count of a spot's peak, for the electron's amplitude).
FaintParams = namedtuple("FaintParams", "on inner background step radius level scale")

#: No faint-spot pass (frames without read noise: the published ones).
NO_FAINT_PASS = FaintParams(0, 1, 0.0, 1, 1, 0.0, 1.0)


def kernel_params(params):
    """The :data:`KernelParams` of `params`, each value cast to its field's declared type.

    The cast keeps the kernels' argument types fixed (``amplitude=100`` is still a float), so
    numba compiles them once.

    Parameters
    ----------
    params : DetectorParams

    Returns
    -------
    KernelParams
    """
    return KernelParams(*(_TYPES[f.type](getattr(params, f.name)) for f in fields(params)))


@dataclass(frozen=True)
class SurveySettings:
    """Settings of the camera survey (``sevi survey``; :mod:`sevi_lib.detect.camera`).

    Attributes
    ----------
    n_sample : int
        Frames sampled, spread evenly over the file (all of them when the file is shorter): the
        read noise, the hot pixels and the pile-up prior are measured on them.
    spot_fraction : float
        A measured spot model (width, gain law; ``spot_model`` measured and the ``n_sample``
        frames' spots not those of the published model) is measured again from the isolated
        spots of this fraction of the file's frames, spread evenly, at least ``n_sample`` and at
        most :data:`~sevi_lib.detect.camera.SPOT_FRAMES_MAX` (1000) frames, read in chunks. The
        calibration renders its frames with that model, so the gain law's error is an error of
        the calibrated answer that no calibration frame averages away: a fixed fraction keeps it
        in the same proportion to the data's own error at any file size (measured, 10000-frame
        files of a camera with gain cv 0.7: the gain mean from 64 frames (2000 spots) is 1.8 %
        uncertain and moved a calibrated shell's electron count by up to 1.3 %; from 256 frames
        the counts were within 0.2 %, docs/benchmarks.md "Counting electrons"). 0.02: 64 frames
        up to 3200 frames, 200 at 10000, 1000 from 50000 (the first 20000 isolated spots count);
        about 0.13 s of one core per frame.
    noise_sigmas : float
        k of the noise-implied levels: a pixel above ``pedestal + k sd`` is light, not read
        noise. The detector's ``threshold`` becomes at least ``ceil(pedestal + k sd)``; the
        survey's bright level (pixels whose neighbourhood is left out of the noise estimate, hot
        pixel candidates) is ``max(ceil(pedestal + k sd), bright_floor)``. With k = 6 a pure
        noise pixel crosses it with probability 1e-9 (about one pixel in a thousand frames).
    bright_floor : int
        Lowest bright level (counts), used when the noise is small (published frames: sd 0).
    exclude_px : int
        Pixels within this many pixels (Chebyshev distance) of a bright pixel are left out of
        the noise estimate: a published spot (peak <= 255, width 7.7 px) is below 0.5 counts
        27 px from its centre and above 4 counts out to 22 px from it, so its whole tail is
        left out.
    spot_model : str
        The spot model detection and calibration use: ``measured`` (default: measured from the
        isolated spots, :mod:`sevi_lib.detect.spotmodel`; the published model's exact values
        when the measurement agrees with them), ``published``, or a JSON mapping of
        :class:`~sevi_lib.core.spots.SpotModel` fields (e.g. ``{"sigma_px": 5, "gain": "gamma",
        "gain_mean": 120, "gain_cv": 0.45}``). A fixed model that the frames contradict is
        reported (the survey's ``warnings``).
    """

    n_sample: int = 64
    spot_fraction: float = 0.02
    noise_sigmas: float = 6.0
    bright_floor: int = 4
    exclude_px: int = 24
    spot_model: str = "measured"

    def given_model(self):
        """The spot model fixed by ``spot_model`` (``published`` or a JSON mapping), or None (``measured``)."""
        if self.spot_model == "measured":
            return None
        if self.spot_model == "published":
            return SpotModel()
        try:
            d = json.loads(self.spot_model) if isinstance(self.spot_model, str) else dict(self.spot_model)
        except (ValueError, TypeError):
            raise ValueError(f"spot_model must be measured, published or a JSON mapping of spot-model fields, "
                             f"got {self.spot_model!r}") from None
        if not isinstance(d, dict):
            raise ValueError(f"spot_model must be measured, published or a JSON mapping, got {self.spot_model!r}")
        return SpotModel.from_dict(d)

    def to_dict(self):
        """Settings as a plain dict."""
        return asdict(self)

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first out-of-range setting; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid.
        """
        check_settings([
            (self.n_sample >= 1, "n_sample must be >= 1"),
            (0.0 <= self.spot_fraction <= 1.0, "spot_fraction must be in [0, 1]"),
            (self.noise_sigmas > 0, "noise_sigmas must be > 0"),
            (1 <= self.bright_floor <= 255, "bright_floor must be in 1..255"),
            (0 <= self.exclude_px <= 256, "exclude_px must be in 0..256"),
        ])
        try:
            self.given_model()
        except ValueError as exc:
            raise SettingsError(str(exc) if str(exc).startswith("spot_model") else f"spot_model: {exc}") from None
        return self


def spot_detector_params(model, params=None):
    """`params` for a camera of spot model `model`: the spot fields and the thresholds that scale with it.

    The published model returns `params` unchanged. Otherwise, with ``w = sigma_px /
    params.sigma_px`` and ``g = gain_mean / params.amplitude`` (7.68 px and 100 counts for the
    default parameters, the published camera's values, for which the defaults were tuned):
    ``sigma_px``, ``sigma_sd_px`` (at least 2 % of the width), ``rho_sd`` (at least 0.02),
    ``amplitude`` (= gain_mean) and ``gain_cv`` are the model's; ``merge_px`` scales with w;
    ``removal_cost`` (a squared residual over a spot's area) with ``g^2 w^2``; ``add_threshold``
    and ``min_amplitude`` with ``min(g, 1)`` (a brighter camera still has faint electrons);
    ``peak_min`` scales with ``min(g, 1)`` like them, and ``peak_min`` and ``min_amplitude`` go down
    to the gain law's 5th percentile (none below ``threshold``), so that a dim camera or a broad
    law does not lose its faint electrons to the published floors (dim8 of ``bench_cameras``, gain
    mean 60, cv 0.3: floor 19 counts instead of 30, 0.1 % of its electrons below it instead of 2.5 %);
    ``single_max_peak`` (at most 254) and ``single_max_flux`` admit a single spot up to the gain
    law's 99th percentile. Applying it to its own result changes nothing (w = g = 1 then), so
    parameters already made for the camera (a detection shard's, the watcher's) are not scaled twice.

    Parameters
    ----------
    model : sevi_lib.core.spots.SpotModel
    params : DetectorParams, optional

    Returns
    -------
    DetectorParams
    """
    # local: scipy.stats takes about a second to import; the settings are loaded by every `--help`
    from scipy.stats import gamma as gamma_law

    params = params or DetectorParams()
    if model.is_published():
        return params
    w = model.sigma_px / params.sigma_px
    g = model.gain_mean / params.amplitude
    k = 1.0 / max(model.gain_cv, 0.01) ** 2
    q05, q99 = (float(gamma_law.ppf(q, k, scale=model.gain_mean / k)) for q in (0.05, 0.99))
    # the faint end: a dim camera or a broad gain law puts many electrons below the published floors
    peak_min = max(params.threshold, min(params.peak_min, int(math.ceil(params.peak_min * min(g, 1.0))),
                                         int(math.ceil(q05))))
    return replace(
        params, sigma_px=float(model.sigma_px), sigma_sd_px=float(max(model.sigma_sd_px, 0.02 * model.sigma_px)),
        rho_sd=float(max(model.rho_sd, 0.02)), amplitude=float(model.gain_mean),
        gain_cv=float(min(max(model.gain_cv, 0.01), 3.0)), merge_px=params.merge_px * w, peak_min=peak_min,
        removal_cost=params.removal_cost * g * g * w * w, add_threshold=params.add_threshold * min(g, 1.0),
        min_amplitude=min(params.min_amplitude * min(g, 1.0), max(q05, float(peak_min)), 0.9 * model.gain_mean),
        single_max_peak=float(min(254.0, max(params.single_max_peak * g, q99))),
        single_max_flux=float(max(params.single_max_flux, q99 / model.gain_mean)))

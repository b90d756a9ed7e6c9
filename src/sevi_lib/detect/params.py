"""Detector settings: :class:`DetectorParams` (the one place their defaults live) and the
namedtuple of scalars the numba kernels read them from.

The kernels take the settings as one :data:`KernelParams` namedtuple whose fields are the fields
of :class:`DetectorParams`, in the same order and with the type each field declares (``int`` or
``float``); :func:`kernel_params` builds it. A kernel reads ``par.sigma_px``, never an index, so
there is no packing order to keep in step with the kernels: a field that does not exist fails
at compile time.
"""

from collections import namedtuple
from dataclasses import asdict, dataclass, fields


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
        Expected peak of one spot (counts); a fitted component of amplitude A is
        ``round(A / amplitude)`` electrons.
    sigma_px : float
        Spot width used by the mixture fit (pixels).
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

    def validate(self):
        """Raise ``ValueError`` naming the first out-of-range parameter."""
        checks = [
            (1 <= self.threshold <= 254, "threshold must be in 1..254"),
            (self.threshold <= self.peak_min <= 255, "peak_min must be in threshold..255"),
            (1 <= self.peak_radius <= 8, "peak_radius must be in 1..8"),
            (self.amplitude > 0, "amplitude must be > 0"),
            (self.sigma_px > 0, "sigma_px must be > 0"),
            (0 <= self.subgrid_offset < 1, "subgrid_offset must be in [0, 1)"),
            (self.add_threshold > 0, "add_threshold must be > 0"),
            (0 <= self.min_amplitude < self.amplitude, "min_amplitude must be in [0, amplitude)"),
            (self.split_ratio > 1, "split_ratio must be > 1"),
            (1 <= self.max_per_blob <= 255, "max_per_blob must be in 1..255"),
            (self.max_iter >= 1, "max_iter must be >= 1"),
            (self.max_per_frame >= 1, "max_per_frame must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"detector parameter {msg}")
        return self


#: The settings as the numba kernels see them: one field per :class:`DetectorParams` field.
KernelParams = namedtuple("KernelParams", [f.name for f in fields(DetectorParams)])

_TYPES = {"int": int, "float": float, int: int, float: float}


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
        Frames sampled, spread evenly over the file (all of them when the file is shorter).
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
    """

    n_sample: int = 64
    noise_sigmas: float = 6.0
    bright_floor: int = 4
    exclude_px: int = 24

    def to_dict(self):
        """Settings as a plain dict."""
        return asdict(self)

    def validate(self):
        """Raise ``ValueError`` naming the first out-of-range setting."""
        checks = [
            (self.n_sample >= 1, "n_sample must be >= 1"),
            (self.noise_sigmas > 0, "noise_sigmas must be > 0"),
            (1 <= self.bright_floor <= 255, "bright_floor must be in 1..255"),
            (0 <= self.exclude_px <= 256, "exclude_px must be in 0..256"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"survey setting {msg}")
        return self

"""The calibration's settings: the one place its configurable values have their defaults.

Import-light (no numba), so that ``sevi calibrate --help`` starts at once.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from sevi_lib.core.errors import check_settings


@dataclass(frozen=True)
class CalibrationSettings:
    """Settings of the detector calibration (the ``calibrate:`` section of the workflow config).

    Attributes
    ----------
    frames : int
        Calibration frames per pass; 0: ``frames_fraction`` of the data's frames, at least
        ``min_frames``.
    frames_fraction : float
        Calibration frames per data frame when ``frames`` is 0. The corrected answer carries the
        data's own detection noise D^2 plus the bias's error D^2 / fraction, so its expected
        distance is sqrt(1 + D^2/P (1 + 1/fraction)) times the Poisson one (P: the shot noise).
        The default 0.3 keeps the calibration's CPU under half the data's detection (a calibration
        frame costs 1.2-1.4x a data frame on the published camera) and, at the measured D^2/P
        (0.036 on the peaked 50000-frame case, docs/calibration.md), costs 1.075x the Poisson
        distance there instead of 1.035x at fraction 1.
    min_frames : int
        Fewest calibration frames when ``frames`` is 0.
    blocks : int
        Independent blocks the calibration frames are split into; the spread of the block biases
        gives the bias's standard error.
    iterations : int
        Extra passes, each simulated at the parameters corrected by the previous pass (0: one
        pass at the fitted parameters).
    seed : int
        Seed of the calibration frames (pass p uses a seed derived from it and p).
    chunk : int
        Frames simulated, rendered and detected at a time (about 1 MiB each in memory).
    progress_seconds : float
        Seconds between progress lines on stderr (0: none).
    """

    frames: int = 0
    frames_fraction: float = 0.3
    min_frames: int = 2000
    blocks: int = 8
    iterations: int = 0
    seed: int = 0
    chunk: int = 32
    progress_seconds: float = 10.0

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first out-of-range setting; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid.
        """
        check_settings([
            (self.frames >= 0, "frames must be >= 0"),
            (self.frames_fraction > 0, "frames_fraction must be > 0"),
            (self.min_frames >= 1, "min_frames must be >= 1"),
            (self.blocks >= 2, "blocks must be >= 2 (their spread is the bias's error)"),
            (self.iterations >= 0, "iterations must be >= 0"),
            (0 <= self.seed < 2**32, "seed must be in [0, 2**32)"),
            (self.chunk >= 1, "chunk must be >= 1"),
            (self.progress_seconds >= 0, "progress_seconds must be >= 0"),
        ])
        return self

    def n_frames_for(self, n_data_frames):
        """Calibration frames per pass for data of `n_data_frames` frames."""
        if self.frames:
            return int(self.frames)
        return max(int(self.min_frames), math.ceil(self.frames_fraction * n_data_frames))

    def pass_seed(self, p):
        """Seed of pass `p` (independent streams for the passes)."""
        return int(np.random.SeedSequence([int(self.seed), int(p)]).generate_state(1)[0])

    def to_dict(self):
        """Settings as a plain dict."""
        return asdict(self)

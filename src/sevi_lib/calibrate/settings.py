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
    max_added_error : float
        When ``frames`` is 0, a pass whose own error (the bias's) raises the expected distance of
        some shell's betas by more than this fraction, over what the fit and the data's detection
        noise give, simulates more frames (a top-up, pooled with the first ones block by block):
        as many as its first estimate says bring that rise to this fraction, up to
        ``max_frames_fraction`` of the data's frames. The detection noise, and with it the
        frames a calibration needs, depends on the camera: the published one stays at
        ``frames_fraction`` (a rise of about 6 % on the sharply peaked 50000-frame case), a broad
        gain law gets more (lab5 of ``bench_cameras``, the same case: 21 % at 0.3 of the frames,
        so about 0.67 of them).
    max_frames_fraction : float
        Most calibration frames per data frame a pass may grow to by a top-up (at or below
        ``frames_fraction``: no top-up).
    blocks : int
        Independent blocks the calibration frames are split into; the spread of the block biases
        gives the bias's standard error.
    iterations : int
        Extra passes, each simulated at the parameters corrected by the previous pass (0: one
        pass at the fitted parameters, or two by ``second_pass_above``).
    second_pass_above : float
        With ``iterations`` 0: when pass 0's bias on some shell exceeds this many expected
        distances of the corrected answer, a second pass runs at the corrected parameters (0:
        never). The bias depends on the parameters it is simulated at (the pile-up at a peaked
        shell's poles, where the biased fit puts fewer electrons), so a bias measured at the
        fit's parameters leaves about 0.15 of itself (measured on lab4noisy of
        ``bench_cameras``, 50000 frames: 0.080 at the fit's, 0.092 at the corrected
        parameters); above about 3 expected distances that remainder is more than half the
        answer's error. Only the last pass is topped up (``max_added_error``): the error of an
        earlier pass's bias moves the next pass's parameters, not the answer.
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
    max_added_error: float = 0.1
    max_frames_fraction: float = 1.0
    blocks: int = 8
    iterations: int = 0
    second_pass_above: float = 3.0
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
            (self.max_added_error > 0, "max_added_error must be > 0"),
            (self.max_frames_fraction > 0, "max_frames_fraction must be > 0"),
            (self.blocks >= 2, "blocks must be >= 2 (their spread is the bias's error)"),
            (self.iterations >= 0, "iterations must be >= 0"),
            (self.second_pass_above >= 0, "second_pass_above must be >= 0"),
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

    def top_up_seed(self, p):
        """Seed of pass `p`'s top-up frames (a stream independent of every pass's)."""
        return int(np.random.SeedSequence([int(self.seed), int(p), 1]).generate_state(1)[0])

    def top_up_cap(self, n_data_frames):
        """Most frames a pass may grow to by a top-up (0 when ``frames`` fixes the count)."""
        if self.frames:
            return 0
        return math.floor(self.max_frames_fraction * n_data_frames)

    def to_dict(self):
        """Settings as a plain dict."""
        return asdict(self)

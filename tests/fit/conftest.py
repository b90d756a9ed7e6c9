"""Shared data of the fit tests: a vibrational progression of eight shells.

Close pairs 0.03 apart at sigma_R = 0.006 (five widths), intensities within a factor of five,
anisotropies from beta_2 = -0.4 to 1 (this project's normalisation). True electron positions
from the sampler (no frames).
"""

from types import SimpleNamespace

import numpy as np
import pytest

from sevi_lib.simulate.electrons import sample_shell

SIGMA = 0.006
RADII = np.array([0.30, 0.33, 0.42, 0.50, 0.53, 0.64, 0.74, 0.77])
COUNTS = np.array([25_000, 5_000, 12_000, 8_000, 25_000, 6_000, 15_000, 5_000])
BETAS = [np.r_[1.0, 0.4, 0.1], np.r_[-0.4, 0.05, 0.0], np.r_[0.5, 0.0, 0.0], np.r_[0.0, 0.0, 0.0],
         np.r_[0.8, 0.3, 0.05], np.r_[-0.3, 0.0, 0.0], np.r_[0.6, 0.2, 0.0], np.r_[0.2, 0.0, 0.0]]


def _sample(seed, counts=COUNTS):
    xs, zs = [], []
    for j, (R, n, beta) in enumerate(zip(RADII, counts, BETAS)):
        _, _, x, z = sample_shell(R, SIGMA, beta, int(n), seed * 100 + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


@pytest.fixture(scope="session")
def progression():
    """The eight-shell progression: ``.sample(seed, counts=COUNTS) -> (x, z)`` and its constants
    ``.radii``, ``.counts``, ``.betas``, ``.sigma``."""
    return SimpleNamespace(sample=_sample, radii=RADII, counts=COUNTS, betas=BETAS, sigma=SIGMA)

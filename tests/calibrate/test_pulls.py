"""Pull test of the calibrated answer on real rendering + detection (slow: a few minutes on one core).

Several independent data sets of one sharply peaked, dense shell (I(c) ~ exp(6 (c^2 - 1)), 60 %
of the electrons within 25 degrees of the poles, 60 electrons per frame, where spots pile up)
are rendered, detected, fitted and calibrated. The pulls (answer - truth) / reported SE of the
leading betas must have mean about 0 and spread about 1; the uncorrected pulls are printed too
(run with -s to see both).
"""

import numpy as np
import pytest

from sevi_lib.calibrate import CalibrationSettings, calibrate, simulate_response
from sevi_lib.core.shells import Shells
from sevi_lib.detect.settings import DetectorParams
from sevi_lib.fit import fit_electrons

PEAKED = [1.7789, 1.6244, 0.9107, 0.3719, 0.1197, 0.0318, 0.0072, 0.0014, 0.0002, 0.0, 0.0, 0.0]
SHELL = Shells([0.5], [0.007], [PEAKED])
SEEDS = (101, 102, 103, 104, 105)
N_FRAMES, PER_FRAME, LEADING = 1000, 60.0, 3


@pytest.mark.slow
def test_pulls_of_the_calibrated_answer():
    pulls, raw = [], []
    for seed in SEEDS:
        data = simulate_response(SHELL, N_FRAMES, [PER_FRAME], detector=DetectorParams(), seed=seed)
        fit = fit_electrons(data.detected_x, data.detected_z, n_beta=SHELL.n_beta, n_shells=1)
        res = calibrate(fit, N_FRAMES, detector=DetectorParams(),
                        settings=CalibrationSettings(frames=N_FRAMES, blocks=4, seed=seed + 1000, progress_seconds=0))
        truth = SHELL.beta[0, :LEADING]
        pulls.append((np.array(res["beta"][0][:LEADING]) - truth) / np.array(res["se_beta"][0][:LEADING]))
        raw.append((fit.beta[0, :LEADING] - truth) / fit.se_beta[0, :LEADING])
    pulls, raw = np.array(pulls), np.array(raw)
    print(f"\ncalibrated pulls (seeds x beta_2..beta_{2 * LEADING}):\n{np.round(pulls, 2)}")
    print(f"calibrated: mean {pulls.mean():+.2f}, sd {pulls.std(ddof=1):.2f}; per beta mean "
          f"{np.round(pulls.mean(axis=0), 2)}")
    print(f"uncorrected pulls:\n{np.round(raw, 2)}\nuncorrected: mean {raw.mean():+.2f}, sd {raw.std(ddof=1):.2f}; "
          f"per beta mean {np.round(raw.mean(axis=0), 2)}")
    n = pulls.size
    assert abs(pulls.mean()) < 3.0 / np.sqrt(n)
    assert 0.5 < pulls.std(ddof=1) < 1.6

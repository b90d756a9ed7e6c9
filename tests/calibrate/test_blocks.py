"""One-step block estimates of the calibration (issue 20, item 2) against refits of the blocks.

:func:`sevi_lib.calibrate.response.block_shifts` stands for fits of every block of calibration
frames (the spread of the block biases is the bias's error) at the cost of one gradient pass.
Simulated electrons (no rendering), one shell with and without stray electrons (the background
free, or at its bound 0): each block's one-step shift must agree with the refit's shift to a
small fraction of the blocks' spread (the step is first order: at ~6000 electrons a block the
refits differ from it by a few per cent of the spread, here below 15 % of it per block), and the
standard errors they give within 10 %.
"""

import numpy as np
import pytest

from sevi_lib.calibrate.response import PARAMETERS, block_shifts, fit_parameters
from sevi_lib.core.shells import Shells
from sevi_lib.fit import fit_electrons
from sevi_lib.simulate.electrons import simulate_electrons
from sevi_lib.simulate.settings import SimulationSettings

BLOCKS = 4
SHELL = Shells([0.5], [0.007], [[1.0, 0.6, 0.25, 0.05]])


@pytest.mark.parametrize("stray", [0.0, 4.0])
def test_one_step_block_shifts_match_block_fits(stray):
    n_frames = 800
    e = simulate_electrons(SHELL, SimulationSettings(n_frames=n_frames, electrons_per_shell=[30.0], detection_loss=0.0,
                                                    seed=11, stray_electrons=stray)).detected
    block = (e["ImageId"].astype(np.int64) * BLOCKS // n_frames).astype(np.int16)
    kw = {"n_beta": SHELL.n_beta, "n_shells": 1, "centre": (0.0, 0.0)}
    fit = fit_electrons(e["x"], e["z"], **kw)
    assert (fit.background <= 1e-6 * fit.n_data) == (stray == 0.0)  # both branches of the bound
    one = block_shifts(fit, e["x"], e["z"], block, BLOCKS)
    full = fit_parameters(fit)
    refit = {k: [] for k in PARAMETERS}
    for b in range(BLOCKS):
        sel = block == b
        p = fit_parameters(fit_electrons(e["x"][sel], e["z"][sel], **kw))
        for k in PARAMETERS:
            refit[k].append(p[k] - full[k] + (np.log(BLOCKS) if k == "ln_weights" else 0.0))
    for k in PARAMETERS:
        r = np.array(refit[k])
        spread = r.std(axis=0, ddof=1)
        assert np.all(np.abs(one[k] - r) < 0.15 * spread), k
        np.testing.assert_allclose(one[k].std(axis=0, ddof=1), spread, rtol=0.1, err_msg=k)
    for k in PARAMETERS:  # the shifts average to zero exactly
        np.testing.assert_allclose(one[k].mean(axis=0), 0.0, atol=1e-9 * np.abs(one[k]).max())

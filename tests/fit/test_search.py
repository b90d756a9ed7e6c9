"""The shell search (:func:`sevi_lib.fit.search.find_shells`) on many-shell spectra."""

import numpy as np
import pytest

from sevi_lib.fit.search import find_shells


@pytest.mark.xfail(reason="not solved yet: the side-band test misses a weak shell five widths beside a strong "
                   "one (its side band holds the neighbour's edge); finds 5-7 of the 8", strict=False)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_finds_eight_shells_with_close_pairs(progression, seed):
    x, z = progression.sample(seed)
    found = find_shells(np.hypot(x, z))
    R = np.array([p["R"] for p in found.peaks])
    assert found.n_found == len(progression.radii), (R, found.rejected)
    assert np.all(np.abs(R - progression.radii) < 2 * progression.sigma), R

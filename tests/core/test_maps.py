"""Tests of sevi_lib.core.maps: the binner, the fold (one summation order) and its adjoint."""

import numpy as np

from sevi_lib.core.geometry import N_PIX, pixel_centres, pixel_to_screen
from sevi_lib.core.maps import count_map, fold, radial_profile, unfold


def test_count_map_is_histogram2d():
    rng = np.random.default_rng(0)
    x, z = rng.uniform(-1.05, 1.05, (2, 5000))
    x[:3] = [-1.0, 1.0, 0.0]
    ref, _, _ = np.histogram2d(x, z, bins=N_PIX, range=[[-1, 1], [-1, 1]])
    assert np.array_equal(count_map(x, z), ref)


def test_fold_sums_in_the_documented_order():
    """Float maps fold to exactly ((x+z+ + x-z+) + x+z-) + x-z- (the frame-sum fit relies on it)."""
    a = np.random.default_rng(1).random((8, 8))
    m = 4
    ref = a[m:, m:] + a[m - 1::-1, m:]
    ref = ref + a[m:, m - 1::-1]
    ref = ref + a[m - 1::-1, m - 1::-1]
    assert np.array_equal(fold(a), ref)
    ints = np.random.default_rng(2).integers(0, 9, (3, 8, 8))
    assert fold(ints).dtype == np.int64 and np.array_equal(fold(ints).sum(axis=(1, 2)), ints.sum(axis=(1, 2)))


def test_unfold_is_the_adjoint_of_fold():
    rng = np.random.default_rng(3)
    a, q = rng.random((16, 16)), rng.random((8, 8))
    assert np.isclose(np.sum(fold(a) * q), np.sum(a * unfold(q)))
    assert np.array_equal(fold(unfold(q)), 4 * q)


def test_pixel_centres_and_radial_profile():
    c = pixel_centres()
    assert np.array_equal(c, pixel_to_screen(np.arange(N_PIX) + 0.5))
    assert c[511] == -c[512] == -0.5 / 512
    img = np.zeros((N_PIX, N_PIX))
    img[512, 512] = 3.0
    rho, counts = radial_profile(img)
    assert counts.sum() == 3.0 and counts[0] == 3.0 and np.isclose(rho[0], 0.5 / 512)

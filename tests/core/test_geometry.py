"""Tests of sevi_lib.core.geometry: screen <-> continuous pixel coordinates, the reference's pixel convention."""

import numpy as np
import pytest

from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_to_screen, screen_to_pixel


def test_constants():
    assert N_PIX == 1024
    assert PIX_PER_UNIT == 512.0


def test_edges_and_centre():
    assert screen_to_pixel(-1.0) == 0.0                 # lower edge of pixel 0
    assert screen_to_pixel(1.0) == 1024.0               # upper edge of pixel 1023
    assert screen_to_pixel(0.0) == 512.0                # corner between pixels 511 and 512
    assert pixel_to_screen(511.5) == pytest.approx(-0.5 / 512)   # centre of pixel 511
    assert pixel_to_screen(512.5) == pytest.approx(0.5 / 512)    # centre of pixel 512
    assert pixel_to_screen(0.5) == pytest.approx(-1 + 0.5 / 512)
    assert screen_to_pixel(1.0 / 512) - screen_to_pixel(0.0) == pytest.approx(1.0)  # one pixel per 1/512


def test_round_trip():
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, 10_000)
    np.testing.assert_allclose(pixel_to_screen(screen_to_pixel(u)), u, atol=1e-15)
    p = rng.uniform(0, 1024, 10_000)
    np.testing.assert_allclose(screen_to_pixel(pixel_to_screen(p)), p, atol=1e-12)


def test_pixel_index_matches_histogram2d():
    # Image[ix, iz] as numpy.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]]) bins it
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.999, 0.999, 2000)
    z = rng.uniform(-0.999, 0.999, 2000)
    # keep points away from bin edges so floating-point ties cannot decide the test
    keep = (np.abs(screen_to_pixel(x) % 1 - 0.5) < 0.49) & (np.abs(screen_to_pixel(z) % 1 - 0.5) < 0.49)
    x, z = x[keep], z[keep]
    img, _, _ = np.histogram2d(x, z, bins=N_PIX, range=[[-1, 1], [-1, 1]])
    expected = np.zeros((N_PIX, N_PIX))
    np.add.at(expected, (np.floor(screen_to_pixel(x)).astype(int), np.floor(screen_to_pixel(z)).astype(int)), 1)
    np.testing.assert_array_equal(img, expected)
    # an asymmetric point lands on the x axis (axis 0) at the right place
    img, _, _ = np.histogram2d([0.5], [-0.25], bins=N_PIX, range=[[-1, 1], [-1, 1]])
    assert np.argwhere(img).tolist() == [[int(screen_to_pixel(0.5)), int(screen_to_pixel(-0.25))]] == [[768, 384]]

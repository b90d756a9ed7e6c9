"""The image centre's pieces (:mod:`sevi_lib.fit.centre`): parsing, convergence tolerance, start value."""

import numpy as np
import pytest

from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.centre import TOL_PX, parse_centre, start_centre, tolerance
from sevi_lib.simulate.electrons import sample_shell


@pytest.mark.parametrize("given, expected, free", [("free", None, True), ("screen", (0.0, 0.0), False),
                                                   ((0.01, -0.02), (0.01, -0.02), False)])
def test_parse_centre(given, expected, free):
    c, is_free = parse_centre(given)
    assert is_free is free
    assert (c is None) if expected is None else np.array_equal(c, expected)


@pytest.mark.parametrize("bad", ["middle", (0.1,), (0.1, np.nan), (1, 2, 3)])
def test_parse_centre_refuses_anything_else(bad):
    with pytest.raises(ValueError, match="centre must be"):
        parse_centre(bad)


def test_tolerance_is_a_twentieth_of_the_se_or_the_floor():
    se = 0.5 / PIX_PER_UNIT  # half a pixel
    assert tolerance(np.diag([1 / se**2, 4 / se**2])) == pytest.approx(0.05 * se)
    assert tolerance(np.eye(2) * 1e20) == TOL_PX / PIX_PER_UNIT  # a well-known centre: the floor
    assert tolerance(np.zeros((2, 2))) == TOL_PX / PIX_PER_UNIT  # singular: the floor


def test_start_centre_finds_an_offset_ring_under_a_uniform_background():
    """A ring 10 px off the screen centre under as many uniform background points: the plain
    centroid is pulled half way to the screen centre, the ring centroid is not. Its error is
    about R / sqrt(2 N) per axis (0.8 px for 50000 ring electrons at R = 0.5); the test allows
    three times that."""
    rng = np.random.default_rng(5)
    n = 50_000
    _, _, x, z = sample_shell(0.5, 0.006, np.r_[0.8, 0.2, np.zeros(10)], n, 3)
    off = np.array([8.0, -6.0]) / PIX_PER_UNIT
    bx, bz = rng.uniform(-1, 1, (2, n))
    x, z = np.r_[x + off[0], bx], np.r_[z + off[1], bz]
    plain = np.array([x.mean(), z.mean()])
    c = start_centre(x, z)
    bound = 3 * np.sqrt(2) * 0.5 / np.sqrt(2 * n)
    assert np.hypot(*(c - off)) < bound
    assert np.hypot(*(plain - off)) > bound

"""The image centre's pieces (:mod:`sevi_lib.fit.centre`): parsing, convergence tolerance, start value."""

import numpy as np
import pytest

from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.centre import TOL_PX, alternate, parse_centre, start_centre, tolerance
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


def _quadratic(optimum, theta_shift, se):
    """A toy alternation: the centre's optimum moves with theta (coupling 0.1), theta's with the centre.

    ``update`` takes one exact Newton step of a quadratic log-likelihood with standard error `se`
    (not taken below the tolerance); ``refit`` sets theta to its optimum about the centre.
    """
    state = {"theta": 0.0, "refits": 0}
    info = np.eye(2) / se**2

    def target():
        return optimum + 0.1 * state["theta"]

    def update(c):
        step = target() - c
        return (c if np.hypot(*step) < tolerance(info) else target()), info, True

    def refit(c):
        state["theta"] = theta_shift + 0.1 * c[0]
        state["refits"] += 1

    return update, refit, state


def test_alternate_converges_to_the_joint_optimum_within_the_tolerance():
    """The joint optimum of the toy problem solves c = o + 0.1 theta, theta = t + 0.1 c_x; the
    alternation must end within the tolerance (a twentieth of the SE) of it, in few rounds, with
    theta fitted about the centre returned."""
    se = 0.2 / PIX_PER_UNIT
    o, t = np.array([3.0, -2.0]) / PIX_PER_UNIT, 5.0 / PIX_PER_UNIT
    update, refit, state = _quadratic(o, t, se)
    res = alternate(np.zeros(2), update, refit)
    cx = (o[0] + 0.1 * t) / (1 - 0.01)
    joint = np.array([cx, o[1] + 0.1 * (t + 0.1 * cx)])
    assert res.converged and 2 <= res.rounds <= 5
    assert np.hypot(*(res.centre - joint)) < 2 * 0.05 * se
    assert state["theta"] == pytest.approx(t + 0.1 * res.centre[0], abs=1e-15)  # theta about this centre
    assert state["refits"] == res.rounds - 1


def test_alternate_first_rough_round_cannot_conclude():
    """A centre already at its optimum ends the alternation in round 1, unless theta of round 1
    was rough: then theta is fitted once more before the alternation can stop."""
    update, refit, state = _quadratic(np.zeros(2), 0.0, 1.0 / PIX_PER_UNIT)
    assert alternate(np.zeros(2), update, refit).rounds == 1
    assert state["refits"] == 0
    res = alternate(np.zeros(2), update, refit, first_rough=True)
    assert res.rounds == 2 and res.converged and state["refits"] == 1


def test_alternate_reports_no_convergence_after_max_rounds_or_a_failed_update():
    """An update that keeps moving the centre a pixel never converges: max_rounds rounds, each
    followed by a refit; an update that fails (singular information) stops without converging."""
    info = np.eye(2) * 1e6
    refits = []
    res = alternate(np.zeros(2), lambda c: (c + 1.0 / PIX_PER_UNIT, info, True), refits.append, max_rounds=4)
    assert (res.rounds, res.converged, len(refits)) == (4, False, 4)
    assert np.allclose(res.centre * PIX_PER_UNIT, 4.0)
    res = alternate(np.zeros(2), lambda c: (c, np.zeros((2, 2)), False), refits.append)
    assert (res.rounds, res.converged) == (1, False)

"""Tests of sevi_lib.core.angular: Legendre series densities, closed-form CDF, physicality, projections."""

import numpy as np
import pytest
from numpy.polynomial import legendre as npleg
from scipy import integrate, special

from sevi_lib.core import angular as angular
from sevi_lib.core.errors import UnphysicalError

PEAKED = [1, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0, 0, 0]  # seed team's mean betas
BETAS = [
    [0.0],                    # isotropic
    [1.0],                    # 3/2 c^2, touches 0 at c = 0
    [-0.5],                   # 3/4 sin^2, touches 0 at the poles
    [-0.3, 0.1],              # beta_2 < 0, peaked at c = 0
    [0.4, -0.2, 0.1],
    PEAKED,
]
IDS = ["iso", "c2", "sin2", "neg", "mixed", "peaked"]


def _quad(f, a=-1.0, b=1.0):
    # break points at the Gauss nodes keep quad accurate on the sharply peaked density
    return integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-12, limit=400)[0]


def _dip_beta(c0, eps, g=(1.0,)):
    """Beta of I = K (c^2 - c0^2)^2 g(c) - eps with K such that a_0 = 1/2: min exactly -eps at +-c0."""
    sq = npleg.legmul(npleg.legfromroots([c0, c0, -c0, -c0]), g)
    assert np.max(np.abs(sq[1::2])) < 1e-14  # even polynomial
    a = sq * (0.5 + eps) / sq[0]
    a[0] = 0.5
    return a[2::2]


# ------------------------------------------------------------------------------ Legendre values
def test_legendre_even_matches_scipy():
    c = np.linspace(-1, 1, 37)
    p = angular.legendre_even(c, 12)
    assert p.shape == (37, 12)
    for i in range(12):
        np.testing.assert_allclose(p[:, i], special.eval_legendre(2 * (i + 1), c), atol=1e-13)


def test_legendre_upto_matches_scipy():
    out = np.empty(30)
    for c in (-1.0, -0.37, 0.0, 0.81, 1.0):
        angular.legendre_upto(c, 25, out)
        np.testing.assert_allclose(out[:26], special.eval_legendre(np.arange(26), c), atol=1e-13)


def test_scalar_beta_is_refused():
    with pytest.raises(ValueError, match="vector"):
        angular.density(0.3, 0.5)


# ------------------------------------------------------------------------------ density, CDF
@pytest.mark.parametrize("beta", BETAS, ids=IDS)
def test_density_integrates_to_one(beta):
    # the P_0 coefficient is fixed at 1/2, so every beta vector gives a normalised density
    assert _quad(lambda c: float(angular.density(c, beta))) == pytest.approx(1.0, abs=1e-11)


def test_density_values_by_hand():
    c = np.array([-1.0, -0.5, 0.0, 0.3, 1.0])
    np.testing.assert_allclose(angular.density(c, [1.0]), 1.5 * c**2, atol=1e-15)
    np.testing.assert_allclose(angular.density(c, [-0.5]), 0.75 * (1 - c**2), atol=1e-15)
    np.testing.assert_allclose(angular.density(c, [0.0, 0.0]), 0.5, atol=1e-15)
    # P_4(c) = (35 c^4 - 30 c^2 + 3) / 8
    np.testing.assert_allclose(angular.density(c, [0.0, 0.2]), 0.5 + 0.2 * (35 * c**4 - 30 * c**2 + 3) / 8, atol=1e-15)


@pytest.mark.parametrize("beta", BETAS, ids=IDS)
def test_cdf_closed_form_equals_integral_of_density(beta):
    for c in (-0.999, -0.9, -0.5, -0.1, 0.0, 0.2, 0.55, 0.93, 0.9999):
        expected = _quad(lambda t: float(angular.density(t, beta)), -1.0, c)
        assert float(angular.cdf(c, beta)) == pytest.approx(expected, abs=1e-11), c


@pytest.mark.parametrize("beta", BETAS, ids=IDS)
def test_cdf_ends_and_monotone(beta):
    assert float(angular.cdf(-1.0, beta)) == pytest.approx(0.0, abs=1e-14)
    assert float(angular.cdf(1.0, beta)) == pytest.approx(1.0, abs=1e-14)
    f = angular.cdf(np.linspace(-1, 1, 20001), beta)
    assert np.all(np.diff(f) >= -1e-14)


def test_cdf_keeps_shape_of_c():
    c = np.linspace(-1, 1, 12).reshape(3, 4)
    assert angular.cdf(c, PEAKED).shape == (3, 4)
    assert angular.density(c, PEAKED).shape == (3, 4)


# ------------------------------------------------------------------------------ physicality
@pytest.mark.parametrize("beta", [[0.0], [1.0], [-0.5], [-0.3, 0.1], PEAKED], ids=["iso", "c2", "sin2", "neg", "peaked"])
def test_physical_densities(beta):
    assert angular.is_physical(beta)
    assert angular.check_physical(beta).dtype == np.float64


def test_touching_zero_is_physical_and_just_beyond_is_not():
    # beta_2 = 1: I = 3/2 c^2, minimum 0 at c = 0; beta_2 = -1/2: I = 3/4 sin^2, minimum 0 at c = +-1
    value, where = angular.min_density([1.0])
    assert value == pytest.approx(0.0, abs=1e-15) and where == pytest.approx(0.0, abs=1e-9)
    value, where = angular.min_density([-0.5])
    assert value == pytest.approx(0.0, abs=1e-15) and abs(where) == pytest.approx(1.0)
    assert angular.is_physical([1.0]) and angular.is_physical([-0.5])
    assert not angular.is_physical([1.0 + 1e-9])
    assert not angular.is_physical([-0.5 - 1e-9])


def test_min_density_is_exact_minimum():
    # I = 1/2 + b P_2 + d P_4: compare with a very fine grid
    beta = [0.4, -0.6]
    c = np.linspace(-1, 1, 2_000_001)
    vals = angular.density(c, beta)
    value, where = angular.min_density(beta)
    assert value == pytest.approx(vals.min(), abs=1e-11)
    assert value <= vals.min() + 1e-15
    assert float(angular.density(where, beta)) == pytest.approx(value, abs=1e-14)


GRID100 = np.linspace(-1, 1, 100)
C0 = 0.5 * (GRID100[80] + GRID100[81])  # half-way between two points of a coarse 100-point grid


@pytest.mark.parametrize("g", [(1.0,), tuple(angular.full_coefficients(PEAKED))], ids=["quartic", "peaked-x-quartic"])
def test_narrow_negative_dip_between_grid_points_is_unphysical(g):
    # I = K (c^2 - c0^2)^2 g(c) - eps is negative only within ~1e-5 of +-c0
    eps = 1e-9
    beta = _dip_beta(C0, eps, g)
    assert angular.density(GRID100, beta).min() > 1e-4         # a coarse grid sees nothing
    value, where = angular.min_density(beta)
    assert value == pytest.approx(-eps, rel=1e-3)
    assert abs(abs(where) - C0) < 1e-6
    assert not angular.is_physical(beta)
    with pytest.raises(UnphysicalError):
        angular.check_physical(beta)
    # the same density with eps = 0 touches zero at +-c0 and is physical
    touching = _dip_beta(C0, 0.0, g)
    assert abs(angular.min_density(touching)[0]) < 1e-13
    assert angular.is_physical(touching)


def test_many_tiny_dips_of_a_degree_24_density():
    # I = K P(c)^2 - eps with P of degree 12 and 12 real roots between coarse grid points
    roots = [0.5 * (GRID100[k] + GRID100[k + 1]) for k in (52, 58, 64, 72, 83, 95)]
    sq = npleg.legmul(*(2 * [npleg.legfromroots(np.r_[roots, np.negative(roots)])]))
    for eps, physical in ((0.0, True), (1e-10, False), (1e-6, False)):
        a = sq * (0.5 + eps) / sq[0]
        a[0] = 0.5
        beta = a[2::2]
        assert len(beta) == 12
        assert bool(angular.is_physical(beta)) is physical, eps
        if not physical:
            assert angular.min_density(beta)[0] == pytest.approx(-eps, rel=1e-3)


def test_is_physical_on_a_stack():
    stack = np.array([[[1.0, 0.0], [1.1, 0.0]], [[-0.5, 0.0], [-0.6, 0.0]], [[0.0, 0.0], [2.0, 0.0]]])
    flags = angular.is_physical(stack)
    assert flags.shape == (3, 2)
    np.testing.assert_array_equal(flags, [[True, False], [True, False], [True, False]])


def test_check_physical_message():
    with pytest.raises(UnphysicalError, match=r"shell 1 of cfg\.yaml: unphysical beta, .*density is -0\.1 < 0 at cos\(theta\) = 0\.0000"):
        angular.check_physical([1.2], what="shell 1 of cfg.yaml")  # I(0) = 1/2 - 1.2/2
    with pytest.raises(UnphysicalError, match="non-finite"):
        angular.check_physical([0.5, np.nan], what="x")
    with pytest.raises(ValueError):  # UnphysicalError is also a ValueError
        angular.check_physical([-0.7])


# ------------------------------------------------------------------------------ coefficients, projection
@pytest.mark.parametrize("beta", BETAS, ids=IDS)
def test_full_coefficients_reproduce_density(beta):
    a = angular.full_coefficients(beta)
    assert a.shape == (2 * len(beta) + 1,)
    assert a[0] == 0.5 and np.all(a[1::2] == 0)
    c = np.linspace(-1, 1, 301)
    np.testing.assert_allclose(npleg.legval(c, a), angular.density(c, beta), atol=1e-13)


@pytest.mark.parametrize("beta", BETAS, ids=IDS)
def test_beta_from_density_round_trip(beta):
    n = len(beta)
    got = angular.beta_from_density(lambda c: angular.density(c, beta), n + 3)
    np.testing.assert_allclose(got, np.r_[beta, np.zeros(3)], atol=1e-12)


def test_beta_from_density_of_a_non_polynomial_density():
    # I(c) proportional to exp(k c^2): compare the projections with adaptive quadrature
    k = 3.0
    norm = _quad(lambda c: np.exp(k * c * c))
    func = lambda c: np.exp(k * np.asarray(c) ** 2) / norm  # noqa: E731
    got = angular.beta_from_density(func, 6)
    for i in range(6):
        l = 2 * (i + 1)
        expected = (2 * l + 1) / 2 * _quad(lambda c: func(c) * special.eval_legendre(l, c))
        assert got[i] == pytest.approx(expected, abs=1e-12)


def test_distance_weights_are_the_l2_distance_between_densities():
    w = angular.distance_weights(4)
    np.testing.assert_allclose(w, [2 / 5, 2 / 9, 2 / 13, 2 / 17])
    # int_{-1}^{1} (I_a - I_b)^2 dc = sum_i 2/(4i+1) (a_2i - b_2i)^2
    a, b = np.array([0.4, -0.2, 0.1, 0.05]), np.array([-0.3, 0.1, 0.0, 0.0])
    l2 = _quad(lambda c: float(angular.density(c, a) - angular.density(c, b)) ** 2)
    assert np.sum(w * (a - b) ** 2) == pytest.approx(l2, rel=1e-10)

"""Tests of sevi_lib.core.shells.Shells: sorting by radius, validation, config round trip."""

import numpy as np
import pytest

from sevi_lib.core.errors import InputError, SeviError, UnphysicalError
from sevi_lib.core.shells import Shells


def test_sorted_smaller_radius_first_with_their_parameters():
    s = Shells([0.8, 0.5], [0.008, 0.006], [[1.0, 0.85], [-0.3, 0.1]])
    np.testing.assert_array_equal(s.R, [0.5, 0.8])
    np.testing.assert_array_equal(s.sigma_R, [0.006, 0.008])
    np.testing.assert_array_equal(s.beta, [[-0.3, 0.1], [1.0, 0.85]])
    assert s.n_shells == 2 and s.n_beta == 2
    assert s.R.dtype == s.sigma_R.dtype == s.beta.dtype == np.float64


def test_equal_radii_keep_their_order():
    s = Shells([0.5, 0.5], [0.007, 0.008], [[0.1], [0.2]])
    np.testing.assert_array_equal(s.sigma_R, [0.007, 0.008])
    np.testing.assert_array_equal(s.beta[:, 0], [0.1, 0.2])


def test_single_shell_from_scalars():
    s = Shells(0.6, 0.007, [0.5, 0.1])
    assert s.n_shells == 1 and s.beta.shape == (1, 2)


def test_arrays_are_read_only_and_inputs_not_modified():
    R = np.array([0.8, 0.5])
    s = Shells(R, [0.008, 0.006], [[0.0], [0.0]])
    np.testing.assert_array_equal(R, [0.8, 0.5])
    for a in (s.R, s.sigma_R, s.beta):
        with pytest.raises(ValueError):
            a[0] = 1.0


@pytest.mark.parametrize(
    "R, sigma_R, beta, error, message",
    [
        ([0.5, -0.8], [0.007, 0.008], [[0.0], [0.0]], InputError, "radius R = -0.8 must be positive"),
        ([0.5, 0.0], [0.007, 0.008], [[0.0], [0.0]], InputError, "radius"),
        ([0.5, np.nan], [0.007, 0.008], [[0.0], [0.0]], InputError, "radius"),
        ([0.5, np.inf], [0.007, 0.008], [[0.0], [0.0]], InputError, "radius"),
        ([0.5, 0.8], [0.007, -0.001], [[0.0], [0.0]], InputError, r"shell 1: sigma_R = -0\.001 must be >= 0"),
        ([0.5, 0.8], [np.nan, 0.008], [[0.0], [0.0]], InputError, "sigma_R"),
        ([0.5, 0.8], [0.007, 0.008], [[0.0], [-0.6]], UnphysicalError, r"shell 1 \(R = 0\.8\): unphysical beta"),
        ([0.8, 0.5], [0.007, 0.008], [[0.0], [1.5]], UnphysicalError, r"shell 0 \(R = 0\.5\)"),
        ([0.5, 0.8], [0.007, 0.008], [[0.0], [np.nan]], UnphysicalError, "non-finite"),
        ([0.5, 0.8], [0.007], [[0.0], [0.0]], InputError, "do not agree"),
        ([0.5, 0.8], [0.007, 0.008], [[0.0]], InputError, "do not agree"),
        ([0.5, 0.8, 0.9], [0.007, 0.008], [[0.0], [0.0], [0.0]], InputError, "do not agree"),
    ],
)
def test_bad_values_raise_library_errors(R, sigma_R, beta, error, message):
    with pytest.raises(error, match=message) as info:
        Shells(R, sigma_R, beta)
    assert isinstance(info.value, SeviError)


def test_sigma_zero_is_allowed():
    assert Shells([0.5], [0.0], [[0.0]]).sigma_R[0] == 0.0


def test_config_round_trip():
    cfg = [
        {"R": 0.8, "sigma_R": 0.008, "beta": [1.0, 0.85, 0.55]},
        {"R": 0.5, "sigma_R": 0.007, "beta": [-0.3]},
    ]
    s = Shells.from_config(cfg)
    np.testing.assert_array_equal(s.R, [0.5, 0.8])
    np.testing.assert_array_equal(s.beta, [[-0.3, 0.0, 0.0], [1.0, 0.85, 0.55]])  # zero-padded
    out = s.to_config()
    assert out == [
        {"R": 0.5, "sigma_R": 0.007, "beta": [-0.3, 0.0, 0.0]},
        {"R": 0.8, "sigma_R": 0.008, "beta": [1.0, 0.85, 0.55]},
    ]
    assert all(type(v) is float for d in out for v in [d["R"], d["sigma_R"], *d["beta"]])
    again = Shells.from_config(out)
    for name in ("R", "sigma_R", "beta"):
        np.testing.assert_array_equal(getattr(again, name), getattr(s, name))


def test_config_accepts_numeric_strings():
    s = Shells.from_config([{"R": "0.5", "sigma_R": "0.007", "beta": [0.2]}])
    assert s.R[0] == 0.5


@pytest.mark.parametrize(
    "cfg",
    [
        [{"R": 0.5, "beta": [0.0]}],
        [{"sigma_R": 0.007, "beta": [0.0]}],
        [{"R": 0.5, "sigma_R": 0.007}],
        [{"R": "half", "sigma_R": 0.007, "beta": [0.0]}],
        [{"R": 0.5, "sigma_R": 0.007, "beta": 0.3}],
        [{"R": 0.5, "sigma_R": 0.007, "beta": ["x"]}],
    ],
)
def test_bad_config_raises_input_error(cfg):
    with pytest.raises(InputError, match="each shell needs numbers R, sigma_R and a beta list"):
        Shells.from_config(cfg)


def test_config_with_unphysical_beta():
    with pytest.raises(UnphysicalError):
        Shells.from_config([{"R": 0.5, "sigma_R": 0.007, "beta": [-1.0]}])

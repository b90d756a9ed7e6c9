"""Tests of sevi_lib.fit.layout, the settings and the package's lazy public API."""

import numpy as np
import pytest

from sevi_lib import fit
from sevi_lib.fit.layout import ParamLayout, amplitudes_per_shell, shell_offset
from sevi_lib.fit.settings import FitSettings


def test_layout_slices_match_the_documented_vector():
    S, n = 2, 3
    a = np.arange(S * (n + 1), dtype=float).reshape(S, n + 1) + 1
    R, s, b = np.array([0.5, 0.8]), np.array([0.007, 0.008]), 9.0
    lay = ParamLayout(S, n)
    theta = lay.pack(a, R, s, b)
    assert theta.tolist() == [1, 2, 3, 4, 0.5, 0.007, 5, 6, 7, 8, 0.8, 0.008, 9.0]
    assert (lay.n1, lay.stride, lay.size, lay.background) == (4, 6, 13, 12)
    for j in range(S):
        assert theta[lay.amplitudes(j)].tolist() == a[j].tolist()
        assert theta[lay.betas(j)].tolist() == a[j, 1:].tolist()
        assert theta[lay.R(j)] == R[j] and theta[lay.sigma(j)] == s[j]
        assert lay.offset(j) == shell_offset(j, lay.n1) == j * (n + 3)
    a2, R2, s2 = lay.unpack(theta)
    assert np.array_equal(a2, a) and np.array_equal(R2, R) and np.array_equal(s2, s)
    assert ParamLayout.of(theta, S).n_beta == n and ParamLayout.of(len(theta), S).size == 13
    assert amplitudes_per_shell(len(theta), S) == n + 1


def test_settings_defaults_and_validation():
    assert FitSettings() == FitSettings(None, 12, 0, "free", 60, 40000)
    for bad in ({"method": "magic"}, {"n_beta": 0}, {"max_iter": 1.5}, {"shells": True}, {"shells": -1},
                {"centre": "middle"}):
        with pytest.raises(ValueError):
            FitSettings(**bad)


def test_public_api_is_lazy_and_complete():
    for name in fit.__all__:
        assert getattr(fit, name) is not None
    assert fit.METHODS == ("unbinned", "binned", "sum")
    with pytest.raises(AttributeError):
        fit.no_such_name  # noqa: B018

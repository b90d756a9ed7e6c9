"""Tests of sevi_lib.core.score: the grader's per-shell distance, its sum, Rhat - R, and what it refuses."""

import math

import numpy as np
import pytest
from scipy import integrate

from sevi_lib.core.angular import density
from sevi_lib.core.errors import InputError
from sevi_lib.core.score import check_answer, score, shell_distance
from sevi_lib.core.shells import Shells

TRUTH = Shells([0.8, 0.5], [0.008, 0.006], [[1.0, 0.85, 0.55], [-0.3, 0.1, 0.05]])  # sorted: 0.5 first


def _answer(R, beta, sphere_ids=(0, 1), beta_dtype="<f8"):
    beta = np.asarray(beta, dtype=np.float64)
    shape = () if beta.ndim == 1 else (beta.shape[1],)
    a = np.zeros(len(R), [("SphereId", "u1"), ("R", "<f8"), ("beta", beta_dtype, shape)])
    a["SphereId"], a["R"], a["beta"] = sphere_ids, R, beta
    return a


def test_hand_computed_shorter_answer_is_zero_padded():
    # answer N = 2 against truth N = 3: the answer's beta_6 counts as 0
    a = _answer([0.51, 0.79], [[-0.2, 0.1], [0.9, 0.8]])
    # shell 0: truth (-0.3, 0.1, 0.05), answer (-0.2, 0.1, 0)
    d0 = math.sqrt(2 / 5 * 0.1**2 + 2 / 9 * 0.0**2 + 2 / 13 * 0.05**2)   # = sqrt(0.004 + 0 + 0.000384615)
    # shell 1: truth (1.0, 0.85, 0.55), answer (0.9, 0.8, 0)
    d1 = math.sqrt(2 / 5 * 0.1**2 + 2 / 9 * 0.05**2 + 2 / 13 * 0.55**2)  # = sqrt(0.004 + 0.000555556 + 0.046538462)
    assert d0 == pytest.approx(0.0662164, abs=1e-7) and d1 == pytest.approx(0.2260398, abs=1e-7)
    result = score(a, TRUTH)
    assert result["distance"] == pytest.approx([d0, d1], rel=1e-12)
    assert result["total"] == pytest.approx(d0 + d1, rel=1e-12)
    assert result["dR"] == pytest.approx([0.51 - 0.5, 0.79 - 0.8], abs=1e-15)
    assert set(result) == {"distance", "total", "dR"}
    assert all(type(v) is float for v in [*result["distance"], result["total"], *result["dR"]])


def test_hand_computed_longer_answer():
    # answer N = 4 against truth N = 3: the truth's beta_8 counts as 0
    a = _answer([0.5, 0.8], [[-0.3, 0.1, 0.05, 0.02], [1.0, 0.85, 0.5, -0.01]])
    d0 = math.sqrt(2 / 17 * 0.02**2)
    d1 = math.sqrt(2 / 13 * 0.05**2 + 2 / 17 * 0.01**2)
    result = score(a, TRUTH)
    assert result["distance"] == pytest.approx([d0, d1], rel=1e-12)
    assert result["total"] == pytest.approx(d0 + d1, rel=1e-12)
    assert result["dR"] == [0.0, 0.0]


def test_perfect_answer_scores_zero():
    a = _answer(TRUTH.R, TRUTH.beta)
    assert score(a, TRUTH) == {"distance": [0.0, 0.0], "total": 0.0, "dR": [0.0, 0.0]}


def test_rows_matched_by_sphere_id_not_by_position():
    a = _answer([0.79, 0.51], [[0.9, 0.8], [-0.2, 0.1]], sphere_ids=(1, 0))
    b = _answer([0.51, 0.79], [[-0.2, 0.1], [0.9, 0.8]])
    assert score(a, TRUTH) == score(b, TRUTH)


def test_one_coefficient_per_row_as_a_scalar_field():
    # a 'beta' field without a subarray shape holds beta_2 only; each row is its own shell
    a = _answer([0.5, 0.8], [-0.3, 1.0])
    assert a.dtype["beta"].shape == ()
    expected = [math.sqrt(2 / 9 * 0.1**2 + 2 / 13 * 0.05**2), math.sqrt(2 / 9 * 0.85**2 + 2 / 13 * 0.55**2)]
    assert score(a, TRUTH)["distance"] == pytest.approx(expected, rel=1e-12)


def test_single_shell_truth():
    truth = Shells([0.6], [0.007], [[0.4, 0.1]])
    a = _answer([0.62], [[0.3, 0.1]], sphere_ids=(0,))
    result = score(a, truth)
    assert result["distance"] == pytest.approx([math.sqrt(2 / 5 * 0.01)])
    assert result["dR"] == pytest.approx([0.02])


def test_three_shell_truth_scored_per_shell():
    # lab data: K = 3 shells, each row matched by SphereId, hand-computed distances
    truth = Shells([0.3, 0.55, 0.8], [0.006, 0.007, 0.008], [[1.0, 0.3], [-0.5, 0.1], [0.4, 0.0]])
    a = _answer([0.31, 0.54, 0.8], [[0.9, 0.3], [-0.5, 0.0], [0.4, 0.2]], sphere_ids=(0, 1, 2))
    expected = [math.sqrt(2 / 5 * 0.1**2), math.sqrt(2 / 9 * 0.1**2), math.sqrt(2 / 9 * 0.2**2)]
    result = score(a, truth)
    assert result["distance"] == pytest.approx(expected, rel=1e-12)
    assert result["total"] == pytest.approx(sum(expected), rel=1e-12)
    assert result["dR"] == pytest.approx([0.01, -0.01, 0.0], abs=1e-12)
    with pytest.raises(InputError, match="'Answer' has 3 rows, the truth has 2"):
        score(a, TRUTH)


def test_shell_distance_is_l2_distance_between_densities():
    a, b = [0.4, -0.2, 0.1, 0.03], [-0.3, 0.1]
    l2 = integrate.quad(lambda c: float(density(c, a) - density(c, b)) ** 2, -1, 1, epsabs=1e-14)[0]
    assert shell_distance(a, b) == pytest.approx(math.sqrt(l2), rel=1e-10)
    assert shell_distance(b, a) == shell_distance(a, b)
    stack = shell_distance(np.array([a, a, a]), np.array([[0.0], [0.4], [-0.3]]))
    assert stack.shape == (3,)
    assert stack[1] == pytest.approx(math.sqrt(2 / 9 * 0.04 + 2 / 13 * 0.01 + 2 / 17 * 0.03**2))


# ------------------------------------------------------------------------------ refusals
def _drop(a, name):
    return a[[n for n in a.dtype.names if n != name]].copy()


GOOD = _answer([0.5, 0.8], [[-0.3, 0.1], [1.0, 0.85]])
NAN = GOOD.copy()
NAN["beta"][1, 0] = np.nan
INF_R = GOOD.copy()
INF_R["R"][0] = np.inf
BAD = [
    (_drop(GOOD, "SphereId"), r"ans\.h5: 'Answer' lacks the column 'SphereId' \(has R, beta\)"),
    (_drop(GOOD, "R"), r"lacks the column 'R'"),
    (_drop(GOOD, "beta"), r"lacks the column 'beta'"),
    (np.zeros((2, 3)), r"lacks the column 'SphereId' \(has none\)"),
    (GOOD[:1].copy(), r"ans\.h5: 'Answer' has 1 rows, the truth has 2"),
    (_answer([0.5, 0.6, 0.8], np.zeros((3, 2)), sphere_ids=(0, 1, 2)), "has 3 rows"),
    (_answer([0.5, 0.8], np.zeros((2, 2)), sphere_ids=(0, 0)), r"SphereIds \[.*0.*0.*\] differ from the truth's \[0, 1\]"),
    (_answer([0.5, 0.8], np.zeros((2, 2)), sphere_ids=(1, 2)), "SphereIds"),
    (_answer([0.5, 0.8], np.zeros((2, 2)), beta_dtype="<f4"), r"ans\.h5: beta is float32, the grader requires float64"),
    (_answer([0.5, 0.8], np.zeros((2, 2)), beta_dtype="<f2"), "requires float64"),
    (NAN, r"ans\.h5: 'Answer' holds non-finite values"),
    (INF_R, "non-finite"),
]


@pytest.mark.parametrize("answer, message", BAD, ids=[
    "no-SphereId", "no-R", "no-beta", "not-a-table", "too-few-rows", "too-many-rows", "duplicate-ids",
    "ids-1-2", "float32", "float16", "nan-beta", "inf-R"])
def test_refused_with_a_reason(answer, message):
    with pytest.raises(InputError, match=message):
        check_answer(answer, 2, path="ans.h5")
    with pytest.raises(InputError, match=message):
        score(answer, TRUTH, path="ans.h5")


def test_good_answer_passes_check():
    check_answer(GOOD, 2)  # no exception
    check_answer(_answer([0.8, 0.5], [[1.0, 0.85], [-0.3, 0.1]], sphere_ids=(1, 0)), 2)

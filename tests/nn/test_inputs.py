import json

import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import write_answer
from sevi_lib.nn.settings import SynthSettings
from sevi_lib.nn.inputs import (
    check_prediction,
    read_centre,
    read_first_pass,
    read_radii,
    stage_prior,
)


def _answer(path, R, beta0, n=6):
    beta = np.zeros((2, n))
    beta[:, 0] = beta0
    write_answer(path, R, beta)
    return path


def test_first_pass_is_cut_or_padded(tmp_path):
    p = _answer(tmp_path / "a.h5", [0.4, 0.7], [0.5, 1.0])
    R, beta = read_first_pass(p, 3)
    assert list(R) == [0.4, 0.7] and beta.shape == (2, 3) and list(beta[:, 0]) == [0.5, 1.0]
    assert read_first_pass(p, 8)[1].shape == (2, 8)


@pytest.mark.parametrize("R, beta0, words", [
    ([np.nan, 0.7], [0.5, 0.5], "R is not finite"),
    ([0.4, 1.0], [0.5, 0.5], "R must lie in"),
    ([-0.1, 0.7], [0.5, 0.5], "R must lie in"),
    ([0.4, 0.7], [0.5, np.inf], "beta is not finite"),
    ([0.4, 0.7], [0.5, -1.5], "shell 1 has an unphysical beta"),
])
def test_bad_first_pass_is_refused(tmp_path, R, beta0, words):
    p = _answer(tmp_path / "a.h5", R, beta0)
    with pytest.raises(InputError, match=words):
        read_first_pass(p, 6)


def test_slightly_unphysical_first_pass_is_accepted(tmp_path):
    """A network's first pass may dip a little below zero: the prior still draws physical sets."""
    beta = np.zeros((2, 6))
    beta[0, :3] = [1.2, 0.3, 0.1]  # min density -0.019
    write_answer(tmp_path / "a.h5", [0.45, 0.7], beta)
    read_first_pass(tmp_path / "a.h5", 6)


def test_read_radii(tmp_path):
    assert list(read_radii(_answer(tmp_path / "a.h5", [0.7, 0.4], [0.0, 0.0]))) == [0.4, 0.7]
    with pytest.raises(InputError, match="R is not finite"):
        read_radii(_answer(tmp_path / "b.h5", [0.7, np.nan], [0.0, 0.0]))
    write_answer(tmp_path / "c.h5", [0.5], np.zeros((1, 2)))
    assert list(read_radii(tmp_path / "c.h5")) == [0.5]  # any K >= 1 shells
    write_answer(tmp_path / "d.h5", [0.3, 0.5, 0.7], np.zeros((3, 2)))
    assert list(read_radii(tmp_path / "d.h5")) == [0.3, 0.5, 0.7]
    write_answer(tmp_path / "e.h5", np.zeros(0), np.zeros((0, 2)))
    with pytest.raises(InputError, match="no rows"):
        read_radii(tmp_path / "e.h5")


def test_first_pass_with_k_shells(tmp_path):
    beta = np.zeros((3, 6))
    beta[:, 0] = [0.5, -0.2, 1.0]
    write_answer(tmp_path / "a.h5", [0.7, 0.3, 0.5], beta)
    R, b = read_first_pass(tmp_path / "a.h5", 4)
    assert list(R) == [0.3, 0.5, 0.7] and b.shape == (3, 4) and list(b[:, 0]) == [-0.2, 1.0, 0.5]
    write_answer(tmp_path / "one.h5", [0.6], np.full((1, 6), 0.0))
    assert read_first_pass(tmp_path / "one.h5", 6)[1].shape == (1, 6)
    write_answer(tmp_path / "none.h5", np.zeros(0), np.zeros((0, 6)))
    with pytest.raises(InputError, match="no rows"):
        read_first_pass(tmp_path / "none.h5", 6)
    beta[2, 1] = np.nan
    write_answer(tmp_path / "nan.h5", [0.3, 0.5, 0.7], beta)
    with pytest.raises(InputError, match="beta is not finite"):
        read_first_pass(tmp_path / "nan.h5", 6)


def _sidecar(path, doc):
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_read_centre(tmp_path):
    assert read_centre(_sidecar(tmp_path / "a.json", {"centre": [0.01, -0.005], "centre_se": [1e-4, 1e-4]})) == (
        0.01, -0.005)


@pytest.mark.parametrize("doc, words", [
    ({"R": [0.4, 0.7]}, "records no image centre"),
    ({"centre": None}, "must be two numbers"),
    ({"centre": [0.1]}, "must be two numbers"),
    ({"centre": ["a", "b"]}, "must be two numbers"),
    ('{"centre": [NaN, 0.0]}', "not finite"),
    ({"centre": [1.5, 0.0]}, "off the screen"),
    ("{not json", "not a readable JSON sidecar"),
    ([1, 2], "records no image centre"),
])
def test_bad_sidecar_is_refused(tmp_path, doc, words):
    p = _sidecar(tmp_path / "fit.json", doc)
    with pytest.raises(InputError, match=words) as exc:
        read_centre(p)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError, match="no such file"):
        read_centre(tmp_path / "missing.json")


def test_check_prediction():
    check_prediction(np.array([0.4, 0.7]), np.zeros((2, 3)))
    with pytest.raises(InputError, match="non-finite beta"):
        check_prediction(np.array([0.4, 0.7]), np.array([[np.nan], [0.0]]))
    with pytest.raises(InputError, match="R is not finite"):
        check_prediction(np.array([np.nan, 0.7]), np.zeros((2, 1)))


def test_stage_prior_needs_a_first_pass_for_finetuning():
    with pytest.raises(InputError, match="--first-pass"):
        stage_prior("finetune", SynthSettings())
    assert stage_prior("pretrain", SynthSettings(n_beta=4)).n_beta == 4

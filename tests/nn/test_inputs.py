import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import write_answer
from sevi_lib.nn.config import SynthSettings
from sevi_lib.nn.inputs import (
    check_prediction,
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
    one = np.zeros((1, 2))
    write_answer(tmp_path / "c.h5", [0.5], one)
    with pytest.raises(InputError, match="1 rows, expected 2"):
        read_radii(tmp_path / "c.h5")


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

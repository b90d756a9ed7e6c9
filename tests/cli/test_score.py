"""Tests of ``sevi score ANSWER TRUTH``: table, --json equal to score(), bad input exits 2 with one line."""

import json
import math
import re

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core import io as io
from sevi_lib.core.score import score


def _truth_file(path, dataset="Truth"):
    t = np.zeros(2, io.truth_dtype(3) if dataset == "Truth" else io.distribution_dtype(3))
    t["R"], t["sigma_R"] = [0.8, 0.5], [0.008, 0.006]
    t["beta"] = [[1.0, 0.85, 0.55], [-0.3, 0.1, 0.05]]
    io.write_h5(path, **{dataset: t})
    return str(path)


def _answer_file(path):
    io.write_answer(path, [0.79, 0.51], [[0.9, 0.8], [-0.2, 0.1]])
    return str(path)


D0 = math.sqrt(2 / 5 * 0.1**2 + 2 / 13 * 0.05**2)
D1 = math.sqrt(2 / 5 * 0.1**2 + 2 / 9 * 0.05**2 + 2 / 13 * 0.55**2)


def test_table(tmp_path, capsys):
    assert main(["score", _answer_file(tmp_path / "a.h5"), _truth_file(tmp_path / "t.h5")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.strip().splitlines()
    assert lines[0].split() == ["shell", "distance", "Rhat-R"]
    assert lines[1].split() == ["0", f"{D0:.5f}", "+0.01000"]
    assert lines[2].split() == ["1", f"{D1:.5f}", "-0.01000"]
    assert lines[3].split() == ["sum", f"{D0 + D1:.5f}"]
    assert len(lines) == 4


@pytest.mark.parametrize("dataset", ["Truth", "DistributionParameters"])
def test_json_matches_score(tmp_path, capsys, dataset):
    a, t = _answer_file(tmp_path / "a.h5"), _truth_file(tmp_path / "t.h5", dataset)
    assert main(["score", a, t, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == score(io.read_answer(a), io.read_truth(t))
    assert result["distance"] == pytest.approx([D0, D1], rel=1e-12)
    assert result["total"] == pytest.approx(D0 + D1, rel=1e-12)
    assert result["dR"] == pytest.approx([0.01, -0.01], abs=1e-12)


def _bad_answer_f32(path):
    a = np.zeros(2, [("SphereId", "u1"), ("R", "<f8"), ("beta", "<f4", (2,))])
    a["SphereId"], a["R"] = [0, 1], [0.5, 0.8]
    io.write_h5(path, Answer=a)


BAD = {
    "missing answer": ("answer", lambda p: None, "no such file"),
    "missing truth": ("truth", lambda p: None, "no such file"),
    "answer not hdf5": ("answer", lambda p: p.write_bytes(b"\x00garbage" * 100), "not a readable HDF5 file"),
    "truth not hdf5": ("truth", lambda p: p.write_text("R,sigma_R\n0.5,0.007\n"), "not a readable HDF5 file"),
    "answer without Answer": ("answer", lambda p: io.write_h5(p, Truth=np.zeros(2)), r"no dataset 'Answer' \(found: Truth\)"),
    "truth without Truth": ("truth", lambda p: io.write_h5(p, Answer=np.zeros(2)), "no dataset 'Truth' or 'DistributionParameters'"),
    "answer float32 beta": ("answer", _bad_answer_f32, "the grader requires float64"),
    "answer truncated": ("answer", lambda p: (_answer_file(p), p.write_bytes(p.read_bytes()[:1000])), "not a readable HDF5 file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    which, make, message = BAD[case]
    answer, truth = tmp_path / "answer.h5", tmp_path / "truth.h5"
    if which == "answer":
        _truth_file(truth)
        make(answer)
        named = answer
    else:
        _answer_file(answer)
        make(truth)
        named = truth
    assert main(["score", str(answer), str(truth)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sevi: error: ")
    assert str(named) in lines[0]
    assert re.search(message, lines[0])


def test_missing_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", "only-one.h5"])
    assert info.value.code == 2
    assert "usage: sevi score" in capsys.readouterr().err


def test_help_lists_score(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "score" in capsys.readouterr().out


def test_answer_file_is_unchanged(tmp_path, capsys):
    a = _answer_file(tmp_path / "a.h5")
    before = (tmp_path / "a.h5").read_bytes()
    assert main(["score", a, _truth_file(tmp_path / "t.h5")]) == 0
    assert (tmp_path / "a.h5").read_bytes() == before
    with h5py.File(a, "r") as f:
        assert list(f.keys()) == ["Answer"]


def _three_shell_truth(path):
    t = np.zeros(3, io.truth_dtype(2))
    t["R"], t["sigma_R"], t["beta"] = [0.3, 0.5, 0.8], 0.007, [[0.5, 0.0], [1.0, 0.2], [-0.3, 0.0]]
    io.write_h5(path, Truth=t)


def _unphysical_truth(path):
    t = np.zeros(2, io.truth_dtype(1))
    t["R"], t["sigma_R"], t["beta"] = [0.5, 0.8], 0.007, [[1.5], [0.0]]
    io.write_h5(path, Truth=t)


def _far_answer(path):
    io.write_answer(path, [0.5, 2.0], [[0.9, 0.8], [-0.2, 0.1]])


ISSUE_11 = {
    "truth with three shells": ("truth", _three_shell_truth, "answer", r"'Answer' has 2 rows, the truth has 3 \(.*truth\.h5\)"),
    "unphysical truth beta": ("truth", _unphysical_truth, "truth", "unphysical|negative"),
    "answer radius off the screen": ("answer", _far_answer, "answer", r"radii 2 are outside \(0, 1\.5\)"),
}


@pytest.mark.parametrize("case", list(ISSUE_11))
def test_numbers_from_files_are_checked_one_line(tmp_path, capsys, case):
    which, make, named, message = ISSUE_11[case]
    answer, truth = tmp_path / "answer.h5", tmp_path / "truth.h5"
    (make(truth), _answer_file(answer)) if which == "truth" else (make(answer), _truth_file(truth))
    digests = {p: p.read_bytes() for p in (answer, truth)}
    assert main(["score", str(answer), str(truth)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"sevi: error: {tmp_path / (named + '.h5')}: ")
    assert re.search(message, lines[0]), lines[0]
    assert {p: p.read_bytes() for p in (answer, truth)} == digests
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer.h5", "truth.h5"]


def test_tsv_of_several_answers_is_the_workflow_score_table(tmp_path, capsys):
    a, t = _answer_file(tmp_path / "a.h5"), _truth_file(tmp_path / "t.h5")
    b = tmp_path / "b.h5"
    io.write_answer(b, [0.5, 0.8], [[-0.3, 0.1, 0.05], [1.0, 0.85, 0.55]])  # the truth itself
    out = tmp_path / "score.tsv"
    assert main(["score", a, str(b), t, "--names", "fit", "nn", "--tsv", str(out)]) == 0
    rows = [r.split("\t") for r in out.read_text().splitlines()]
    assert rows[0] == ["method", "d_0", "d_1", "sum", "dR_0", "dR_1"]
    assert rows[1][0] == "fit" and float(rows[1][1]) == pytest.approx(D0, abs=1e-6)
    assert rows[2] == ["nn", *["0.000000"] * 5]
    assert "fit" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["names", "out_is_input"])
def test_tsv_refusals_leave_inputs_and_write_nothing(tmp_path, capsys, case):
    a, t = _answer_file(tmp_path / "a.h5"), _truth_file(tmp_path / "t.h5")
    before = open(a, "rb").read()
    args = ["score", a, t, "--names", "x", "y"] if case == "names" else ["score", a, t, "--tsv", a]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sevi: error:")
    assert open(a, "rb").read() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "t.h5"]

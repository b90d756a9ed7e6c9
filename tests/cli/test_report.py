"""``sevi report``: the workflow's calls, zero training runs, outputs checked before the work."""

import hashlib

import numpy as np

from sevi_lib.cli import main
from sevi_lib.core.io import write_answer


def test_zero_runs_as_the_workflow_passes_them(tmp_path):
    """``answer.methods: [fit]``: the rule passes ``--run`` with nothing after it (issue 11, item 7)."""
    write_answer(tmp_path / "fit.h5", [0.5, 0.8], np.zeros((2, 2)))
    out = tmp_path / "report.md"
    assert main(["report", "--out", str(out), "--answer", f"fit={tmp_path / 'fit.h5'}", "--run",
                 "--benchmarks", str(tmp_path / "nothing")]) == 0
    text = out.read_text()
    assert "## Answers side by side" in text and "## Network training" not in text


def test_output_equal_to_an_input_is_refused(tmp_path, capsys):
    write_answer(tmp_path / "fit.h5", [0.5, 0.8], np.zeros((2, 2)))
    before = hashlib.sha256((tmp_path / "fit.h5").read_bytes()).hexdigest()
    assert main(["report", "--out", str(tmp_path / "fit.h5"), "--answer", f"fit={tmp_path / 'fit.h5'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sevi: error: {tmp_path / 'fit.h5'}: output is the input file")
    assert hashlib.sha256((tmp_path / "fit.h5").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.h5"]


def test_output_a_directory_is_refused(tmp_path, capsys):
    (tmp_path / "r.md").mkdir()
    assert main(["report", "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "r.md: is a directory" in err[0]

import numpy as np

from sevi_lib.cli import main
from sevi_lib.core.io import truth_dtype, write_answer, write_h5
from sevi_lib.core.score import shell_distance
from sevi_lib.report.tables import (
    answers_table,
    markdown_table,
    timing_table,
    training_table,
)


def test_markdown_table_shape():
    t = markdown_table(["a", "b"], [[1, 2], [3, 4]]).splitlines()
    assert t == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_answers_table_values_errors_and_distance():
    beta_fit = np.array([[0.9, 0.5], [0.3, 0.1]])
    beta_nn = np.array([[1.1, 0.4, 0.05], [0.2, 0.0, 0.0]])
    truth_beta = np.array([[1.0, 0.45], [0.25, 0.05]])
    text = answers_table(
        {"fit": ([0.5, 0.8], beta_fit), "nn": ([0.51, 0.79], beta_nn)},
        truth=([0.5, 0.8], truth_beta),
        se={"fit": ([0.001, 0.002], np.full((2, 2), 0.05))},
    )
    shell0 = text.split("Shell 1")[0]
    assert "| R | 0.50000 ± 0.00100 | 0.51000 | 0.50000 |" in shell0
    assert "| beta_6 | - | 0.0500 | 0 |" in shell0  # fit has no beta_6; truth padded with 0
    d_fit = shell_distance(beta_fit[0], truth_beta[0])
    d_nn = shell_distance(beta_nn[0], truth_beta[0])
    assert f"| distance to truth | {d_fit:.4f} | {d_nn:.4f} |  |" in shell0


def test_training_and_timing_tables():
    epochs = [{"epoch": str(e), "val_mean": str(v), "train_mean": "0.9", "t_epoch": "10", "samples_per_s": "5"}
              for e, v in [(1, 0.8), (2, 0.5), (3, 0.6)]]
    t = training_table({"pretrain": epochs, "empty": []})
    assert "| pretrain | 3 | 0.5000 (epoch 2) | 0.9000 | 30 | 5.0 |" in t
    assert "| empty | 0 |" in t
    tt = timing_table({"fit": (3.0, 100.0), "detect": (10.0, 50.0)}).splitlines()
    assert tt[2].startswith("| detect |") and tt[-1] == "| **total (serial)** | 13.0 |  |"


def test_report_cli(tmp_path, capsys):
    beta = np.array([[1.0, 0.5], [0.3, 0.1]])
    write_answer(tmp_path / "fit.h5", [0.5, 0.8], beta)
    truth = np.zeros(2, dtype=truth_dtype(2))
    truth["R"], truth["sigma_R"], truth["beta"] = [0.5, 0.8], 0.007, beta
    write_h5(tmp_path / "truth.h5", Truth=truth)
    (tmp_path / "summary.txt").write_text("frames: 3\n")
    out = tmp_path / "sub" / "report.md"
    rc = main(["report", "--out", str(out), "--answer", f"fit={tmp_path / 'fit.h5'}", "--truth",
               str(tmp_path / "truth.h5"), "--detect-summary", str(tmp_path / "summary.txt"),
               "--count-map-png", str(tmp_path / "map.png")])
    assert rc == 0
    text = out.read_text()
    assert "frames: 3" in text and "![count map](../map.png)" in text
    assert "| distance to truth | 0.0000 |  |" in text


def test_report_cli_bad_pair(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r.md"), "--answer", "fit"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()

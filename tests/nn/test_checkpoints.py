import json

import numpy as np
import pandas as pd
import pytest
import torch

from sevi_lib.cli import main
from sevi_lib.core.errors import InputError
from sevi_lib.nn.checkpoints import (
    best_checkpoint,
    checkpoint_table,
    compare_checkpoints,
    list_checkpoints,
)
from sevi_lib.nn.settings import TrainConfig
from sevi_lib.nn.trainer import train

torch.set_num_threads(1)

# evaluation of the same samples twice, at other batch sizes: bitwise-stable on the CPU, within
# TF32 rounding on a GPU (convolution kernels chosen per batch shape)
EVAL_RTOL = 1e-4 if torch.cuda.is_available() else 1e-6


@pytest.fixture(scope="module")
def run(tmp_path_factory, shard_writer):
    """A 3-epoch run of a tiny network, its training and validation shards."""
    write_shard = shard_writer
    root = tmp_path_factory.mktemp("ckpt")
    tr, va = write_shard(root / "t.h5", 16, 0), write_shard(root / "v.h5", 6, 1)
    cfg = TrainConfig(batch_size=8, epochs=3, progress=False, lr=3e-3, seed=1)
    train(cfg, [tr], [va], root / "run")
    return root / "run", tr, va


def test_table_lists_every_checkpoint(run):
    run_dir, _, va = run
    table = checkpoint_table(run_dir, [va], batch_size=4)
    assert [p.rsplit("/", 1)[-1] for p in table["checkpoint"]] == [f"epoch_{e:04d}.pt" for e in (1, 2, 3)]
    assert list(table["epoch"]) == [1, 2, 3] and (table["n"] == 6).all()
    # same samples, same eval mode: the table reproduces the distances logged during training
    # (on a GPU another batch size picks other TF32 convolution kernels: ~1e-5 apart, seen on an H200)
    np.testing.assert_allclose(table["mean"], table["val_at_training"], rtol=EVAL_RTOL)
    np.testing.assert_allclose(table["shell0"] + table["shell1"], table["mean"], rtol=1e-12)
    assert table["best"].sum() == 1
    assert best_checkpoint(table) == table.loc[table["mean"].idxmin(), "checkpoint"]
    assert best_checkpoint(table).endswith(f"epoch_{int(pd.read_csv(run_dir / 'metrics.csv').query('best').epoch.iloc[-1]):04d}.pt")
    extra = checkpoint_table(run_dir, [va], extra=True)
    assert list(extra["checkpoint"].map(lambda p: p.rsplit("/", 1)[-1]))[-2:] == ["best.pt", "last.pt"]


def test_compare_lists_largest_disagreements_first(run):
    run_dir, _, va = run
    a, b = list_checkpoints(run_dir)[0], list_checkpoints(run_dir)[-1]
    table, summary = compare_checkpoints(a, b, [va])
    assert len(table) == 6 and sorted(table["index"]) == list(range(6))
    assert (np.diff(table["disagreement"]) <= 0).all() and table["disagreement"].iloc[0] > 0
    assert {"R0", "R1", "dist_a", "dist_b", "disagreement_shell0"} <= set(table.columns)
    assert summary["mean_a"] == pytest.approx(table["dist_a"].mean())
    same, s2 = compare_checkpoints(a, a, [va])
    assert (same["disagreement"] == 0).all() and s2["mean_disagreement"] == 0


def test_missing_checkpoints(tmp_path):
    with pytest.raises(InputError, match="no checkpoints"):
        list_checkpoints(tmp_path)


def test_cli_train_and_checkpoints(run, tmp_path, capsys):
    _, tr, va = run
    rc = main(["train", "--train", str(tr), "--val", str(va), "--run-dir", str(tmp_path / "r"), "--epochs", "1",
               "--lr", "2e-3", "--batch-size", "8", "--progress", "false", "--quiet"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epochs_run"] == 1 and result["steps"] == 2  # 16 samples / batch 8
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "lr: 0.002" in saved and "batch_size: 8" in saved
    out = tmp_path / "table.csv"
    assert main(["checkpoints", "table", str(tmp_path / "r"), "--val", str(va), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 1 and "best:" in capsys.readouterr().out
    best = str(tmp_path / "r" / "best.pt")
    assert main(["checkpoints", "compare", best, best, "--val", str(va), "--top", "2"]) == 0
    assert '"mean_disagreement": 0.0' in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["train", "--train", str(tmp_path / "none.h5"), "--val", str(tmp_path / "none.h5"),
               "--run-dir", str(tmp_path / "r"), "--optimizer", "rmsprop"])
    assert rc == 2 and "optimizer must be one of adam, nadam, sgd, got 'rmsprop'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # a setting that is no TrainConfig field is no flag
        main(["train", "--train", "a.h5", "--val", "a.h5", "--run-dir", str(tmp_path / "r"), "--optimiser", "adam"])
    assert exc.value.code == 2 and "--optimiser" in capsys.readouterr().err
    rc = main(["train", "--train", str(tmp_path / "none.h5"), "--val", str(tmp_path / "none.h5"),
               "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("sevi: error:") and "none.h5: no such file" in err

"""Checkpoint tools: rank every checkpoint of a run on one validation set; compare two.

API
---
``list_checkpoints(run_dir, extra=False)`` -> sorted paths of ``run_dir/checkpoints/epoch_*.pt``
    (plus ``best.pt`` and ``last.pt`` when ``extra``).
``checkpoint_table(run_dir, data, *, ...)`` -> pandas DataFrame, one row per checkpoint:
    ``checkpoint``, ``epoch``, ``step``, ``n``, ``mean``, ``std``, ``median``, ``p90`` (of the
    per-sample distance summed over shells), ``shell0``, ``shell1`` (mean per-shell distance;
    ``shell2`` ... for networks with more shells),
    ``val_at_training`` (the validation distance recorded when it was saved), ``best`` (True on
    the row with the lowest ``mean``).
``best_checkpoint(table)`` -> path of the row with the lowest mean distance.
``compare_checkpoints(a, b, data, *, ...)`` -> (DataFrame, summary dict): one row per sample,
    sorted by how much the two networks disagree (``disagreement`` = distance between the two
    predictions, summed over shells), with ``index``, ``shard``, ``row``, per-shell
    disagreements, each checkpoint's distance to the label (``dist_a``, ``dist_b``) and the
    label radii ``R0``, ``R1`` when the shards hold ``R``.

``data`` is shard path(s) or a :class:`sevi_lib.nn.data.ShardDataset`; it is read once into
memory when smaller than ``cache_bytes`` so that many checkpoints are evaluated on the same
tensors without re-reading the files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import open_h5
from sevi_lib.nn.data import ShardDataset
from sevi_lib.nn.checkpoint_io import load_checkpoint
from sevi_lib.nn.inference import evaluate
from sevi_lib.nn.loss import shell_distances

_EPOCH = re.compile(r"epoch_(\d+)\.pt$")


def list_checkpoints(run_dir, extra: bool = False) -> list[Path]:
    """Checkpoints of a run folder, by epoch.

    Parameters
    ----------
    run_dir : str or Path
    extra : bool
        Also list ``best.pt`` and ``last.pt`` (after the epoch files) when present.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        The folder holds no checkpoint.
    """
    run_dir = Path(run_dir)
    found = sorted((run_dir / "checkpoints").glob("epoch_*.pt"),
                   key=lambda p: int(_EPOCH.search(p.name).group(1)) if _EPOCH.search(p.name) else -1)
    if extra:
        found += [run_dir / name for name in ("best.pt", "last.pt") if (run_dir / name).exists()]
    if not found:
        raise InputError(f"{run_dir}: no checkpoints (expected checkpoints/epoch_XXXX.pt)")
    return found


def _dataset(data, cache_bytes: int):
    ds = data if isinstance(data, ShardDataset) else ShardDataset(data)
    size = len(ds) * int(np.prod(ds.input_shape)) * 4
    if size > cache_bytes:
        return ds
    xs, ys = zip(*(ds[i] for i in range(len(ds)))) if len(ds) else ((), ())
    cached = TensorDataset(torch.stack(xs), torch.stack(ys))
    cached.source = ds
    return cached


def _source(ds) -> ShardDataset:
    return getattr(ds, "source", ds)


def checkpoint_table(run_dir, data, *, batch_size: int = 64, device="auto", num_workers: int = 0,
                     extra: bool = False, cache_bytes: int = 1 << 30) -> pd.DataFrame:
    """Evaluate every checkpoint of a run folder on the same labelled samples.

    Parameters
    ----------
    run_dir : str or Path
        Folder written by :func:`sevi_lib.nn.trainer.train`.
    data : shard path(s) or ShardDataset
        Labelled validation samples.
    batch_size, device, num_workers : evaluation settings
    extra : bool
        Include ``best.pt`` and ``last.pt``.
    cache_bytes : int
        Hold the inputs in memory when they take less than this.

    Returns
    -------
    pandas.DataFrame
        Columns described in the module docstring, one row per checkpoint, by epoch.
    """
    ds = _dataset(data, cache_bytes)
    rows = []
    for path in list_checkpoints(run_dir, extra=extra):
        model, info = load_checkpoint(path)
        _check_shape(info, _source(ds))
        _, dist = evaluate(model, ds, batch_size=batch_size, device=device, num_workers=num_workers)
        total = dist.sum(axis=1)
        rows.append({
            "checkpoint": str(path), "epoch": info.get("epoch"), "step": info.get("step"), "n": len(total),
            "mean": total.mean(), "std": total.std(), "median": np.median(total),
            "p90": np.percentile(total, 90),
            "shell0": dist[:, 0].mean(), "shell1": dist[:, 1].mean() if dist.shape[1] > 1 else np.nan,
            **{f"shell{j}": dist[:, j].mean() for j in range(2, dist.shape[1])},
            "val_at_training": info.get("val_distance"),
        })
    table = pd.DataFrame(rows)
    table["best"] = False
    table.loc[table["mean"].idxmin(), "best"] = True
    return table


def best_checkpoint(table: pd.DataFrame) -> str:
    """Path of the checkpoint with the lowest mean distance in a :func:`checkpoint_table`."""
    return str(table.loc[table["mean"].idxmin(), "checkpoint"])


def _check_shape(info, ds: ShardDataset) -> None:
    if tuple(info["input_shape"]) != tuple(ds.input_shape):
        raise InputError(f"{info['path']}: trained on inputs {tuple(info['input_shape'])} but "
                         f"{ds.paths[0]} holds {tuple(ds.input_shape)}")
    if (info["spec"]["n_shells"], info["spec"]["n_beta"]) != tuple(ds.label_shape):
        raise InputError(f"{info['path']}: predicts {info['spec']['n_shells']} x {info['spec']['n_beta']} betas "
                         f"but {ds.paths[0]} labels are {tuple(ds.label_shape)}")


def _radii(ds: ShardDataset) -> np.ndarray | None:
    out = []
    for path in ds.paths:
        with open_h5(path) as f:
            if "R" not in f:
                return None
            out.append(np.asarray(f["R"][()], dtype=np.float64))
    return np.concatenate(out)


def compare_checkpoints(a, b, data, *, batch_size: int = 64, device="auto", num_workers: int = 0,
                        cache_bytes: int = 1 << 30):
    """Predictions of two checkpoints on the same samples, largest disagreements first.

    Parameters
    ----------
    a, b : str or Path
        Checkpoints (same input view and label shape).
    data : shard path(s) or ShardDataset
    batch_size, device, num_workers, cache_bytes : as in :func:`checkpoint_table`

    Returns
    -------
    table : pandas.DataFrame
        One row per sample, sorted by ``disagreement`` (descending); columns in the module
        docstring.
    summary : dict
        ``mean_a``, ``mean_b`` (mean distance to the labels), ``a_better`` (fraction of samples
        where a is closer), ``mean_disagreement``, ``n``.
    """
    ds = _dataset(data, cache_bytes)
    src = _source(ds)
    preds, dists = [], []
    for path in (a, b):
        model, info = load_checkpoint(path)
        _check_shape(info, src)
        pred, dist = evaluate(model, ds, batch_size=batch_size, device=device, num_workers=num_workers)
        preds.append(pred)
        dists.append(dist.sum(axis=1))
    dis = shell_distances(torch.from_numpy(preds[0]), torch.from_numpy(preds[1])).numpy()
    where = [src.locate(i) for i in range(len(src))]
    table = pd.DataFrame({
        "index": np.arange(len(src)), "shard": [str(p) for p, _ in where], "row": [r for _, r in where],
        "disagreement": dis.sum(axis=1),
    })
    for j in range(dis.shape[1]):
        table[f"disagreement_shell{j}"] = dis[:, j]
    table["dist_a"], table["dist_b"] = dists
    radii = _radii(src)
    if radii is not None:
        for j in range(radii.shape[1]):
            table[f"R{j}"] = radii[:, j]
    table = table.sort_values("disagreement", ascending=False, kind="stable").reset_index(drop=True)
    summary = {"n": len(src), "mean_a": float(dists[0].mean()), "mean_b": float(dists[1].mean()),
               "a_better": float(np.mean(dists[0] < dists[1])), "mean_disagreement": float(dis.sum(axis=1).mean())}
    return table, summary

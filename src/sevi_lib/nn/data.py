"""Synthesis shards as a torch ``Dataset``, and the sample order of an epoch.

API
---
``ShardDataset(paths)``
    Map-style dataset over synthesis shards: HDF5 files with ``inputs`` (n, C, H, W) float32
    (the network input, already transformed), ``labels`` (n, n_shells, N) float (beta) and,
    unused here, ``R`` and ``sigma_R`` (n, n_shells). Items are ``(input float32 (C, H, W),
    label float32 (n_shells, N))``, read lazily with one h5py handle per process (so it
    works with DataLoader workers). Chunk ``inputs`` per sample for fast random reads.
``EpochSampler(n, seed)``
    Shuffled indices whose order in epoch ``e`` depends only on ``(seed, e)``; ``set_epoch(e,
    start)`` skips the first ``start`` (resuming inside an epoch).
``decode_view(value)``: a shard's ``view`` attribute decoded from JSON.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import open_h5


class ShardDataset(Dataset):
    """Samples of one or more synthesis shards, read lazily.

    Parameters
    ----------
    paths : str, Path or sequence of them
        HDF5 shards with datasets ``inputs`` (n, C, H, W) and ``labels`` (n, S, N); all shards
        must agree on (C, H, W) and (S, N).

    Attributes
    ----------
    input_shape : tuple (C, H, W)
    label_shape : tuple (S, N)
    view : dict or None
        The shards' ``view`` attribute (JSON, as :mod:`sevi_lib.nn.synth` writes it), decoded;
        stored in every checkpoint. All shards must agree.
    paths : list of Path

    Raises
    ------
    InputError
        Missing file, missing dataset, wrong rank, shapes or views that disagree (names the
        file).
    """

    def __init__(self, paths):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no training shards given")
        sizes, views = [], []
        self.input_shape = self.label_shape = None
        for path in self.paths:
            with open_h5(path) as f:
                for name, ndim in (("inputs", 4), ("labels", 3)):
                    if name not in f or not isinstance(f[name], h5py.Dataset):
                        raise InputError(f"{path}: no dataset '{name}' (found: {', '.join(f.keys()) or 'nothing'})")
                    if f[name].ndim != ndim:
                        raise InputError(f"{path}: dataset '{name}' has shape {f[name].shape}, expected {ndim} axes")
                x, y = f["inputs"], f["labels"]
                if x.shape[0] != y.shape[0]:
                    raise InputError(f"{path}: {x.shape[0]} inputs but {y.shape[0]} labels")
                if self.input_shape is None:
                    self.input_shape, self.label_shape = tuple(x.shape[1:]), tuple(y.shape[1:])
                elif (tuple(x.shape[1:]), tuple(y.shape[1:])) != (self.input_shape, self.label_shape):
                    raise InputError(
                        f"{path}: inputs {tuple(x.shape[1:])} / labels {tuple(y.shape[1:])} differ from "
                        f"{self.paths[0]}: {self.input_shape} / {self.label_shape}")
                sizes.append(int(x.shape[0]))
                views.append(f.attrs.get("view"))
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.view = decode_view(views[0])
        for path, v in zip(self.paths, views):
            if decode_view(v) != self.view:
                raise InputError(f"{path}: input view {decode_view(v)} differs from {self.paths[0]}: {self.view}")
        self._files: dict[int, h5py.File] = {}
        self._pid = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[Path, int]:
        """(shard path, row in the shard) of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect_right(self.offsets, index) - 1
        return self.paths[k], int(index - self.offsets[k])

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # fresh handles in every (forked) worker
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = h5py.File(self.paths[k], "r")
        return self._files[k]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect_right(self.offsets, index) - 1
        f = self._file(k)
        row = int(index - self.offsets[k])
        x = np.asarray(f["inputs"][row], dtype=np.float32)
        y = np.asarray(f["labels"][row], dtype=np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)

    def labels(self) -> np.ndarray:
        """All labels, float64, shape (n, S, N)."""
        out = []
        for path in self.paths:
            with open_h5(path) as f:
                out.append(np.asarray(f["labels"][()], dtype=np.float64))
        return np.concatenate(out)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"], state["_pid"] = {}, None
        return state


def decode_view(value):
    """The ``view`` attribute of a shard (JSON text or bytes) decoded; None if absent."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return str(value)


class EpochSampler(Sampler):
    """Shuffled indices whose order in epoch ``e`` depends only on ``(seed, e)``.

    ``set_epoch(epoch, start)`` selects the epoch and skips its first ``start`` indices (to
    resume inside an epoch).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        return iter(self.order(self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start

"""Training harness: the score as loss, resumable runs, early stopping, checkpoints, logs.

Generic half of the network method (the data half, priors / shards / views, lives in the
synthesis and view modules). Everything here works on CPU; CUDA, mixed precision and
``torch.compile`` are used only when asked for and present.

API
---
``score_loss(pred, label)``
    Mean over the batch of ``sum_j sqrt(sum_i 2/(4i+1) (pred - label)^2)``: the grader's
    distance (:func:`sevi_lib.core.score.shell_distance` summed over shells) on the same numbers,
    with a zero (not NaN) gradient where a shell is matched exactly.
``shell_distances(pred, label)`` -> tensor ``(B, n_shells)`` of per-shell distances.
``ShardDataset(paths)``
    Map-style dataset over synthesis shards: HDF5 files with ``inputs`` (n, C, H, W) float32
    (the network input, already transformed), ``labels`` (n, n_shells, N) float (beta) and,
    unused here, ``R`` and ``sigma_R`` (n, n_shells). Items are ``(input float32 (C, H, W),
    label float32 (n_shells, N))``, read lazily with one h5py handle per process (so it
    works with DataLoader workers). Chunk ``inputs`` per sample for fast random reads.
``TrainConfig``
    Dataclass of every training hyper-parameter (see its docstring); ``TrainConfig.from_dict``
    rejects unknown keys; ``.to_dict()``.
``train(cfg, train_paths, val_paths, run_dir, callback=None) -> dict``
    Train (or resume) into ``run_dir``; returns ``best_checkpoint``, ``best_val``,
    ``best_epoch``, ``last_checkpoint``, ``epochs_run``, ``steps``, ``stopped_early``,
    ``interrupted`` (always False on return), ``run_dir``.
``lr_factor(cfg, step, steps_per_epoch)``: the learning-rate multiplier at optimiser step
    ``step`` (a pure function: constant / step / cosine after a linear warm-up).
``evaluate(model, data, ...)`` -> ``(pred (n, S, N) float64, dist (n, S) float64)``.
``predict(checkpoint, inputs, ...)`` -> ``(n, n_shells, N)`` float64 betas.
``load_checkpoint(path, device="cpu")`` -> ``(model, info)``; the model is in eval mode,
    ``info`` holds ``spec`` (network), ``input_shape``, ``view``, ``epoch``, ``step``, ``val_distance``,
    ``config``.
``TrainingInterrupted``: raised by :func:`train` after SIGTERM / SIGINT once the state has been
    saved to ``run_dir/last.pt`` (rerun the same call to resume).

Run folder
----------
``run_dir/config.yaml``            the TrainConfig used
``run_dir/checkpoints/epoch_XXXX.pt``  weights after epoch XXXX (1-based; every
                                   ``save_every_epochs``)
``run_dir/best.pt``                weights of the epoch with the lowest validation distance
``run_dir/last.pt``                full state: weights, optimiser, AMP scaler, RNG states (torch,
                                   CUDA, DataLoader generator), epoch,
                                   batch within the epoch, partial epoch sums, early-stopping
                                   state, history
``run_dir/metrics.csv``            one row per epoch (see ``METRIC_COLUMNS``)
``run_dir/tb/``                    TensorBoard events
``run_dir/loss.png``               train / validation distance curves (redrawn at most every
                                   ``PLOT_SECONDS`` and at the end of the call)
``run_dir/result.yaml``            the dict returned by :func:`train`

Resume and determinism
----------------------
If ``run_dir/last.pt`` exists, :func:`train` continues from it. The order of samples in epoch
``e`` is a pure function of ``(seed, e)`` and the learning rate a pure function of the global
step, so a run resumed from any saved point (end of an epoch, the step at which SIGTERM /
SIGINT arrived, or every ``save_every_steps`` steps, which also covers SIGKILL) gives the
same weights as an uninterrupted run on CPU with the same config. Changing a hyper-parameter
that affects the result (anything but ``RESUME_FREE``) while a ``last.pt`` exists is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler

from sevi_lib.core.angular import distance_weights
from sevi_lib.core.errors import InputError, SeviError
from sevi_lib.core.io import atomic_path, open_h5, write_text
from sevi_lib.nn.network import ARCHS, FREEZE_PARTS, build_model, freeze_parameters

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sevi-train/1"

# metrics.csv, one row per epoch: epoch (1-based), step (optimiser steps so far), lr (of the epoch's
# last step), train_mean / train_std (per-sample distance summed over shells, from the training
# forward passes, train mode), val_mean / val_std (same on the validation shards, eval mode),
# val_shell0 / val_shell1 (mean per-shell validation distance), best (new best validation),
# t_data / t_forward / t_backward / t_optimizer (seconds waiting for and moving batches, in the
# forward pass + loss, the backward pass, the optimiser step), t_val, t_epoch (seconds),
# samples_per_s (training samples over training time).
METRIC_COLUMNS = [
    "epoch", "step", "lr", "train_mean", "train_std", "val_mean", "val_std",
    "val_shell0", "val_shell1", "best", "t_data", "t_forward", "t_backward", "t_optimizer",
    "t_val", "t_epoch", "samples_per_s",
]

PLOT_SECONDS = 60.0  # redraw loss.png at most this often during a run (and always at its end)

# Fields that may change between an interrupted run and its resumption.
RESUME_FREE = frozenset({
    "epochs", "patience", "min_delta", "num_workers", "pin_memory", "prefetch_factor",
    "log_every", "progress", "save_every_steps", "save_every_epochs", "threads", "device",
    "compile", "val_batch_size",
})


class TrainingInterrupted(SeviError):
    """Training stopped on SIGTERM / SIGINT after saving its state to ``last.pt``."""


# --------------------------------------------------------------------------- loss

def shell_distances(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-shell distance ``sqrt(sum_i 2/(4i+1) (pred - label)^2)``.

    Parameters
    ----------
    pred, label : Tensor, shape (B, n_shells, N)
        ``label`` is cast to ``pred``'s dtype.

    Returns
    -------
    Tensor, shape (B, n_shells)
        Differentiable; the gradient is 0 (not NaN) where pred == label exactly.
    """
    label = label.to(dtype=pred.dtype, device=pred.device)
    w = torch.as_tensor(distance_weights(pred.shape[-1]), dtype=pred.dtype, device=pred.device)
    sq = ((pred - label) ** 2 * w).sum(dim=-1)
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(sq))


def score_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The score as loss: mean over the batch of the sum over shells of the shell distance.

    Parameters
    ----------
    pred, label : Tensor, shape (B, n_shells, N)

    Returns
    -------
    Tensor, scalar
    """
    return shell_distances(pred, label).sum(dim=-1).mean()


# --------------------------------------------------------------------------- data

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
        self.view = _decode_view(views[0])
        for path, v in zip(self.paths, views):
            if _decode_view(v) != self.view:
                raise InputError(f"{path}: input view {_decode_view(v)} differs from {self.paths[0]}: {self.view}")
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


def _decode_view(value):
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


# --------------------------------------------------------------------------- config

@dataclass
class TrainConfig:
    """Every hyper-parameter of a training run.

    Attributes
    ----------
    arch : resnet18 | resnet34 | resnet50 | resnet101
    optimizer : adam | nadam | sgd  (sgd uses ``momentum``, ``nesterov``)
    lr, momentum, nesterov, weight_decay : optimiser settings
    schedule : constant | step | cosine, after ``warmup_epochs`` (may be fractional) of linear
        warm-up from lr / warmup_steps to lr; ``step_size`` epochs and ``gamma`` for step;
        cosine decays to ``min_lr_ratio * lr`` at the last epoch. Applied per optimiser step.
    epochs : maximum number of epochs
    batch_size : training batch (the last incomplete batch of an epoch is dropped);
        ``val_batch_size`` (0: twice batch_size) for validation
    patience : stop after this many epochs without a validation improvement larger than
        ``min_delta`` (0: never stop early)
    seed : initial weights, sample order
    num_workers, pin_memory, prefetch_factor : DataLoader settings (pinning only on CUDA)
    amp : off | bf16 | fp16 (CUDA only; fp16 uses a GradScaler)
    compile : torch.compile the model (CUDA only)
    channels_last : channels-last memory format (CUDA only)
    device : auto | cpu | cuda | cuda:N  (auto: CUDA when a device is visible, honouring
        CUDA_VISIBLE_DEVICES, else CPU)
    deterministic : deterministic algorithms (cuDNN benchmark off)
    threads : torch CPU threads (0: leave torch's default)
    grad_clip : clip the gradient norm to this value (0: off)
    init_from : checkpoint whose weights start the run (fine-tuning; fresh optimiser and
        schedule); "" for random initial weights
    freeze_epochs, freeze : keep ``freeze`` (stem | backbone) frozen for the first
        ``freeze_epochs`` epochs
    log_every : steps between TensorBoard step scalars / progress-bar updates
    save_every_epochs : write checkpoints/epoch_XXXX.pt every this many epochs (0: none)
    save_every_steps : also write last.pt every this many steps inside an epoch (0: only at
        epoch ends and on SIGTERM / SIGINT)
    progress : tqdm progress bar on stderr
    """

    arch: str = "resnet18"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.5
    min_lr_ratio: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    val_batch_size: int = 0
    patience: int = 0
    min_delta: float = 0.0
    seed: int = 0
    num_workers: int = 0
    pin_memory: bool = True
    prefetch_factor: int = 2
    amp: str = "off"
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"
    deterministic: bool = True
    threads: int = 0
    grad_clip: float = 0.0
    init_from: str = ""
    freeze_epochs: int = 0
    freeze: str = "stem"
    log_every: int = 10
    save_every_epochs: int = 1
    save_every_steps: int = 0
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        """Build from a mapping; unknown keys raise InputError."""
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(unknown)}")
        if d.get("init_from") is None:
            d.pop("init_from", None)
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise InputError naming the first bad setting."""
        choices = {"arch": tuple(ARCHS), "optimizer": ("adam", "nadam", "sgd"),
                   "schedule": ("constant", "step", "cosine"), "amp": ("off", "bf16", "fp16"),
                   "freeze": FREEZE_PARTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"training setting {name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        positive = ("lr", "epochs", "batch_size", "step_size", "log_every", "prefetch_factor")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"training setting {name} must be > 0, got {getattr(self, name)}")
        nonneg = ("momentum", "weight_decay", "warmup_epochs", "gamma", "min_lr_ratio", "val_batch_size",
                  "patience", "min_delta", "num_workers", "threads", "grad_clip", "freeze_epochs",
                  "save_every_epochs", "save_every_steps")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise InputError(f"training setting {name} must be >= 0, got {getattr(self, name)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise InputError(f"training setting device={self.device!r}: choose auto, cpu, cuda or cuda:N")
        if self.init_from and not Path(self.init_from).exists():
            raise InputError(f"training setting init_from: {self.init_from}: no such file")


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier for optimiser step ``step`` (0-based, counted over the run).

    Linear warm-up over ``warmup_epochs * steps_per_epoch`` steps (from 1/W to 1), then
    ``constant`` (1), ``step`` (``gamma ** floor(epoch / step_size)``, epoch = 0-based epoch of
    the step) or ``cosine`` (from 1 at the end of the warm-up to ``min_lr_ratio`` at the end of
    ``epochs``).
    """
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // steps_per_epoch // cfg.step_size)
    total = cfg.epochs * steps_per_epoch - warm
    progress = min(max((step - warm) / total, 0.0), 1.0) if total > 0 else 1.0
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- devices

def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the first visible CUDA device if any (CUDA_VISIBLE_DEVICES applies), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA device is visible")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- checkpoints

def _weights_payload(model, input_shape, view=None, **meta) -> dict:
    return {"format": CHECKPOINT_FORMAT, "spec": dict(model.spec), "input_shape": list(input_shape),
            "view": json.dumps(view), "meta": meta,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def _save(payload: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_payload(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise InputError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a sevi training checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path, device: str | torch.device = "cpu"):
    """Load a checkpoint written by :func:`train` (epoch_XXXX.pt, best.pt or last.pt).

    Parameters
    ----------
    path : str or Path
    device : str or torch.device

    Returns
    -------
    model : BetaResNet
        In eval mode, on ``device``.
    info : dict
        ``spec`` (build_model arguments), ``input_shape`` (C, H, W), ``view`` (the training
        shards' view attribute, or None), ``path`` and the saved meta data (``epoch``,
        ``step``, ``val_distance``, ``config``).
    """
    payload = _load_payload(path)
    model = build_model(**payload["spec"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device) if isinstance(device, str) else device).eval()
    info = dict(payload.get("meta", {}))
    info.update(spec=dict(payload["spec"]), input_shape=tuple(payload["input_shape"]),
                view=json.loads(payload.get("view", "null")), path=str(path))
    return model, info


# --------------------------------------------------------------------------- evaluation

def _as_dataset(data):
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike, list, tuple)):
        return ShardDataset(data)
    arr = torch.as_tensor(np.asarray(data, dtype=np.float32))
    if arr.ndim != 4:
        raise InputError(f"network inputs must have shape (n, C, H, W), got {tuple(arr.shape)}")
    return torch.utils.data.TensorDataset(arr)


@torch.no_grad()
def _run_model(model, loader, device, amp="off", channels_last=False):
    preds, labels = [], []
    autocast = _autocast(device, amp)
    for batch in loader:
        x = batch[0].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(x)
        preds.append(out.float().cpu().double())
        if len(batch) > 1:
            labels.append(batch[1].double())
    pred = torch.cat(preds) if preds else torch.empty(0)
    label = torch.cat(labels) if labels else None
    return pred, label


def _autocast(device, amp):
    if device.type == "cuda" and amp in ("bf16", "fp16"):
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return lambda: torch.autocast("cuda", dtype=dtype)
    return lambda: torch.autocast(device.type, enabled=False)


def evaluate(model, data, batch_size: int = 64, device="auto", num_workers: int = 0, amp: str = "off"):
    """Predictions and per-shell distances of ``model`` on labelled data.

    Parameters
    ----------
    model : BetaResNet
    data : ShardDataset, shard path(s) or Dataset yielding (input, label)
    batch_size, num_workers : DataLoader settings
    device : "auto", "cpu", "cuda" or torch.device
    amp : off | bf16 | fp16 (CUDA only)

    Returns
    -------
    pred : ndarray (n, S, N) float64
    dist : ndarray (n, S) float64
        Per-shell distance to the labels (the score of each sample and shell).
    """
    ds = _as_dataset(data)
    dev = resolve_device(device) if isinstance(device, str) else device
    was_training = model.training
    model.to(dev).eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    pred, label = _run_model(model, loader, dev, amp)
    model.train(was_training)
    if label is None:
        raise InputError("evaluate needs labelled data (input, label)")
    return pred.numpy(), shell_distances(pred, label).numpy()


def predict(checkpoint, inputs, batch_size: int = 64, device="auto", amp: str = "off") -> np.ndarray:
    """Betas predicted by a trained network.

    Parameters
    ----------
    checkpoint : str, Path, BetaResNet or (model, info) tuple from :func:`load_checkpoint`
    inputs : ndarray (n, C, H, W), shard path(s) or Dataset
        Network inputs in the same view as the training shards.
    batch_size : int
    device : "auto", "cpu", "cuda"
    amp : off | bf16 | fp16 (CUDA only)

    Returns
    -------
    ndarray (n, n_shells, N) float64
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    info = None
    if isinstance(checkpoint, (str, os.PathLike)):
        model, info = load_checkpoint(checkpoint, dev)
    elif isinstance(checkpoint, tuple):
        model, info = checkpoint
    else:
        model = checkpoint
    ds = _as_dataset(inputs)
    if info is not None and len(ds):
        shape = tuple(ds[0][0].shape)
        if shape != tuple(info["input_shape"]):
            raise InputError(f"network inputs have shape {shape} but {info.get('path', 'the checkpoint')} "
                             f"was trained on {tuple(info['input_shape'])}")
    model.to(dev).eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, pin_memory=dev.type == "cuda")
    pred, _ = _run_model(model, loader, dev, amp)
    return pred.numpy()


# --------------------------------------------------------------------------- signals

class _StopFlag:
    """SIGTERM / SIGINT set a flag checked between optimiser steps (main thread only)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum
        # A signal sent to the whole process group also ends the DataLoader workers, and
        # PyTorch's SIGCHLD handler would then raise at a random point (e.g. while last.pt is
        # written). Let the loader find its dead workers itself; the loop saves and stops.
        if hasattr(signal, "SIGCHLD") and signal.SIGCHLD not in self._old:
            self._old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _worker_ignores_sigint(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which saves and stops. (SIGTERM
    stays fatal: the DataLoader itself terminates its workers with it.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --------------------------------------------------------------------------- training

@dataclass
class _State:
    epoch: int = 0            # epochs completed
    batch: int = 0            # batches completed in the current epoch
    step: int = 0             # optimiser steps over the run
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    acc: dict = field(default_factory=dict)   # partial sums of the current epoch
    history: list = field(default_factory=list)


def _new_acc() -> dict:
    return {"n": 0, "sum": 0.0, "sumsq": 0.0, "t_data": 0.0, "t_forward": 0.0, "t_backward": 0.0,
            "t_optimizer": 0.0, "t_train": 0.0}


def _make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _config_conflicts(saved: dict, cfg: TrainConfig) -> list[str]:
    now = cfg.to_dict()
    return [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in now.items()
            if k not in RESUME_FREE and saved.get(k) != v]


def _write_metrics(run_dir: Path, history: list) -> None:
    import pandas as pd
    with atomic_path(run_dir / "metrics.csv") as tmp:
        pd.DataFrame(history, columns=METRIC_COLUMNS).to_csv(tmp, index=False, float_format="%.8g")


def _plot(run_dir: Path, history: list) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    ep = np.array([h["epoch"] for h in history])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key, label in (("train", "train"), ("val", "validation")):
        m = np.array([h[f"{key}_mean"] for h in history], dtype=float)
        s = np.array([h[f"{key}_std"] for h in history], dtype=float)
        ax.plot(ep, m, marker="o", ms=3, label=f"{label} (mean)")
        ax.fill_between(ep, np.maximum(m - s, 1e-12), m + s, alpha=0.2)
    best = [h["epoch"] for h in history if h["best"]]
    if best:
        ax.axvline(best[-1], color="grey", ls=":", label=f"best (epoch {best[-1]})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("distance (sum over shells)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(run_dir / "loss.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def train(cfg: TrainConfig, train_paths, val_paths, run_dir, callback=None) -> dict:
    """Train a network on synthesis shards, or resume the run in ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
    train_paths, val_paths : sequence of str or Path (or a ShardDataset)
        Training and validation shards (see :class:`ShardDataset`).
    run_dir : str or Path
        Run folder (layout in the module docstring); created if needed.
    callback : callable(dict) or None
        Called after every optimiser step with ``epoch`` (0-based), ``batch`` (batches done in
        the epoch), ``step`` (steps done in the run) and ``loss``; for tests and monitoring.

    Returns
    -------
    dict
        ``best_checkpoint``, ``best_val``, ``best_epoch``, ``last_checkpoint``, ``epochs_run``,
        ``steps``, ``stopped_early``, ``run_dir``, ``device``.

    Raises
    ------
    TrainingInterrupted
        On SIGTERM / SIGINT, after saving ``last.pt`` at the current step.
    InputError
        Bad shards, bad settings, or a ``last.pt`` written with other settings.
    """
    cfg.validate()
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    train_ds = train_paths if isinstance(train_paths, Dataset) else ShardDataset(train_paths)
    val_ds = val_paths if isinstance(val_paths, Dataset) else ShardDataset(val_paths)
    if (train_ds.input_shape, train_ds.label_shape) != (val_ds.input_shape, val_ds.label_shape):
        raise InputError(f"validation shards have inputs {val_ds.input_shape} / labels {val_ds.label_shape} but "
                         f"training shards {train_ds.input_shape} / {train_ds.label_shape}")
    if getattr(train_ds, "view", None) != getattr(val_ds, "view", None):
        raise InputError(f"validation shards have view {val_ds.view} but training shards {train_ds.view}")
    n_shells, n_beta = train_ds.label_shape
    view = getattr(train_ds, "view", None)
    in_channels = train_ds.input_shape[0]

    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
    cuda = device.type == "cuda"
    amp = cfg.amp if cuda else "off"
    if cfg.amp != "off" and not cuda:
        log.warning("amp=%s ignored on %s", cfg.amp, device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, n_beta=n_beta, n_shells=n_shells, in_channels=in_channels)
    if cfg.init_from:
        src = _load_payload(cfg.init_from)
        if src["spec"] != model.spec:
            raise InputError(f"{cfg.init_from}: network {src['spec']} does not match this run's {model.spec}")
        model.load_state_dict(src["state_dict"])
    model.to(device)
    if cfg.channels_last and cuda:
        model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(cfg, model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    state = _State(acc=_new_acc())

    last_path = run_dir / "last.pt"
    resumed = last_path.exists()
    if resumed:
        payload = _load_payload(last_path)
        conflicts = _config_conflicts(payload["meta"]["config"], cfg)
        if conflicts:
            raise InputError(f"{last_path} was written with other settings ({'; '.join(conflicts)}); "
                             "use another run folder or remove it")
        st = payload["train_state"]
        if st.get("n_train", len(train_ds)) != len(train_ds):
            raise InputError(f"{last_path} was trained on {st['n_train']} samples, the training shards now hold "
                             f"{len(train_ds)}; use another run folder or remove it")
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"]) if st.get("scaler") else None
        _set_rng_state(st["rng"])
        state = _State(**st["loop"])
        log.info("resuming %s at epoch %d, batch %d (step %d)", run_dir, state.epoch + 1, state.batch, state.step)
    with atomic_path(run_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    n_train = len(train_ds)
    drop_last = n_train >= cfg.batch_size
    steps_per_epoch = n_train // cfg.batch_size if drop_last else 1
    sampler = EpochSampler(n_train, cfg.seed)
    workers = cfg.num_workers
    loader_gen = torch.Generator().manual_seed(cfg.seed)  # worker base seeds (shards need none)
    if resumed and "loader_rng" in st:
        loader_gen.set_state(st["loader_rng"])
    # Workers are started per epoch (not persistent): an idle persistent pool left to the garbage
    # collector was seen to stall its owner for seconds per worker at shutdown.
    loader_kw = dict(num_workers=workers, pin_memory=cfg.pin_memory and cuda,
                     generator=loader_gen,
                     worker_init_fn=_worker_ignores_sigint if workers else None)
    if workers:
        loader_kw["prefetch_factor"] = cfg.prefetch_factor
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=drop_last, **loader_kw)
    val_loader = DataLoader(val_ds, batch_size=cfg.val_batch_size or 2 * cfg.batch_size, shuffle=False,
                            **{**loader_kw, "generator": None})
    fwd_model = torch.compile(model) if (cfg.compile and cuda) else model
    if cfg.compile and not cuda:
        log.warning("compile ignored on %s", device)
    autocast = _autocast(device, amp)

    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=state.step if resumed else None)

    def save_last():
        st = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
              "rng": _rng_state(), "loader_rng": loader_gen.get_state(), "n_train": len(train_ds),
              "loop": dataclasses.asdict(state)}
        payload = _weights_payload(model, train_ds.input_shape, view, epoch=state.epoch, step=state.step,
                                   val_distance=state.history[-1]["val_mean"] if state.history else None,
                                   config=cfg.to_dict())
        payload["train_state"] = st
        _save(payload, last_path)

    def result():
        out = {"best_checkpoint": str(run_dir / "best.pt"), "best_val": state.best_val, "best_epoch": state.best_epoch,
               "last_checkpoint": str(last_path), "epochs_run": state.epoch, "steps": state.step,
               "stopped_early": state.stopped_early, "run_dir": str(run_dir), "device": str(device)}
        write_text(run_dir / "result.yaml", yaml.safe_dump(out, sort_keys=False))
        return out

    from tqdm.auto import tqdm
    stop = _StopFlag()
    last_plot = time.monotonic()
    try:
        with stop:
            while state.epoch < cfg.epochs and not state.stopped_early:
                epoch = state.epoch
                frozen = epoch < cfg.freeze_epochs
                frozen_modules = freeze_parameters(model, cfg.freeze, frozen) if cfg.freeze_epochs else []
                model.train()
                if frozen:
                    for m in frozen_modules:
                        m.eval()
                sampler.set_epoch(epoch, start=state.batch * cfg.batch_size)
                acc = state.acc
                lr = cfg.lr * lr_factor(cfg, max(state.step - 1, 0), steps_per_epoch)
                bar = tqdm(total=steps_per_epoch, initial=state.batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           file=sys.stderr, disable=not cfg.progress, leave=False, dynamic_ncols=True)
                t_mark = time.perf_counter()
                batches = iter(train_loader)
                while True:
                    try:
                        x, y = next(batches)
                    except StopIteration:
                        break
                    except Exception:
                        # a SIGTERM sent to the whole process group also ends the loader's workers;
                        # the state is that of the last completed step: save it and stop cleanly
                        if stop.signum is None:
                            raise
                        save_last()
                        bar.close()
                        raise TrainingInterrupted(
                            f"training interrupted by {signal.Signals(stop.signum).name} at epoch {epoch + 1}, "
                            f"batch {state.batch}; state saved to {last_path}, rerun to resume") from None
                    x = x.to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True)
                    if cfg.channels_last and cuda:
                        x = x.contiguous(memory_format=torch.channels_last)
                    _sync(device)
                    t1 = time.perf_counter()
                    lr = cfg.lr * lr_factor(cfg, state.step, steps_per_epoch)
                    for g in optimizer.param_groups:
                        g["lr"] = lr
                    with autocast():
                        pred = fwd_model(x)
                    per_sample = shell_distances(pred.float(), y).sum(dim=-1)
                    loss = per_sample.mean()
                    _sync(device)
                    t2 = time.perf_counter()
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    _sync(device)
                    t3 = time.perf_counter()
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    _sync(device)
                    t4 = time.perf_counter()
                    d = per_sample.detach().double().cpu()
                    acc["n"] += int(d.numel())
                    acc["sum"] += float(d.sum())
                    acc["sumsq"] += float((d * d).sum())
                    acc["t_data"] += t1 - t_mark
                    acc["t_forward"] += t2 - t1
                    acc["t_backward"] += t3 - t2
                    acc["t_optimizer"] += t4 - t3
                    acc["t_train"] += t4 - t_mark
                    state.step += 1
                    state.batch += 1
                    loss_value = float(loss.detach())
                    if state.step % cfg.log_every == 0:
                        writer.add_scalar("train/loss_step", loss_value, state.step)
                        writer.add_scalar("lr", lr, state.step)
                        bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:.3g}")
                    bar.update(1)
                    if callback is not None:
                        callback({"epoch": epoch, "batch": state.batch, "step": state.step, "loss": loss_value})
                    if stop.signum is not None or (cfg.save_every_steps and state.step % cfg.save_every_steps == 0):
                        save_last()
                    if stop.signum is not None:
                        bar.close()
                        raise TrainingInterrupted(
                            f"training interrupted by {signal.Signals(stop.signum).name} at epoch {epoch + 1}, "
                            f"batch {state.batch}; state saved to {last_path}, rerun to resume")
                    t_mark = time.perf_counter()
                bar.close()

                # validation
                t_v = time.perf_counter()
                model.eval()
                pred, label = _run_model(fwd_model, val_loader, device, amp, cfg.channels_last and cuda)
                dist = shell_distances(pred, label).numpy()
                t_val = time.perf_counter() - t_v
                total = dist.sum(axis=1)
                val_mean, val_std = float(total.mean()), float(total.std())
                n = max(acc["n"], 1)
                train_mean = acc["sum"] / n
                train_std = math.sqrt(max(acc["sumsq"] / n - train_mean ** 2, 0.0))
                improved = val_mean < state.best_val - cfg.min_delta
                if improved:
                    state.best_val, state.best_epoch, state.bad_epochs = val_mean, epoch + 1, 0
                else:
                    state.bad_epochs += 1
                row = {"epoch": epoch + 1, "step": state.step, "lr": lr, "train_mean": train_mean,
                       "train_std": train_std, "val_mean": val_mean, "val_std": val_std,
                       "val_shell0": float(dist[:, 0].mean()),
                       "val_shell1": float(dist[:, 1].mean()) if dist.shape[1] > 1 else float("nan"),
                       "best": bool(improved), "t_data": acc["t_data"], "t_forward": acc["t_forward"],
                       "t_backward": acc["t_backward"], "t_optimizer": acc["t_optimizer"], "t_val": t_val,
                       "t_epoch": acc["t_train"] + t_val, "samples_per_s": acc["n"] / max(acc["t_train"], 1e-12)}
                state.history.append(row)
                state.epoch += 1
                state.batch = 0
                state.acc = _new_acc()
                if cfg.patience and state.bad_epochs >= cfg.patience:
                    state.stopped_early = True

                meta = dict(epoch=epoch + 1, step=state.step, val_distance=val_mean, config=cfg.to_dict())
                weights = _weights_payload(model, train_ds.input_shape, view, **meta)
                if cfg.save_every_epochs and (epoch + 1) % cfg.save_every_epochs == 0:
                    _save(weights, run_dir / "checkpoints" / f"epoch_{epoch + 1:04d}.pt")
                if improved:
                    _save(weights, run_dir / "best.pt")
                for key in ("train_mean", "val_mean", "val_shell0", "val_shell1", "samples_per_s"):
                    writer.add_scalar(f"epoch/{key}", row[key], state.step)
                for key in ("t_data", "t_forward", "t_backward", "t_optimizer", "t_val"):
                    writer.add_scalar(f"time/{key[2:]}", row[key], state.step)
                writer.flush()
                _write_metrics(run_dir, state.history)
                if time.monotonic() - last_plot > PLOT_SECONDS:
                    _plot(run_dir, state.history)
                    last_plot = time.monotonic()
                save_last()
                log.info("epoch %d/%d  train %.4g +- %.3g  val %.4g +- %.3g%s  lr %.3g  %.1f samples/s",
                         epoch + 1, cfg.epochs, train_mean, train_std, val_mean, val_std,
                         "  (best)" if improved else "", lr, row["samples_per_s"])
                if state.stopped_early:
                    log.info("early stop: no improvement for %d epochs (best %.4g at epoch %d)",
                             state.bad_epochs, state.best_val, state.best_epoch)
                if stop.signum is not None and state.epoch < cfg.epochs and not state.stopped_early:
                    raise TrainingInterrupted(
                        f"training interrupted by {signal.Signals(stop.signum).name} after epoch {epoch + 1}; "
                        f"state saved to {last_path}, rerun to resume")
    finally:
        writer.close()
        torch.use_deterministic_algorithms(deterministic_before[0], warn_only=deterministic_before[1])
        if state.history:
            try:
                _plot(run_dir, state.history)
            except Exception as exc:  # never hide the training outcome behind a plotting failure
                log.warning("could not draw %s: %s", run_dir / "loss.png", exc)
    return result()

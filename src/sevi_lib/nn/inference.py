"""A trained network applied to inputs: predictions, and distances to labels (torch).

``evaluate(model, data, ...)`` -> ``(pred (n, S, N) float64, dist (n, S) float64)``.
``predict(checkpoint, inputs, ...)`` -> ``(n, n_shells, N)`` float64 betas.
``run_model(model, loader, device, ...)``: the forward passes both use (and the training loop's
    validation).
``as_dataset(data)``: a Dataset from a Dataset, shard path(s) or an array of inputs.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sevi_lib.core.errors import InputError
from sevi_lib.nn.checkpoint_io import load_checkpoint
from sevi_lib.nn.data import ShardDataset
from sevi_lib.nn.device import autocast, resolve_device
from sevi_lib.nn.loss import shell_distances


def as_dataset(data):
    """A Dataset from a Dataset, shard path(s) or an array of inputs ``(n, C, H, W)``."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike, list, tuple)):
        return ShardDataset(data)
    arr = torch.as_tensor(np.asarray(data, dtype=np.float32))
    if arr.ndim != 4:
        raise InputError(f"network inputs must have shape (n, C, H, W), got {tuple(arr.shape)}")
    return torch.utils.data.TensorDataset(arr)


@torch.no_grad()
def run_model(model, loader, device, amp="off", channels_last=False):
    """Forward passes of `model` over `loader` (no gradients): ``(pred, label)`` as float64 CPU tensors
    (``label`` None when the batches carry no labels)."""
    preds, labels = [], []
    context = autocast(device, amp)
    for batch in loader:
        x = batch[0].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with context():
            out = model(x)
        preds.append(out.float().cpu().double())
        if len(batch) > 1:
            labels.append(batch[1].double())
    pred = torch.cat(preds) if preds else torch.empty(0)
    label = torch.cat(labels) if labels else None
    return pred, label



def evaluate(model, data, *, batch_size: int = 64, device="auto", num_workers: int = 0, amp: str = "off"):
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
    ds = as_dataset(data)
    dev = resolve_device(device) if isinstance(device, str) else device
    was_training = model.training
    model.to(dev).eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    pred, label = run_model(model, loader, dev, amp)
    model.train(was_training)
    if label is None:
        raise InputError("evaluate needs labelled data (input, label)")
    return pred.numpy(), shell_distances(pred, label).numpy()


def predict(checkpoint, inputs, *, batch_size: int = 64, device="auto", amp: str = "off") -> np.ndarray:
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
    ds = as_dataset(inputs)
    if info is not None and len(ds):
        shape = tuple(ds[0][0].shape)
        if shape != tuple(info["input_shape"]):
            raise InputError(f"network inputs have shape {shape} but {info.get('path', 'the checkpoint')} "
                             f"was trained on {tuple(info['input_shape'])}")
    model.to(dev).eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, pin_memory=dev.type == "cuda")
    pred, _ = run_model(model, loader, dev, amp)
    return pred.numpy()

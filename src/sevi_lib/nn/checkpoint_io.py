"""Checkpoint files: the weights payload, atomic writes, validated reads, the model back (torch).

``CHECKPOINT_FORMAT``: the ``format`` entry of every checkpoint.
``weights_payload(model, input_shape, view=None, **meta)`` -> dict (weights on the CPU, the
    network spec, the input shape and view, ``meta``).
``save_payload(payload, path)``: atomic write.
``load_payload(path)`` -> dict; a missing, unreadable or foreign file is an ``InputError``.
``load_checkpoint(path, device="cpu")`` -> ``(model, info)``; the model is in eval mode,
    ``info`` holds ``spec`` (network), ``input_shape``, ``view``, ``epoch``, ``step``,
    ``val_distance``, ``config``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import atomic_path
from sevi_lib.nn.device import resolve_device
from sevi_lib.nn.network import build_model

CHECKPOINT_FORMAT = "sevi-train/1"


def weights_payload(model, input_shape, view=None, **meta) -> dict:
    """The weights of `model` (on the CPU) with its network spec, input shape, input view and `meta`."""
    return {"format": CHECKPOINT_FORMAT, "spec": dict(model.spec), "input_shape": list(input_shape),
            "view": json.dumps(view), "meta": meta,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def save_payload(payload: dict, path) -> None:
    """Write a checkpoint payload atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path) -> dict:
    """The payload of a sevi checkpoint (weights only, on the CPU); a missing, unreadable or foreign
    file is an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch.load raises many types on a corrupt or foreign file)
        raise InputError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a sevi training checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path, device: str | torch.device = "cpu"):
    """Load a checkpoint written by :func:`sevi_lib.nn.trainer.train` (epoch_XXXX.pt, best.pt or last.pt).

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
    payload = load_payload(path)
    model = build_model(**payload["spec"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device) if isinstance(device, str) else device).eval()
    info = dict(payload.get("meta", {}))
    info.update(spec=dict(payload["spec"]), input_shape=tuple(payload["input_shape"]),
                view=json.loads(payload.get("view", "null")), path=str(path))
    return model, info

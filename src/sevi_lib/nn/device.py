"""Where the network runs: the device, synchronisation for timings, mixed precision (torch).

``resolve_device(name)`` -> torch.device (``auto``: the first visible CUDA device, else the CPU).
``sync(device)``: wait for the device's queued work (CUDA only).
``autocast(device, amp)`` -> a factory of the autocast context (mixed precision on CUDA only).
"""

from __future__ import annotations

import torch

from sevi_lib.core.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the first visible CUDA device if any (CUDA_VISIBLE_DEVICES applies), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA device is visible")
    return torch.device(name)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU (for step timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: str):
    """A factory of the autocast context for `amp` (off | bf16 | fp16): mixed precision on CUDA only,
    a disabled context everywhere else."""
    if device.type == "cuda" and amp in ("bf16", "fp16"):
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return lambda: torch.autocast("cuda", dtype=dtype)
    return lambda: torch.autocast(device.type, enabled=False)

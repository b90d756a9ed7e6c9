"""The CUDA path of training and prediction (skipped without a visible GPU; CI has none).

Run on a GPU machine: ``pytest tests/nn/test_cuda.py``. What they check is what the CPU tests
cannot: that the CUDA-only options (bf16 / fp16 autocast, channels-last) train to finite
losses, that a checkpoint written on the GPU loads and predicts the same on the CPU, and that
``sevi nn gpu-run`` hands its child exactly one real device.
"""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from sevi_lib.nn.settings import TrainConfig
from sevi_lib.nn.gpu_slot import run_on_slot, visible_devices
from sevi_lib.nn.checkpoint_io import load_checkpoint
from sevi_lib.nn.inference import predict
from sevi_lib.nn.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")

TINY = {"arch": "resnet18", "batch_size": 8, "progress": False, "seed": 3, "lr": 1e-3, "device": "cuda"}


@pytest.mark.parametrize("amp,channels_last", [("off", False), ("bf16", True), ("fp16", False)])
def test_training_on_cuda_gives_a_checkpoint_the_cpu_reads(make_shard, tmp_path, amp, channels_last):
    tr, va = make_shard("t.h5", 32, 0, shape=(1, 64, 64)), make_shard("v.h5", 8, 1, shape=(1, 64, 64))
    cfg = TrainConfig(**{**TINY, "epochs": 3, "amp": amp, "channels_last": channels_last, "pin_memory": True})
    out = train(cfg, [tr], [va], tmp_path / "run")
    assert out["device"].startswith("cuda") and math.isfinite(out["best_val"])
    model, info = load_checkpoint(out["best_checkpoint"], "cpu")
    assert next(model.parameters()).device.type == "cpu"
    on_cpu = predict((model, info), [va], batch_size=4, device="cpu")
    on_gpu = predict(out["best_checkpoint"], [va], batch_size=4, device="cuda")
    assert np.isfinite(on_cpu).all()
    # float32 on both (amp only in training): the same network within float32 rounding
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=0, atol=1e-3 * max(1.0, np.abs(on_cpu).max()))


def test_bf16_prediction_is_close_to_float32(make_shard, tmp_path):
    tr = make_shard("t.h5", 16, 0, shape=(1, 64, 64))
    out = train(TrainConfig(**{**TINY, "epochs": 1}), [tr], [tr], tmp_path / "run")
    full = predict(out["best_checkpoint"], [tr], device="cuda")
    half = predict(out["best_checkpoint"], [tr], device="cuda", amp="bf16")
    # bf16 keeps 8 bits of mantissa: relative error ~ 2**-8 per operation, a few % after a ResNet
    np.testing.assert_allclose(half, full, rtol=0, atol=0.05 * max(1.0, np.abs(full).max()))


def test_gpu_run_gives_the_child_one_real_device(tmp_path):
    devices = visible_devices()
    assert devices, "torch sees a GPU, so nvidia-smi -L or CUDA_VISIBLE_DEVICES must list one"
    out = tmp_path / "child.txt"
    code = (f"import torch; open({str(out)!r}, 'w').write("
            "f'{torch.cuda.device_count()} {torch.cuda.get_device_name(0)}')")
    assert run_on_slot([sys.executable, "-c", code], tmp_path / "locks", devices) == 0
    count, name = out.read_text().split(" ", 1)
    assert count == "1" and name.strip() == torch.cuda.get_device_name(0)


def test_gpu_run_command_line(tmp_path):
    code = "import os, torch; assert torch.cuda.device_count() == 1, os.environ['CUDA_VISIBLE_DEVICES']"
    res = subprocess.run(["sevi", "nn", "gpu-run", "--lock-dir", str(tmp_path), "--",
                          sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr

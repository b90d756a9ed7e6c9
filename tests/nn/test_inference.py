import h5py
import numpy as np
import pytest
import torch

from sevi_lib.core.errors import InputError
from sevi_lib.core.score import shell_distance
from sevi_lib.nn.checkpoint_io import load_checkpoint
from sevi_lib.nn.inference import evaluate, predict
from sevi_lib.nn.settings import TrainConfig
from sevi_lib.nn.trainer import train

torch.set_num_threads(1)

# evaluation of the same samples twice, at other batch sizes: bitwise-stable on the CPU, within
# TF32 rounding on a GPU (convolution kernels chosen per batch shape)
EVAL_RTOL = 1e-4 if torch.cuda.is_available() else 1e-6

TINY = {"arch": "resnet18", "batch_size": 8, "progress": False, "seed": 3, "lr": 1e-3}


def test_predict_matches_training_evaluation(make_shard, tmp_path):
    view = '{"name": "fold", "downsample": 32, "scale": 255.0}'
    tr, va = make_shard("t.h5", 8, 0, view=view), make_shard("v.h5", 6, 1, view=view)
    out = train(TrainConfig(**{**TINY, "epochs": 1}), [tr], [va], tmp_path / "run")
    assert load_checkpoint(out["best_checkpoint"])[1]["view"] == {"name": "fold", "downsample": 32, "scale": 255.0}
    with h5py.File(va) as f:
        x, y = f["inputs"][()], f["labels"][()]
    beta = predict(out["best_checkpoint"], x, batch_size=4)
    assert beta.shape == (6, 2, 12) and beta.dtype == np.float64
    # on a GPU another batch size picks other TF32 convolution kernels: ~1e-5 apart, seen on an H200
    np.testing.assert_allclose(shell_distance(beta, y).sum(axis=1).mean(), out["best_val"], rtol=EVAL_RTOL)
    np.testing.assert_array_equal(predict(out["best_checkpoint"], [va], batch_size=4), beta)
    with pytest.raises(InputError, match=r"\(1, 32, 32\)"):
        predict(out["best_checkpoint"], np.zeros((2, 1, 32, 32), np.float32))
    pred, dist = evaluate(load_checkpoint(out["best_checkpoint"])[0], [va], batch_size=4, device="cpu")
    np.testing.assert_array_equal(pred, beta)
    np.testing.assert_allclose(dist, shell_distance(beta, y), rtol=1e-6)  # labels stored as float32

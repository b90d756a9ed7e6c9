import numpy as np
import pytest
import torch

from sevi_lib.core.errors import InputError
from sevi_lib.nn.checkpoint_io import CHECKPOINT_FORMAT, load_checkpoint, load_payload, save_payload, weights_payload
from sevi_lib.nn.network import build_model

torch.set_num_threads(1)


def test_saved_weights_load_back_to_the_same_network(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", n_beta=12, n_shells=2, in_channels=1).eval()
    view = {"name": "fold", "downsample": 32, "scale": 255.0}
    save_payload(weights_payload(model, (1, 32, 32), view, epoch=3, step=7), tmp_path / "w.pt")
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temporary file, then renamed
    back, info = load_checkpoint(tmp_path / "w.pt")
    assert not back.training and info["spec"] == model.spec and info["input_shape"] == (1, 32, 32)
    assert info["view"] == view and (info["epoch"], info["step"]) == (3, 7)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).numpy(), model(x).numpy())
    assert load_payload(tmp_path / "w.pt")["format"] == CHECKPOINT_FORMAT


def test_missing_corrupt_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_payload(tmp_path / "bad.pt")
    torch.save({"format": "other/1"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a sevi training checkpoint"):
        load_payload(tmp_path / "other.pt")

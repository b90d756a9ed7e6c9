import pytest
import torch

from sevi_lib.core.errors import InputError
from sevi_lib.nn.device import autocast, resolve_device


def test_auto_is_cuda_where_visible_else_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_device_is_refused_and_cpu_never_autocasts():
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    with autocast(torch.device("cpu"), "bf16")():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32

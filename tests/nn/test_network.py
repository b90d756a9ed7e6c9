import pytest
import torch

from sevi_lib.core.errors import InputError
from sevi_lib.nn.network import ARCHS, build_model, count_parameters, freeze_parameters

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_has_one_channel_stem_and_24_outputs(arch, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("build_model must not download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = build_model(arch)
    assert model.net.conv1.in_channels == 1
    assert model.net.fc.out_features == 24
    assert model.spec == {"arch": arch, "n_beta": 12, "n_shells": 2, "in_channels": 1}


@pytest.mark.parametrize("hw", [32, 64, 128])
def test_output_shape_on_small_views(hw):
    torch.manual_seed(0)
    model = build_model("resnet18", n_beta=6, n_shells=2, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 1, hw, hw))
    assert out.shape == (3, 2, 6)
    assert torch.isfinite(out).all()


def test_multichannel_input():
    model = build_model("resnet18", n_beta=4, n_shells=3, in_channels=2).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 2, 32, 32)).shape == (2, 3, 4)


def test_rebuild_from_spec_gives_same_architecture():
    a = build_model("resnet34", n_beta=8)
    b = build_model(**a.spec)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(a.state_dict()[k].shape == b.state_dict()[k].shape for k in a.state_dict())


def test_bad_arguments():
    with pytest.raises(InputError, match="resnet7"):
        build_model("resnet7")
    with pytest.raises(InputError, match="n_beta"):
        build_model("resnet18", n_beta=0)


def test_freeze_stem_and_backbone():
    model = build_model("resnet18")
    total = count_parameters(model)
    freeze_parameters(model, "stem")
    assert not model.net.conv1.weight.requires_grad and not model.net.bn1.weight.requires_grad
    assert model.net.layer1[0].conv1.weight.requires_grad
    assert count_parameters(model) == total - model.net.conv1.weight.numel() - 2 * 64
    freeze_parameters(model, "stem", frozen=False)
    assert count_parameters(model) == total
    freeze_parameters(model, "backbone")
    assert count_parameters(model) == model.net.fc.weight.numel() + model.net.fc.bias.numel()
    with pytest.raises(InputError, match="head"):
        freeze_parameters(model, "head")

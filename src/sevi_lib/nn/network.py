"""ResNet regressors from a count-map view to the beta coefficients of both shells.

The seed team's network: a torchvision ResNet (no pretrained weights) whose stem takes one
input channel and whose last linear layer gives ``n_shells * n_beta`` numbers. Here the
output is reshaped to ``(B, n_shells, n_beta)`` so that ``out[:, j, i]`` is beta_{2(i+1)} of
shell ``j`` (the project's beta convention). Nothing is downloaded: ``weights=None``.

ResNets end in an adaptive average pool, so the same network accepts any input size from
about 32 x 32 (one pixel left after the stride-32 trunk) up to the full 1024 x 1024 map.

API
---
``build_model(arch="resnet18", n_beta=12, n_shells=2, in_channels=1, residual=False) -> BetaResNet``
    ``residual``: the output is ``offset + scale * net(x)`` with ``offset``, ``scale`` buffers
    ``(n_shells, n_beta)`` (a residual around a prior centre in units of its width; set by the
    trainer from the shards' prior, stored with the weights).
``ARCHS``: the architecture names accepted (resnet18, resnet34, resnet50, resnet101).
``BetaResNet.spec``: the keyword arguments of :func:`build_model` that rebuild the network
(stored in every checkpoint by :mod:`sevi_lib.nn.trainer`).
``freeze_parameters(model, part)``: switch off gradients of ``"stem"`` (conv1 + bn1) or
``"backbone"`` (everything except the final linear layer); returns the frozen modules.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from sevi_lib.core.errors import InputError
from sevi_lib.core.shells import N_BETA
from sevi_lib.nn.settings import ARCHS as ARCH_NAMES
from sevi_lib.nn.settings import FREEZE_PARTS

#: Architecture name -> torchvision constructor (the names are :data:`sevi_lib.nn.settings.ARCHS`).
ARCHS = {name: getattr(models, name) for name in ARCH_NAMES}


class BetaResNet(nn.Module):
    """A torchvision ResNet whose output is viewed as ``(B, n_shells, n_beta)``.

    Parameters
    ----------
    net : torchvision.models.ResNet
        The trunk, already with the right stem and output width.
    spec : dict
        Keyword arguments of :func:`build_model` that rebuild this network.
    """

    def __init__(self, net: nn.Module, spec: dict):
        super().__init__()
        self.net = net
        self.spec = dict(spec)
        self.n_shells = int(spec["n_shells"])
        self.n_beta = int(spec["n_beta"])
        self.residual = bool(spec.get("residual", False))
        if self.residual:
            self.register_buffer("offset", torch.zeros(self.n_shells, self.n_beta))
            self.register_buffer("scale", torch.ones(self.n_shells, self.n_beta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        out = out.view(out.shape[0], self.n_shells, self.n_beta)
        if self.residual:
            out = self.offset.to(out.dtype) + self.scale.to(out.dtype) * out
        return out


def build_model(arch: str = "resnet18", n_beta: int = N_BETA, n_shells: int = 2,
                in_channels: int = 1, residual: bool = False) -> BetaResNet:
    """Build a randomly initialised ResNet regressor for beta coefficients.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50", "resnet101"}
        torchvision architecture.
    n_beta : int
        Coefficients per shell (beta_2 .. beta_{2 n_beta}).
    n_shells : int
        Number of shells.
    in_channels : int
        Channels of the input view (1 for a count map).
    residual : bool
        Output ``offset + scale * net(x)`` (buffers, 0 and 1 until set); recorded in the spec
        only when true, so that the spec of a plain network is what it always was.

    Returns
    -------
    BetaResNet
        Module mapping ``(B, in_channels, H, W)`` float32 to ``(B, n_shells, n_beta)``.

    Raises
    ------
    InputError
        Unknown architecture or non-positive sizes.
    """
    if arch not in ARCHS:
        raise InputError(f"unknown network architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    for name, value in (("n_beta", n_beta), ("n_shells", n_shells), ("in_channels", in_channels)):
        if int(value) < 1:
            raise InputError(f"network {name} must be >= 1, got {value}")
    net = ARCHS[arch](weights=None, num_classes=int(n_shells) * int(n_beta))
    old = net.conv1
    net.conv1 = nn.Conv2d(int(in_channels), old.out_channels, kernel_size=old.kernel_size,
                          stride=old.stride, padding=old.padding, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    spec = {"arch": arch, "n_beta": int(n_beta), "n_shells": int(n_shells), "in_channels": int(in_channels)}
    if residual:
        spec["residual"] = True
    return BetaResNet(net, spec)


def _part_modules(model: BetaResNet, part: str) -> list[nn.Module]:
    net = model.net
    if part == "stem":
        return [net.conv1, net.bn1]
    if part == "backbone":
        return [m for name, m in net.named_children() if name != "fc"]
    raise InputError(f"unknown part to freeze {part!r}; choose one of {', '.join(FREEZE_PARTS)}")


def freeze_parameters(model: BetaResNet, part: str, frozen: bool = True) -> list[nn.Module]:
    """Switch gradients of a part of the network off (or back on).

    Parameters
    ----------
    model : BetaResNet
    part : {"stem", "backbone"}
        ``"stem"``: the first convolution and its batch norm; ``"backbone"``: every layer
        except the final linear one.
    frozen : bool
        True to freeze, False to release.

    Returns
    -------
    list of nn.Module
        The modules of that part; the trainer keeps their batch norms in eval mode while
        frozen so that their running statistics stay those of the loaded weights.
    """
    modules = _part_modules(model, part)
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)
    return modules


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

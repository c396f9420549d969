"""Small building blocks shared by the model files."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustcompress.errors import ModelError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``tanh``, ``sigmoid``, ``elu``, ``gelu``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ModelError(
            f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}"
        ) from None


class MaxPool2d(nn.MaxPool2d):
    """:class:`torch.nn.MaxPool2d` that pools CPU forward passes without autograd (the
    predictions of evaluations and score-based attacks such as Square) in the
    channels-last layout, where this CPU kernel is about ten times faster than on the
    default layout (one thread, 60 × 32 × 28 × 28: 1.7 ms vs 19 ms), then returns the
    default layout. The values are the same bit for bit (a maximum does not depend on
    the memory order). Passes that record gradients keep the default kernel: with the
    backward pass the layout conversions cost more than they save (CNN forward and
    backward on 100 images: 0.76× the default's speed, median of 60 alternating
    runs; forward alone 1.27×). See ``benchmarks/maxpool.py``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.device.type == "cpu" and not torch.is_grad_enabled():
            pooled = super().forward(x.contiguous(memory_format=torch.channels_last))
            return pooled.contiguous()
        return super().forward(x)


class Normalize(nn.Module):
    """Per-channel ``(x − mean) / std`` inside the model, so attacks stay in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def maybe_normalize(mean: Sequence[float] | None, std: Sequence[float] | None) -> nn.Module:
    """A :class:`Normalize` layer, or the identity when ``mean``/``std`` are ``None``."""
    if mean is None and std is None:
        return nn.Identity()
    if mean is None or std is None:
        raise ModelError("give both 'mean' and 'std' for input normalisation, or neither")
    return Normalize(mean, std)

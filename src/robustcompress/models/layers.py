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

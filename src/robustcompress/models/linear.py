"""Linear classifiers on MNIST as Guo et al. 2018 train them (§3, §4.1).

* ``softmax_regression``: ``x ↦ W x + b`` with ``K`` logits, trained with the
  cross-entropy (multinomial logistic regression).
* ``logistic_regression``: a binary classifier ``z = wᵀx + b`` exposed as the two
  logits ``(0, z)``. The cross-entropy of these logits is exactly the paper's softplus
  loss ``log(1 + exp(−y·z))`` with ``y = +1`` for class 1 and ``y = −1`` for class 0
  (``CE = softplus(−z)`` for label 1 and ``softplus(z)`` for label 0), so the trainer,
  the attacks and the metrics treat it like any two-class model; its one weight vector
  is the single weight matrix ``W1`` (1 × 784) that pruning and structure measures see.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustcompress.models.layers import maybe_normalize
from robustcompress.models.registry import register_model


class BinaryLogits(nn.Module):
    """``z ↦ (0, z)``: one score as the two logits of a two-class model."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(z), z], dim=1)


@register_model(
    "softmax_regression",
    input_shape=(1, 28, 28),
    default_dataset="mnist",
    paper="Guo et al. 2018, §4.1 (multi-class linear classifier)",
)
def softmax_regression(
    num_classes: int = 10,
    in_features: int = 784,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Softmax regression: one linear layer, ``in_features`` → ``num_classes`` logits."""
    return nn.Sequential(
        maybe_normalize(mean, std), nn.Flatten(), nn.Linear(in_features, num_classes)
    )


@register_model(
    "logistic_regression",
    input_shape=(1, 28, 28),
    num_classes=2,
    default_dataset="mnist",
    paper="Guo et al. 2018, §4.1 (binary linear classifier, softplus loss)",
)
def logistic_regression(
    in_features: int = 784,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Logistic regression: ``z = wᵀx + b`` as the two logits ``(0, z)`` (softplus loss)."""
    return nn.Sequential(
        maybe_normalize(mean, std), nn.Flatten(), nn.Linear(in_features, 1), BinaryLogits()
    )

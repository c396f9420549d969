"""The convolutional network of Langenberg et al. 2019 (§5, item 2)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustcompress.models.layers import MaxPool2d, activation, maybe_normalize
from robustcompress.models.registry import register_model


@register_model(
    "cnn",
    input_shape=(1, 28, 28),
    default_dataset="fashion-mnist",
    paper="Langenberg et al. 2019, §5 item 2",
)
def cnn(
    channels: int = 32,
    hidden: int = 128,
    conv_activation: str = "relu",
    fc_activation: str = "tanh",
    in_channels: int = 1,
    input_size: int = 28,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """CNN: 2×[Conv 3×3 (32) → act → MaxPool 2×2] → Linear(128, tanh) → Linear(10).

    The paper does not state the convolution activation; ``conv_activation``
    defaults to ReLU. Convolutions are unpadded (28 → 26 → 13 → 11 → 5), so the
    first linear layer sees 32·5·5 = 800 features.
    """
    size = ((input_size - 2) // 2 - 2) // 2
    return nn.Sequential(
        maybe_normalize(mean, std),
        nn.Conv2d(in_channels, channels, 3),
        activation(conv_activation),
        MaxPool2d(2),
        nn.Conv2d(channels, channels, 3),
        activation(conv_activation),
        MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * size * size, hidden),
        activation(fc_activation),
        nn.Linear(hidden, num_classes),
    )

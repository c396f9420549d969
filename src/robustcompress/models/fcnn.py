"""The fully connected network of Langenberg et al. 2019 (§5, item 1)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustcompress.models.layers import activation, maybe_normalize
from robustcompress.models.registry import register_model


@register_model(
    "fcnn",
    input_shape=(1, 28, 28),
    default_dataset="mnist",
    paper="Langenberg et al. 2019, §5 item 1",
)
def fcnn(
    hidden: Sequence[int] = (20, 20, 20, 20, 20),
    activation_name: str = "tanh",
    in_features: int = 784,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """FCNN 784 → 5×20 (tanh) → 10 for MNIST; the paper's W_1 ∈ R^{20×784}.

    ``hidden`` sets the widths of the hidden layers; each hidden layer is
    ``Linear → activation`` so the activation outputs are the hidden
    representations t_i = φ(W_i t_{i−1}) of the paper's eq. (1).
    """
    layers: list[nn.Module] = [maybe_normalize(mean, std), nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), activation(activation_name)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)

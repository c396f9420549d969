"""LeNet-300-100 and LeNet-5 as used by Guo et al. 2018 (§4.2) on MNIST."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustcompress.models.layers import MaxPool2d, maybe_normalize
from robustcompress.models.registry import register_model


@register_model(
    "lenet300100",
    input_shape=(1, 28, 28),
    default_dataset="mnist",
    paper="LeCun et al. 1998; Guo et al. 2018, §4.2",
)
def lenet300100(
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """LeNet-300-100: 784 → 300 → 100 → 10 with ReLU."""
    return nn.Sequential(
        maybe_normalize(mean, std),
        nn.Flatten(),
        nn.Linear(784, 300),
        nn.ReLU(),
        nn.Linear(300, 100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )


@register_model(
    "lenet5",
    input_shape=(1, 28, 28),
    default_dataset="mnist",
    paper="LeCun et al. 1998 (Caffe variant); Guo et al. 2018, §4.2",
)
def lenet5(
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """LeNet-5 as Caffe's MNIST example defines it (``lenet_train_test.prototxt``, the
    network of the pruning papers Guo et al. 2018 follow): Conv5×5(20) → max-pool 2 →
    Conv5×5(50) → max-pool 2 → 500 → ReLU → 10. The convolutions have no ReLU: Caffe's
    one nonlinearity sits after the first fully connected layer."""
    return nn.Sequential(
        maybe_normalize(mean, std),
        nn.Conv2d(1, 20, 5),
        MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500),
        nn.ReLU(),
        nn.Linear(500, num_classes),
    )

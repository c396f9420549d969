"""Fixtures for the evaluation tests: an affine classifier, a gradient-masked model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from robustcompress.models import create_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Single-threaded: the models are tiny and threads only contend on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class RoundedInput(nn.Module):
    """A deliberately gradient-masked model: it quantises its input with ``round``.

    ``round`` has derivative zero almost everywhere, so ``∇_x`` of any loss is exactly
    zero and every first-order attack stands still, although small changes of the
    input do change the decision.
    """

    def __init__(self, inner: nn.Module, levels: int = 8) -> None:
        super().__init__()
        self.inner = inner
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * self.levels) / self.levels)


@pytest.fixture
def affine() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An affine classifier on 1×4×4 inputs in [0.4, 0.6], labelled with its own decisions.

    Returns ``(model, x, y)`` in float64. With ε ≤ 0.1 no FGSM step reaches the box
    edges, so FGSM moves each input along a straight line ``x + ε·s``.
    """
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(16, 5).double()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(5, 16, generator=g, dtype=torch.float64))
        linear.bias.copy_(-0.5 * linear.weight.sum(dim=1))
    model = nn.Sequential(nn.Flatten(), linear).eval()
    x = 0.5 + 0.1 * (2 * torch.rand(64, 1, 4, 4, generator=g, dtype=torch.float64) - 1)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


@pytest.fixture
def small_model() -> nn.Module:
    """An untrained tanh FCNN 64 → 16 → 16 → 10 on 1×8×8 inputs (seeded)."""
    torch.manual_seed(0)
    return create_model("fcnn", hidden=(16, 16), in_features=64).eval()


@pytest.fixture
def small_batch(small_model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """40 random 1×8×8 images (some pixels exactly 0 or 1) and labels.

    Labels are the model's decisions except every fourth, which is shifted so that
    some inputs are misclassified.
    """
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 8, 8, generator=g)
    x[:, :, 0, :] = 0.0
    x[:, :, -1, :] = 1.0
    with torch.no_grad():
        y = small_model(x).argmax(dim=1)
    y[::4] = (y[::4] + 1) % 10
    return x, y


@pytest.fixture
def masked_model(small_model: nn.Module) -> nn.Module:
    """:class:`RoundedInput` around the small FCNN."""
    return RoundedInput(small_model).eval()

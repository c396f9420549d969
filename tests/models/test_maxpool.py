"""The models' max pooling: the channels-last fast path gives the default kernel's
values bit for bit, and passes that record gradients keep the default kernel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.models import create_model
from robustcompress.models.layers import MaxPool2d


@pytest.mark.parametrize("shape", [(7, 3, 12, 12), (2, 32, 13, 9), (1, 1, 2, 2)])
def test_fast_path_values_equal_the_default_kernel(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape)
    x[:, :, :4, :4] = 0.5  # ties
    with torch.no_grad():
        fast = MaxPool2d(2)(x)
        default = nn.MaxPool2d(2)(x)
    assert torch.equal(fast, default) and fast.is_contiguous()


def test_gradient_passes_use_the_default_kernel() -> None:
    torch.manual_seed(0)
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, ::2, ::2] = 1.0
    x[:, :, 1::2, 1::2] = 1.0  # two tied maxima in every window
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    MaxPool2d(2)(a).sum().backward()
    nn.MaxPool2d(2)(b).sum().backward()
    assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", ["cnn", "lenet5"])
def test_models_predict_the_same_with_and_without_autograd(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert any(isinstance(m, MaxPool2d) for m in model.modules())
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        fast = model(x)
    slow = model(x).detach()
    assert torch.equal(fast, slow)

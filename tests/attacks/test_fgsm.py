"""FGSM: the closed-form optimal ℓ∞ attack on a linear binary classifier."""

from __future__ import annotations

import torch
from torch import nn

from robustcompress import attacks


def test_linear_binary_classifier_gets_minus_y_eps_sign_w() -> None:
    # Langenberg et al. 2019, proof of Theorem 1: η = −y·ε·sign(w) with y ∈ {−1, +1}.
    # Two logits (a_0, a_1): the binary classifier is sign(wᵀx + b) with w = a_1 − a_0,
    # so class index c corresponds to y = 2c − 1.
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(30, 2).double()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, 30, generator=g, dtype=torch.float64))
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(12, 30, generator=g, dtype=torch.float64)
    c = torch.arange(12) % 2
    eps = 0.05
    x_adv = attacks.get("fgsm", eps=eps)(model, x, c)
    w = linear.weight[1] - linear.weight[0]
    y = (2 * c - 1).double()[:, None]
    torch.testing.assert_close(x_adv - x, -y * eps * w.sign(), rtol=0, atol=1e-12)


def test_step_is_eps_sign_of_the_loss_gradient_then_clipped(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x_var = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(tiny_model(x_var), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_var)
    expected = (x + 0.2 * grad.sign()).clamp(0, 1)
    assert torch.equal(attacks.get("fgsm", eps=0.2)(tiny_model, x, y), expected)

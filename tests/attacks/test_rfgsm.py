"""R+FGSM: the random step, the gradient step, and α < ε."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.errors import AttackError


def test_matches_the_two_step_formula(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    eps, alpha = 0.1, 0.03
    g = torch.Generator().manual_seed(7)
    x_start = (x + alpha * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)
    x_var = x_start.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(tiny_model(x_var), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_var)
    expected = (x_start + (eps - alpha) * grad.sign()).clamp(0, 1)
    got = attacks.get("rfgsm", eps=eps, alpha=alpha, seed=7)(tiny_model, x, y)
    assert torch.equal(got, expected)


def test_alpha_defaults_to_half_eps() -> None:
    assert attacks.get("rfgsm", eps=0.1).random_step == pytest.approx(0.05)


@pytest.mark.parametrize("alpha", [0.1, 0.2, -0.01])
def test_alpha_must_be_below_eps(alpha) -> None:
    with pytest.raises(AttackError, match="alpha"):
        attacks.get("rfgsm", eps=0.1, alpha=alpha)

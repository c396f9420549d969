"""The smallest budget misclassifying 99 % of the inputs, against the closed form of an
affine two-class model, and DeepFool's ρ."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.errors import ConfigError
from robustcompress.evaluation.min_perturbation import (
    minimal_attack_rho,
    minimum_budget,
    relative_norms,
)


def _affine() -> tuple[nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two classes, logits Wx + b on 20 inputs in [0.4, 0.6]; the ℓ∞ distance of input i
    to the boundary is d_i = margin_i / ‖w_y − w_o‖₁ ≤ 0.1 (as |x − 0.5| ≤ 0.1), so the
    box [0, 1] never binds."""
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(20, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 20, generator=g, dtype=torch.float64))
        model.bias.copy_(-0.5 * model.weight.sum(dim=1))  # logits W(x − 0.5)
    x = 0.4 + 0.2 * torch.rand(300, 20, generator=g, dtype=torch.float64)
    logits = model(x).detach()
    y = logits.argmax(dim=1)
    w = model.weight.detach()
    margin = logits.max(dim=1).values - logits.min(dim=1).values
    distance = margin / (w[0] - w[1]).abs().sum()
    keep = distance < 0.1
    return model, x[keep], y[keep], distance[keep]


def test_the_bisection_finds_the_closed_form_budget() -> None:
    model, x, y, d = _affine()
    n = len(y)
    # the smallest eps with >= 99 % misclassified lies just above the k-th smallest distance
    k = math.ceil(0.99 * n)
    want = float(torch.sort(d).values[k - 1])

    def bim(eps: float) -> attacks.Attack:
        return attacks.get("bim", eps=eps, alpha=eps / 10, steps=20)

    found = minimum_budget(model, x, y, bim, 1e-4, 0.1, iterations=20)
    assert found.n == n and found.rate >= 0.99 and found.evaluations == 21
    assert want <= found.eps <= want + 0.1 / 2**20 + 1e-12
    # every input moved by eps in every coordinate: rho = eps * sqrt(20) / ||x||
    rho = found.eps * math.sqrt(20) / x.norm(dim=1)
    assert found.rho_mean == pytest.approx(float(rho.mean()), rel=1e-6)


def test_a_budget_that_misses_the_target_is_nan() -> None:
    model, x, y, _ = _affine()
    found = minimum_budget(
        model, x, y, lambda e: attacks.get("bim", eps=e, alpha=e / 10, steps=20), 1e-5, 1e-4
    )
    assert math.isnan(found.eps) and found.rate < 0.99 and found.evaluations == 1
    with pytest.raises(ConfigError, match="need 0 < low < high"):
        minimum_budget(model, x, y, lambda e: attacks.get("bim", eps=e), 0.2, 0.1)


def test_deepfool_rho_is_the_distance_to_the_hyperplane() -> None:
    """On an affine two-class model DeepFool's step is the ℓ2 projection onto the
    boundary (times 1 + overshoot): ρ_i = (1.02 · margin_i / ‖w_y − w_o‖₂) / ‖x_i‖."""
    model, x, y, _ = _affine()
    w = model.weight.detach()
    logits = model(x).detach()
    margin = logits.max(dim=1).values - logits.min(dim=1).values
    want = 1.02 * margin / (w[0] - w[1]).norm() / x.norm(dim=1)
    rho, share, n = minimal_attack_rho(model, x, y, attacks.get("deepfool"))
    assert share == 1.0 and n == len(y)
    assert rho == pytest.approx(float(want.mean()), rel=1e-3)
    assert torch.allclose(relative_norms(x, x), torch.zeros(len(x), dtype=torch.float64))

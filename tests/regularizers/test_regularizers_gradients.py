"""Every penalty's autograd gradient against finite differences (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.regularizers import (
    L1,
    Joint,
    Nuclear,
    Regularizer,
    end_to_end_product,
    l1_norm,
    nuclear_norm,
)


def _linear_chain_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)
    ).double()


def _conv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 2)
    ).double()


def _finite_difference_gradients(
    fn: object, model: nn.Module, eps: float = 1e-6
) -> list[torch.Tensor]:
    """Central differences of ``fn(model)`` w.r.t. every weight entry (perturbed in place)."""
    grads = []
    with torch.no_grad():
        for p in model.parameters():
            g = torch.zeros_like(p)
            flat, gflat = p.view(-1), g.view(-1)
            for j in range(flat.numel()):
                old = float(flat[j])
                flat[j] = old + eps
                up = float(fn(model))  # type: ignore[operator]
                flat[j] = old - eps
                down = float(fn(model))  # type: ignore[operator]
                flat[j] = old
                gflat[j] = (up - down) / (2 * eps)
            grads.append(g)
    return grads


CASES = [
    ("l1-float", L1(0.3), _linear_chain_model),
    ("l1-map", L1({"W1": 0.2, 3: 0.7}), _linear_chain_model),
    ("l1-conv", L1({"0": 0.5, "W2": 0.1}), _conv_model),
    ("nuclear-float", Nuclear(0.4), _linear_chain_model),
    ("nuclear-conv", Nuclear({"W1": 0.6, "W2": 0.2}), _conv_model),
    ("joint", Joint(0.8), _linear_chain_model),
]


@pytest.mark.parametrize(("label", "reg", "make_model"), CASES, ids=[c[0] for c in CASES])
def test_penalty_gradient_matches_finite_differences(
    label: str, reg: Regularizer, make_model: object
) -> None:
    model = make_model()  # type: ignore[operator]
    reg.penalty(model).backward()
    expected = _finite_difference_gradients(reg.penalty, model)
    for (name, p), fd in zip(model.named_parameters(), expected, strict=True):
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(got, fd, atol=1e-7, rtol=1e-6, msg=f"{label}: {name}")


def test_pure_norms_pass_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(l1_norm, (W,))
    assert torch.autograd.gradcheck(nuclear_norm, (W,))
    A = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: l1_norm(end_to_end_product([w, a])), (A, W))

"""The regularized loss of eq. (8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcompress.models import create_model
from robustcompress.regularizers import L1, Joint, Nuclear, regularized_loss


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    """Copies of every parameter's gradient (zeros where there is none)."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def _batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("fcnn")
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    return model, x, y


def test_total_is_cross_entropy_plus_the_penalties() -> None:
    model, x, y = _batch()
    regs = [L1({"W1": 0.01}), Nuclear({"W1": 0.03}), Joint(0.001)]
    logits = model(x)
    total, terms = regularized_loss(model, logits, y, regs)
    ce = F.cross_entropy(logits, y)
    penalties = [r.penalty(model) for r in regs]
    torch.testing.assert_close(total, ce + sum(penalties))
    assert list(terms) == ["ce", "l1", "nuclear", "joint", "total"]
    assert terms["ce"] == float(ce.detach())
    for reg, p in zip(regs, penalties, strict=True):
        assert terms[reg.name] == float(p.detach())
    assert abs(terms["total"] - sum(v for k, v in terms.items() if k != "total")) < 1e-5


def test_gradient_of_the_total_is_the_sum_of_gradients() -> None:
    model, x, y = _batch()
    reg = L1(0.05)
    total, _ = regularized_loss(model, model(x), y, [reg])
    total.backward()
    combined = _grads(model)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    ce_only = _grads(model)
    model.zero_grad()
    reg.penalty(model).backward()
    for name, c, g, pen in zip(
        [n for n, _ in model.named_parameters()], combined, ce_only, _grads(model), strict=True
    ):
        torch.testing.assert_close(c, g + pen, msg=name)
        if name.endswith("bias"):
            assert torch.equal(pen, torch.zeros_like(pen))  # biases are never regularized


def test_without_regularizers_the_loss_is_cross_entropy() -> None:
    model, x, y = _batch()
    logits = model(x)
    total, terms = regularized_loss(model, logits, y, [])
    assert terms == {"ce": float(F.cross_entropy(logits, y).detach()), "total": terms["ce"]}
    assert torch.equal(total, F.cross_entropy(logits, y))

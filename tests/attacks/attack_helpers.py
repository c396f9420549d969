"""Helpers shared by the attack tests (imported by name; not a test module)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustcompress import attacks

#: Settings that keep every attack fast on the tiny models (defaults otherwise).
FAST: dict[str, dict[str, Any]] = {
    "cw_l2": {"steps": 30, "search_steps": 3},
    "deepfool": {"max_iter": 20},
    "deepfool_linf": {"max_iter": 20},
    "apgd": {"steps": 20},
    "apgd_l2": {"steps": 20},
    "apgd_t": {"steps": 20, "target_classes": 3},
    "apgd_t_l2": {"steps": 20, "target_classes": 3},
    "fab": {"steps": 10},
    "fab_l2": {"steps": 10},
    "fab_t": {"steps": 10, "target_classes": 3},
    "fab_t_l2": {"steps": 10, "target_classes": 3},
    "square": {"queries": 100},
    "square_l2": {"queries": 100},
    "autoattack": {"steps": 10, "queries": 50},
}

#: Attacks whose output depends on random draws.
RANDOM = {
    "noise",
    "rfgsm",
    "apgd",
    "apgd_l2",
    "apgd_t",
    "apgd_t_l2",
    "square",
    "square_l2",
    "autoattack",
}


def make_attack(name: str, **settings: Any) -> attacks.Attack:
    """``attacks.get`` with the fast settings for tests, overridable."""
    return attacks.get(name, **{**FAST.get(name, {}), **settings})


def affine_problem(
    num_classes: int = 5, n: int = 16, d: int = 24, seed: int = 0
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An affine classifier ``f(x) = Ax + b`` with inputs well inside the box, in float64.

    Returns ``(model, x, A)``: the model is ``Flatten → Linear(d, K)``, ``x`` has shape
    ``n×1×d`` with pixels in [0.4, 0.6], and ``b`` makes all logits equal at x = 0.5, so
    minimal perturbations are small (≈ 0.1) and never reach the box edges.
    """
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, d, generator=g, dtype=torch.float64)
    linear = nn.Linear(d, num_classes).double()
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(-0.5 * weight.sum(dim=1))
    x = 0.5 + 0.1 * (2 * torch.rand(n, 1, d, generator=g, dtype=torch.float64) - 1)
    return nn.Sequential(nn.Flatten(), linear).eval(), x, weight


def affine_min_distance(weight: torch.Tensor, logits: torch.Tensor, dual: str) -> torch.Tensor:
    """Exact smallest perturbation changing an affine classifier's decision, per sample.

    For ``f(x) = Ax + b`` with decision k, the class-k region is the intersection of the
    half-spaces ``f_k ≥ f_j``, so the distance to leaving it is
    ``min_{j≠k} (f_k − f_j)/‖a_k − a_j‖_q`` with q the dual norm (``l2`` for an ℓ2
    attack, ``l1`` for an ℓ∞ attack).
    """
    k = logits.argmax(dim=1)
    margins = logits.gather(1, k[:, None]) - logits  # n×K
    diffs = weight[k][:, None, :] - weight[None, :, :]  # n×K×d
    norms = torch.linalg.vector_norm(diffs, ord=2 if dual == "l2" else 1, dim=2)
    ratio = (margins / norms).scatter(1, k[:, None], float("inf"))
    return ratio.amin(dim=1)

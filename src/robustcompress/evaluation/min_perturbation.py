"""The smallest perturbation that misclassifies (nearly) every input (Sanyal et al., Table 3,
after Moosavi-Dezfooli et al. 2016).

``relative_norms(x, x_adv)``
    ρ = ‖x_adv − x‖₂ / ‖x‖₂ per example.
``minimum_budget(model, x, y, make_attack, low, high)``
    for a fixed-budget attack family (e.g. iterative FGSM, ``bim``, or iterative least
    likely, ``bim_ll``), the smallest ε in [low, high] whose adversarial inputs misclassify
    at least ``target`` (99 %) of the correctly classified inputs of the sample, found by
    bisection on ε (``iterations`` halvings; the misclassification rate is assumed to
    grow with ε, as it does for these attacks up to their randomness), with the mean ρ
    of the adversarial inputs at that ε. The paper tunes ε by hand to the same end.
``minimal_attack_rho(model, x, y, attack)``
    for a minimal-perturbation attack (DeepFool), the mean ρ over the correctly
    classified inputs it misclassifies, and the share it misclassifies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks.base import Attack
from robustcompress.attacks.ops import predict
from robustcompress.errors import ConfigError


def relative_norms(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """ρ per example: ‖x_adv − x‖₂ / ‖x‖₂."""
    return (x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    keep = predict(model, x) == y
    if not bool(keep.any()):
        raise ConfigError("no input of the sample is classified correctly: nothing to attack")
    return x[keep], y[keep]


@dataclass(frozen=True)
class MinimumBudget:
    """The smallest budget found: ``eps``, the misclassification ``rate`` there (of the
    ``n`` correctly classified inputs), the mean and median ``rho`` of its adversarial
    inputs, and the ``evaluations`` (attack runs) it took. ``eps`` is NaN when even
    ``high`` misses the target."""

    eps: float
    rate: float
    rho_mean: float
    rho_median: float
    n: int
    evaluations: int


def minimum_budget(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    make_attack: Callable[[float], Attack],
    low: float,
    high: float,
    *,
    target: float = 0.99,
    iterations: int = 10,
) -> MinimumBudget:
    """Bisection on ε for the smallest budget reaching ``target`` (module docstring)."""
    if not 0 < low < high:
        raise ConfigError(f"need 0 < low < high, got low = {low}, high = {high}")
    if not 0 < target <= 1:
        raise ConfigError(f"target must be in (0, 1], got {target}")
    was_training = model.training
    model.eval()
    try:
        x, y = _correct(model, x, y)
        evaluations = 0

        def attempt(eps: float) -> tuple[float, torch.Tensor]:
            nonlocal evaluations
            evaluations += 1
            x_adv = make_attack(eps)(model, x, y)
            return float((predict(model, x_adv) != y).float().mean()), x_adv

        rate, x_adv = attempt(high)
        if rate < target:
            return MinimumBudget(math.nan, rate, math.nan, math.nan, len(y), evaluations)
        best = (high, rate, x_adv)
        lo, hi = low, high
        for _ in range(iterations):
            mid = (lo + hi) / 2
            rate, x_adv = attempt(mid)
            if rate >= target:
                hi, best = mid, (mid, rate, x_adv)
            else:
                lo = mid
    finally:
        model.train(was_training)
    eps, rate, x_adv = best
    rho = relative_norms(x, x_adv)
    return MinimumBudget(eps, rate, float(rho.mean()), float(rho.median()), len(y), evaluations)


def minimal_attack_rho(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack
) -> tuple[float, float, int]:
    """``(mean ρ, misclassified share, n)`` of a minimal-perturbation ``attack`` over the
    ``n`` correctly classified inputs (ρ over those it misclassifies; NaN if none)."""
    was_training = model.training
    model.eval()
    try:
        x, y = _correct(model, x, y)
        x_adv = attack(model, x, y)
        fooled = predict(model, x_adv) != y
    finally:
        model.train(was_training)
    rho = relative_norms(x[fooled], x_adv[fooled])
    mean = float(rho.mean()) if len(rho) else math.nan
    return mean, float(fooled.float().mean()), len(y)


__all__ = ["MinimumBudget", "minimal_attack_rho", "minimum_budget", "relative_norms"]

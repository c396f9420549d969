"""Fast gradient sign method (FGSM), the one-step ℓ∞ attack of Goodfellow et al. 2015."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_bool
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import gradient_sign, loss_gradient


@register_attack
@dataclass(repr=True, kw_only=True)
class FGSM(FixedEpsilonAttack):
    """FGSM: ``x_adv = clip(x + ε·sign(∇_x J(x, y)))`` with ``J`` the cross-entropy of the logits.

    Goodfellow, Shlens & Szegedy, ICLR 2015, §4; docs/algorithms.md, FGSM. For a linear binary
    classifier ``sign(wᵀx)`` with labels ``y ∈ {−1, +1}`` this is the optimal ℓ∞ attack
    ``η = −y·ε·sign(w)`` of Langenberg et al. 2019 (proof of Theorem 1).

    The loss is summed over the batch, so each sample's step depends on that sample only.
    Pixels where the gradient is exactly zero are not moved (``sign(0) = 0``).

    Defaults: ``eps = 0.05`` on [0, 1] images, the budget of Langenberg et al. 2019 (§5).

    ``clip = True`` (default) keeps the result in the image box [0, 1]. ``clip=False``
    returns ``x + ε·sign(∇_x J)`` unclipped (pixels may leave [0, 1]), as code that does
    not clip computes it; the inputs must still lie in [0, 1]. Such an instance is no
    ``scaled_sign_step`` attack (that flag promises ``clip_box(x + ε·s)``), so evaluation
    runs it at every ε.
    """

    name = "fgsm"
    norm = "linf"
    paper = "Goodfellow et al. 2015, §4"
    independent_inputs = True
    single_step = True
    scaled_sign_step = True

    eps: float = 0.05
    clip: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.clip:  # x + ε·s is not clip_box(x + ε·s): no shortcut over ε
            object.__setattr__(self, "scaled_sign_step", False)

    def validate(self) -> None:
        super().validate()
        require_bool(self.name, "clip", self.clip)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        grad, _ = loss_gradient(model, x, y)
        # clip_box(x + ε·sign(g)), computed in the gradient's memory.
        x_adv = gradient_sign(grad).mul_(self.eps).add_(x)
        return x_adv.clamp_(0.0, 1.0) if self.clip else x_adv

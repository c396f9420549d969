"""R+FGSM: FGSM from a random sign step, Tramèr et al. 2018."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_bool, require_number
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import clip_box, loss_gradient
from robustcompress.errors import AttackError


@register_attack
@dataclass(repr=True, kw_only=True)
class RFGSM(FixedEpsilonAttack):
    """R+FGSM: a random sign step of size α, then FGSM with the remaining budget ε − α.

    ``x' = clip(x + α·sign(N(0, I)))``, ``x_adv = clip(x' + (ε − α)·sign(∇_{x'} J(x', y)))``
    with ``0 ≤ α < ε``, so ``‖x_adv − x‖∞ ≤ ε``. Tramèr et al., ICLR 2018 (R+FGSM);
    docs/algorithms.md, R+FGSM. The random step escapes the sharp curvature of the loss
    right at the data point that makes single-step attacks weak against FGSM-trained models.

    Defaults: ``eps = 0.05`` (Langenberg et al. 2019); ``alpha = None`` means ``ε/2``, the
    paper's ratio (ImageNet: ε = 16/256, α = 8/256). Single step, as in the paper; note
    that some libraries (e.g. torchattacks' ``RFGSM``) ship an *iterative* attack under
    this name, which is not comparable step for step.

    ``clip = True`` (default) clips both steps to [0, 1]; ``clip=False`` clips neither,
    so ``x_adv = x + α·sign(N(0, I)) + (ε − α)·sign(∇_{x'} J(x', y))`` may leave the box
    (still ``‖x_adv − x‖∞ ≤ ε``; the inputs must lie in [0, 1]).
    """

    name = "rfgsm"
    norm = "linf"
    paper = "Tramèr et al. 2018, R+FGSM"
    single_step = True
    randomized = True

    eps: float = 0.05
    alpha: float | None = None
    clip: bool = True

    def validate(self) -> None:
        super().validate()
        require_bool(self.name, "clip", self.clip)
        require_number(self.name, "alpha", self.alpha, allow_none=True)
        if self.alpha is not None and self.alpha >= self.eps and not self.alpha == self.eps == 0:
            raise AttackError(
                f"{self.name}: alpha must be smaller than eps (got alpha={self.alpha}, "
                f"eps={self.eps}); leave alpha=None for eps/2"
            )

    @property
    def random_step(self) -> float:
        """The random step α actually used (``ε/2`` when ``alpha`` is None)."""
        return self.eps / 2 if self.alpha is None else float(self.alpha)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        alpha = self.random_step
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        box = clip_box if self.clip else _unclipped
        x_start = box(x + alpha * noise.sign())
        grad, _ = loss_gradient(model, x_start, y)
        return box(x_start + (self.eps - alpha) * grad.sign())


def _unclipped(x: torch.Tensor) -> torch.Tensor:
    return x

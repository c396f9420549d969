"""Basic iterative method (BIM) and iterative least-likely class (ILLC), Kurakin et al. 2017."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_bool, require_int, require_number
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import loss_gradient


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count ``⌊min(255ε + 4, 1.25·255ε)⌋`` for ε on [0, 1] images."""
    level = 255.0 * eps
    # tolerance so that e.g. ε = 4/255 gives 5, not 4, despite 255·(4/255) = 3.9999…
    return math.floor(min(level + 4.0, 1.25 * level) + 1e-9)


def least_likely_class(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The least-likely class ``y_LL = argmin_j f_j(x)`` (= argmin of the softmax)."""
    with torch.no_grad():
        return model(x).argmin(dim=1)


def clip_to_neighbourhood(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float, clip: bool = True
) -> torch.Tensor:
    """``Clip_{X,ε}``: elementwise into ``[max(0, x − ε), min(1, x + ε)]`` (Kurakin §2.2);
    into ``[x − ε, x + ε]`` with ``clip=False``."""
    if not clip:
        return torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    return torch.minimum(torch.maximum(x_adv, (x - eps).clamp_min(0)), (x + eps).clamp_max(1))


@register_attack
@dataclass(repr=True, kw_only=True)
class BIM(FixedEpsilonAttack):
    """BIM: ``X_{N+1} = Clip_{X,ε}{X_N + α·sign(∇_X J(X_N, y_true))}``, ``X_0 = X``.

    Kurakin, Goodfellow & Bengio, ICLR 2017 workshop ("Adversarial examples in the
    physical world"), §2.2; docs/algorithms.md, BIM. Defaults are the paper's:
    ``alpha = 1/255`` (one intensity level) and, with ``steps = None``,
    ``⌊min(255ε + 4, 1.25·255ε)⌋`` iterations (15 for ε = 0.05), enough to reach the edge
    of the ε-ball while keeping the cost low. Foolbox's ``LinfBasicIterativeAttack`` uses
    another schedule (10 steps of 0.2ε).

    ``clip = True`` (default) is Kurakin's ``Clip_{X,ε}``, the ε-neighbourhood within
    [0, 1]; ``clip=False`` clips to the ε-neighbourhood only, so the result may leave the
    box (the inputs must lie in it).
    """

    name = "bim"
    norm = "linf"
    paper = "Kurakin et al. 2017, §2.2"
    independent_inputs = True
    iterative = True

    eps: float = 0.05
    alpha: float = 1.0 / 255.0
    steps: int | None = None
    clip: bool = True

    #: ILLC descends the loss of the least-likely class instead of ascending the true one.
    least_likely = False

    def validate(self) -> None:
        super().validate()
        require_number(self.name, "alpha", self.alpha, strict=True)
        require_int(self.name, "steps", self.steps, minimum=1, allow_none=True)
        require_bool(self.name, "clip", self.clip)

    @property
    def iterations(self) -> int:
        """The number of iterations actually run (Kurakin's schedule when ``steps`` is None)."""
        return kurakin_steps(self.eps) if self.steps is None else self.steps

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        target, direction = (least_likely_class(model, x), -1.0) if self.least_likely else (y, 1.0)
        x_adv = x.clone()
        for _ in range(self.iterations):
            grad, _ = loss_gradient(model, x_adv, target)
            step = x_adv + direction * self.alpha * grad.sign()
            x_adv = clip_to_neighbourhood(step, x, self.eps, self.clip)
        return x_adv


@register_attack
@dataclass(repr=True, kw_only=True)
class BIMLeastLikely(BIM):
    """ILLC: ``X_{N+1} = Clip_{X,ε}{X_N − α·sign(∇_X J(X_N, y_LL))}``, ``y_LL = argmin_y p(y|X)``.

    Kurakin et al. 2017, §2.3; docs/algorithms.md, BIM. The least-likely class ``y_LL`` is
    computed once, on the clean input, and ``y`` is not used. A targeted attack: success can
    be reported both as misclassification and as the hit rate on ``y_LL``
    (:func:`least_likely_class`). Defaults as :class:`BIM`.
    """

    name = "bim_ll"
    paper = "Kurakin et al. 2017, §2.3"
    least_likely = True
    targeted = True

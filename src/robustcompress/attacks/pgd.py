"""Projected gradient descent (PGD) of Madry et al. 2018, in ℓ∞ (``pgd``) and ℓ2 (``pgd_l2``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from robustcompress.attacks._utils import (
    require_bool,
    require_choice,
    require_int,
    require_number,
)
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import (
    LOSSES,
    ThreatModel,
    gradient_sign,
    loss_gradient,
    per_sample,
    per_sample_loss,
)
from robustcompress.errors import AttackError


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str,
    random_start: bool,
    restarts: int = 1,
    loss: str = "ce",
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """PGD with restarts; per sample the strongest run is kept.

    One run: ``x⁰ = clip(x + U(B_ε))`` (random start) or ``x⁰ = x``, then
    ``x^{t+1} = clip(x + Π_ε(x^t + α·u_p(∇J(x^t, y)) − x))`` for ``t < steps``, where
    ``u_p`` is the dual-norm maximiser (``sign`` for ℓ∞, ``g/‖g‖₂`` for ℓ2) and ``Π_ε`` the
    projection onto the ε-ball (Madry et al. 2018, §2.1; docs/algorithms.md, PGD).

    ``clip=False`` drops the box from the start and from every projection:
    ``x^{t+1} = x + Π_ε(x^t + α·u_p(∇J(x^t, y)) − x)``, which stays in the ε-ball but may
    leave [0, 1].

    Keeping the strongest of several runs, per sample: a misclassified result
    (``argmax f ≠ y``) is kept as soon as one is found (first success wins); until then
    the result with the highest loss is kept.
    """
    best = x.clone()
    best_success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype)
    threat = ThreatModel(norm, eps)
    for _ in range(restarts):
        x_adv = threat.random_start(x, generator, clip) if random_start else x.clone()
        for _ in range(steps):
            grad, _ = loss_gradient(model, x_adv, y, loss)
            if threat.norm == "linf":
                # The same arithmetic as below, in place: on small models the fresh
                # image-batch tensors a step would allocate cost as much as the gradient.
                threat.project_(x_adv.add_(gradient_sign(grad), alpha=alpha), x, clip)
                continue
            x_adv = threat.project(x_adv + alpha * threat.steepest_ascent(grad), x, clip)
        if restarts == 1:
            return x_adv
        with torch.no_grad():
            logits = model(x_adv)
        success = logits.argmax(dim=1) != y
        value = per_sample_loss(logits, y, loss)
        take = ~best_success & (success | (value > best_loss))
        best = torch.where(per_sample(take, x), x_adv, best)
        best_loss = torch.where(take, value, best_loss)
        best_success = best_success | success
    return best


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfPGD(FixedEpsilonAttack):
    """ℓ∞ PGD: ``x^{t+1} = Π(x^t + α·sign(∇_x J(x^t, y)))``, Π = clip to ``[x−ε, x+ε] ∩ [0,1]``.

    Madry et al., ICLR 2018; docs/algorithms.md, PGD. Defaults are those of the core paper,
    Langenberg et al. 2019 §5: ``eps = 0.05``, ``steps = 20`` (T), ``alpha = 0.005`` (so the
    path can reach the corner of the ε-ball twice over).

    ``random_start = False`` by default: Langenberg et al. do not mention one, it makes
    the attack deterministic, and peer libraries are compared without it. Set
    ``random_start=True`` (uniform start in the ε-ball, clipped to the box, as in Madry's
    paper) and ``restarts > 1`` for the evaluation-strength version; per sample, the first
    misclassifying run is kept, otherwise the highest-loss one. ``loss='margin'``
    ascends the C&W margin ``max_{j≠y} z_j − z_y`` instead of the cross-entropy (a check
    against gradient masking); ``loss='dlr'`` the scale-free DLR loss (:func:`ops.dlr`).
    ``clip = True`` (default) keeps every iterate in [0, 1]; ``clip=False`` projects onto
    the ε-ball only, so the result may leave the box (the inputs must still lie in it).
    Also registered as ``linf_pgd``.
    """

    name = "pgd"
    norm = "linf"
    paper = "Madry et al. 2018, §2.1"
    aliases: ClassVar[tuple[str, ...]] = ("linf_pgd",)
    independent_inputs = True
    iterative = True
    randomized = True  # with random_start=True (off by default)

    eps: float = 0.05
    alpha: float = 0.005
    steps: int = 20
    random_start: bool = False
    restarts: int = 1
    loss: str = "ce"
    clip: bool = True

    def validate(self) -> None:
        super().validate()
        require_number(self.name, "alpha", self.alpha, strict=True)
        require_int(self.name, "steps", self.steps, minimum=1)
        require_bool(self.name, "random_start", self.random_start)
        require_int(self.name, "restarts", self.restarts, minimum=1)
        require_choice(self.name, "loss", self.loss, LOSSES)
        require_bool(self.name, "clip", self.clip)
        if self.restarts > 1 and not self.random_start:
            raise AttackError(
                f"{self.name}: restarts={self.restarts} repeats the same deterministic run; "
                "set random_start=True or restarts=1"
            )

    def chunkable(self) -> bool:
        """ℓ∞ steps are signs and, without a random start, each input's run depends on
        that input only; a random start would hand each input other draws when chunked."""
        return self.norm == "linf" and not self.random_start

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return pgd(
            model,
            x,
            y,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            norm=self.norm or "linf",
            random_start=self.random_start,
            restarts=self.restarts,
            loss=self.loss,
            generator=generator,
            clip=self.clip,
        )


@register_attack
@dataclass(repr=True, kw_only=True)
class L2PGD(LinfPGD):
    """ℓ2 PGD: step ``α·g/‖g‖₂``, projection ``δ ← δ·min(1, ε/‖δ‖₂)``, then clip to [0,1]
    (unless ``clip=False``).

    Madry et al., ICLR 2018; docs/algorithms.md, PGD. Defaults ``eps = 1.0`` (an ℓ2 radius
    comparable to ε∞ ≈ 0.05 spread over the ~400 active pixels of an MNIST digit),
    ``steps = 20``, ``alpha = 0.1`` (= 2ε/T, so the budget can be crossed twice, like the ℓ∞
    defaults). The random start is uniform in the ℓ2 ball. Otherwise as :class:`LinfPGD`.
    """

    name = "pgd_l2"
    norm = "l2"
    paper = "Madry et al. 2018, §2.1"
    aliases = ()

    eps: float = 1.0
    alpha: float = 0.1

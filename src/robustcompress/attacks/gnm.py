"""GNM, the gradient-based norm-constrained method of Balda, Behboodi & Mathar 2018."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_bool, require_choice, require_int
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import (
    DUAL_NORM,
    ThreatModel,
    dual_maximizer,
    flat_norm,
    logit_gradients,
    loss_gradient,
    predict,
)

GNM_NORMS = ("linf", "l2")
GNM_MODES = ("margin", "loss")


def gnm_target_scores(
    logits: torch.Tensor, grads: torch.Tensor, k: torch.Tensor, step: float, norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class linearised margins after one step, and the gradient differences.

    For every class j, ``m_j = f_k − f_j`` and ``g_j = ∇f_k − ∇f_j``; the smallest
    margin a step of size ``step`` in ``norm`` can reach is ``m_j − step·‖g_j‖_q`` with q
    the dual exponent (Balda et al. 2018, Algorithm 1; docs/algorithms.md, GNM). Returns the scores
    ``N×K`` (``+inf`` at ``j = k``) and ``g`` of shape ``N×K×…``.
    """
    index = k[:, None]
    margins = logits.gather(1, index) - logits
    grad_k = grads[torch.arange(grads.shape[0], device=grads.device), k]
    g = grad_k[:, None] - grads
    q_norms = flat_norm(g.flatten(0, 1), DUAL_NORM[norm]).view(margins.shape)
    scores = (margins - step * q_norms).scatter(1, index, float("inf"))
    return scores, g


def gnm_direction(
    model: nn.Module, x: torch.Tensor, k: torch.Tensor, step: float, norm: str
) -> torch.Tensor:
    """``u_p(g_l)`` for the GNM target ``l`` at ``x`` (the step is ``−step·u_p(g_l)``)."""
    logits, grads = logit_gradients(model, x)
    scores, g = gnm_target_scores(logits, grads, k, step, norm)
    target = scores.argmin(dim=1)
    g_l = g[torch.arange(x.shape[0], device=x.device), target]
    return dual_maximizer(g_l, norm)


@register_attack
@dataclass(repr=True, kw_only=True)
class GNM(FixedEpsilonAttack):
    """GNM: T steps of ε/T, each toward the class whose linearised margin falls lowest.

    Balda, Behboodi & Mathar 2018 (arXiv 1803.03607, Algorithm 1); docs/algorithms.md, GNM. With the
    clean decision ``k = k̂(x)`` held fixed, at every iterate ``x_t`` and for every
    ``j ≠ k``: ``m_j = f_k(x_t) − f_j(x_t)``, ``g_j = ∇f_k(x_t) − ∇f_j(x_t)``, target
    ``l = argmin_j (m_j − (ε/T)‖g_j‖_q)``, step ``x_{t+1} = x_t − (ε/T)·u_p(g_l)`` with the
    dual-norm maximiser ``u_p`` (ℓ∞: ``sign``; ℓ2: ``g/‖g‖₂``). The target is re-chosen
    every step; all T steps always run. The triangle inequality gives ``‖x_T − x‖_p ≤ ε``
    without a projection.

    ``mode='loss'`` is the loss-linearised variant of Balda et al.'s framework (TSP 2019):
    ``x_{t+1} = x_t + (ε/T)·u_p(∇_x J(x_t, k))``, i.e. FGM iterated with ε/T steps.

    Departures from the reference code (``ebalda/adversarialconvex``, ``main.py``), which
    attacks only correctly classified points with k = the true label: here k is the clean
    *prediction* (the same on those points; ``y`` is not used), and ``clip=True`` (default)
    clips every iterate to [0, 1] so that the attack respects the image box. Clipping is a
    coordinate-wise projection onto a box containing x, so it can only shrink ``|x_t − x|``
    and the budget still holds. ``clip=False`` reproduces the reference exactly.

    Defaults: ``eps = 0.05`` (ℓ∞), ``steps = 5`` (T), as in Langenberg et al. 2019 §5.
    Cost per step: one forward pass and K backward passes (one per logit), batched.
    """

    name = "gnm"
    paper = "Balda et al. 2018, Algorithm 1"
    independent_inputs = True
    iterative = True

    eps: float = 0.05
    steps: int = 5
    norm: str = "linf"  # type: ignore[misc]  # a setting here, a class constant elsewhere
    mode: str = "margin"
    clip: bool = True

    def chunkable(self) -> bool:
        """ℓ∞ steps are signs, so chunking leaves them bit-identical (ℓ2 steps may round)."""
        return self.norm == "linf"

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "steps", self.steps, minimum=1)
        require_choice(self.name, "norm", self.norm, GNM_NORMS)
        require_choice(self.name, "mode", self.mode, GNM_MODES)
        require_bool(self.name, "clip", self.clip)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        threat = ThreatModel(self.norm, self.eps)
        step = self.eps / self.steps
        k = predict(model, x)
        x_adv = x.clone()
        for _ in range(self.steps):
            if self.mode == "loss":
                grad, _ = loss_gradient(model, x_adv, k)
                x_adv = x_adv + step * threat.steepest_ascent(grad)
            else:
                x_adv = x_adv - step * gnm_direction(model, x_adv, k, step, self.norm)
            if self.clip:
                x_adv = threat.clip_box(x_adv)
        return x_adv

"""DeepFool (Moosavi-Dezfooli et al. 2016): the minimal perturbation by iterated linearisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_int, require_number
from robustcompress.attacks.base import MinimalPerturbationAttack, register_attack
from robustcompress.attacks.ops import (
    DUAL_NORM,
    ThreatModel,
    clip_box,
    flat_norm,
    logit_gradients,
    per_sample,
)

#: Added to every linearised distance so a step crosses the boundary rather than landing
#: on it (LTS4/DeepFool and Foolbox use the same 1e-4).
DISTANCE_SLACK = 1e-4
#: Guard for the gradient-difference norm in denominators (Foolbox: 1e-8).
NORM_GUARD = 1e-8


def deepfool_step(logits: torch.Tensor, grads: torch.Tensor, norm: str) -> torch.Tensor:
    """One DeepFool step for a batch, towards the nearest linearised boundary.

    ``logits`` are ``N×C`` and ``grads`` ``N×C×…`` for the candidate classes, column 0
    being the original class c. For each candidate k: ``w_k = ∇f_k − ∇f_c``,
    ``f'_k = f_k − f_c``; the target is ``l = argmin_k |f'_k|/‖w_k‖_q`` and the step is
    ``r = (|f'_l|/‖w_l‖₂²)·w_l`` (ℓ2) or ``r = (|f'_l|/‖w_l‖₁)·sign(w_l)`` (ℓ∞)
    (Moosavi-Dezfooli et al. 2016, Algorithm 2; docs/algorithms.md, DeepFool).
    """
    w = grads[:, 1:] - grads[:, :1]
    f = logits[:, 1:] - logits[:, :1]
    w_norm = flat_norm(w.flatten(0, 1), DUAL_NORM[norm]).view(f.shape) + NORM_GUARD
    distance = (f.abs() + DISTANCE_SLACK) / w_norm
    target = distance.argmin(dim=1)
    rows = torch.arange(w.shape[0], device=w.device)
    w_l, d_l = w[rows, target], distance[rows, target]
    if norm == "l2":
        direction = w_l / per_sample(flat_norm(w_l, "l2") + NORM_GUARD, w_l)
    else:
        direction = w_l.sign()
    return per_sample(d_l, w_l) * direction


@register_attack
@dataclass(repr=True, kw_only=True)
class L2DeepFool(MinimalPerturbationAttack):
    """ℓ2 DeepFool: step to the nearest linearised class boundary until the decision flips.

    Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016, Algorithm 2; docs/algorithms.md,
    DeepFool. Starting from the clean decision ``c = k̂(x)`` (``y`` is not used), each
    iteration linearises the logits of the candidate classes, steps to the nearest boundary
    (:func:`deepfool_step`, plus 1e-4 slack), accumulates ``r_tot`` and sets
    ``x_{i+1} = clip(x + (1 + η)·r_tot)``.

    Choices: the overshoot ``η`` multiplies the *total* perturbation (as in the paper);
    every iterate is clipped to [0, 1] (as Foolbox; this can stall a sample whose
    direction points out of the box, which is why ``max_iter`` bounds the loop); the
    whole batch runs at once and a sample is frozen as soon as it is misclassified.

    Defaults are the paper's: ``overshoot = 0.02``, ``max_iter = 50``, candidates = the
    top ``num_classes = 10`` classes by clean logits. ``eps`` (default None) optionally
    projects the final perturbation onto the ε-ball, turning DeepFool into a fixed-budget
    attack; samples needing more than ε then keep a too-short perturbation.
    """

    name = "deepfool"
    norm = "l2"
    paper = "Moosavi-Dezfooli et al. 2016, Algorithm 2"
    iterative = True

    overshoot: float = 0.02
    max_iter: int = 50
    num_classes: int = 10
    eps: float | None = None

    def validate(self) -> None:
        super().validate()
        require_number(self.name, "overshoot", self.overshoot)
        require_int(self.name, "max_iter", self.max_iter, minimum=1)
        require_int(self.name, "num_classes", self.num_classes, minimum=2)
        require_number(self.name, "eps", self.eps, allow_none=True)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        norm = self.norm or "l2"
        with torch.no_grad():
            clean_logits = model(x)
        candidates = clean_logits.topk(min(self.num_classes, clean_logits.shape[1]), dim=1)
        classes = candidates.indices  # column 0 is the clean decision c
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        active = torch.arange(x.shape[0], device=x.device)
        for iteration in range(self.max_iter + 1):
            if active.numel() == 0:
                break
            logits, grads = logit_gradients(model, x_adv[active], classes[active])
            still = logits.argmax(dim=1) == classes[active, 0]
            active, grads = active[still], grads[still]
            if iteration == self.max_iter or active.numel() == 0:
                break
            picked = logits[still].gather(1, classes[active])
            r_tot[active] += deepfool_step(picked, grads, norm)
            x_adv[active] = clip_box(x[active] + (1 + self.overshoot) * r_tot[active])
        if self.eps is not None:
            x_adv = ThreatModel(norm, self.eps).project(x_adv, x)
        return x_adv


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfDeepFool(L2DeepFool):
    """ℓ∞ DeepFool: target ``argmin_k |f'_k|/‖w_k‖₁``, step ``(|f'_l|/‖w_l‖₁)·sign(w_l)``.

    Moosavi-Dezfooli et al. 2016, the ℓp extension with p = ∞; docs/algorithms.md, DeepFool.
    Everything else, defaults included, as :class:`L2DeepFool`.
    """

    name = "deepfool_linf"
    norm = "linf"

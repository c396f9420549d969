"""Auto-PGD (Croce & Hein 2020): APGD with the cross-entropy or DLR loss, and APGD-T.

APGD is PGD without a step size to tune: it starts with the step ``η = 2ε``, adds
momentum, and halves the step of an input at checkpoints where its loss stopped
rising, restarting that input from the best point found so far. The schedule
(Croce & Hein 2020, §3, Algorithm 1):

* checkpoints ``w_j = ⌈p_j·N⌉`` for ``N`` iterations, ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`` (:func:`checkpoints`);
* one step: ``z = P(x_k + η·u(∇f(x_k)))``, then
  ``x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))`` with ``α = 0.75``
  (``α = 1`` on the first step), ``u`` the steepest-ascent direction of the norm
  (sign for ℓ∞, ``g/‖g‖₂`` for ℓ2) and ``P`` the projection onto the ε-ball and the box;
* at checkpoint ``w_j`` an input's step is halved and it restarts from its best point
  when (1) its loss rose in fewer than ``ρ·(w_j − w_{j−1})`` of the steps since the
  last checkpoint (``ρ = 0.75``), or (2) its step was not halved at the last
  checkpoint and its best loss has not risen since.

Losses: cross-entropy or DLR (:func:`~robustcompress.attacks.ops.dlr`) for the
untargeted attack; APGD-T ascends the targeted DLR loss
(:func:`~robustcompress.attacks.ops.targeted_dlr`) towards each of the
``target_classes`` classes with the highest clean logits in turn, attacking only the
inputs no earlier target has broken (AutoAttack's APGD-T).

What an attack returns, per input: a misclassified iterate if one was found (the
last one found), otherwise the first run's iterate of the highest loss; inputs the model
already misclassifies are returned unchanged (they are adversarial already), as in
AutoAttack. A restart (and each target) runs only on the inputs still classified
correctly, from a fresh random start. The random starts of a run are drawn for the whole
batch before it is split into chunks, so ``chunk_size`` changes only the speed (and
rounding, ≈ 1e-7 in float32, as for C&W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.attacks._utils import (
    require_bool,
    require_choice,
    require_int,
    require_number,
)
from robustcompress.attacks.base import FixedEpsilonAttack, auto_chunk_size, register_attack
from robustcompress.attacks.ops import (
    ThreatModel,
    per_sample,
    per_sample_loss,
    ranked_targets,
    targeted_dlr,
)
from robustcompress.errors import AttackError

#: Losses of the untargeted APGD.
APGD_LOSSES = ("ce", "dlr")

#: Losses of APGD-T: the targeted DLR loss, or the cross-entropy towards the target.
APGD_TARGETED_LOSSES = ("dlr", "ce")


def apgd_loss(
    logits: torch.Tensor, y: torch.Tensor, loss: str, target: torch.Tensor | None = None
) -> torch.Tensor:
    """APGD's per-sample loss, to ascend: ``ce`` or ``dlr`` untargeted; with a
    ``target``, the targeted DLR loss or ``−CE(logits, target)``."""
    if target is None:
        return per_sample_loss(logits, y, loss)
    if loss == "dlr":
        return targeted_dlr(logits, y, target)
    return -F.cross_entropy(logits, target, reduction="none")


def checkpoints(steps: int) -> list[int]:
    """The iterations ``w_j = ⌈p_j·N⌉`` (``0 < w_j < N``) at which APGD may halve its step.

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``
    (Croce & Hein 2020, §3.2), computed in exact fractions so ``⌈·⌉`` is not fooled by
    rounding (``0.41·100`` is 41, not 42). For ``N = 100``: 22, 41, 57, 70, 80, 87, 93, 99.
    """
    marks: list[int] = []
    previous, p = Fraction(0), Fraction(22, 100)
    while p < 1:
        mark = math.ceil(p * steps)
        if 0 < mark < steps and (not marks or mark > marks[-1]):
            marks.append(mark)
        previous, p = p, p + max(p - previous - Fraction(3, 100), Fraction(6, 100))
    return marks


def apgd_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    *,
    threat: ThreatModel,
    steps: int,
    loss: str = "ce",
    target: torch.Tensor | None = None,
    rho: float = 0.75,
    momentum: float = 0.75,
    clip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from ``start`` (a point of the feasible set) on every input.

    Returns ``(x_adv, fooled)``: per input, the last misclassified iterate found, else the
    one of the highest loss (:func:`apgd_loss`), and whether one was misclassified. Each
    input's run depends on its own start, label and target only (per-input step sizes).
    """
    n = x.shape[0]

    def value_and_grad(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        point = point.detach().requires_grad_(True)
        logits = model(point)
        values = apgd_loss(logits, y, loss, target)
        (grad,) = torch.autograd.grad(values.sum(), point)
        return values.detach(), grad, logits.detach().argmax(dim=1) != y

    eta = per_sample(torch.full((n,), 2.0 * threat.eps, device=x.device, dtype=x.dtype), x)
    x_cur = start
    f_cur, g_cur, fooled = value_and_grad(x_cur)
    best_adv = torch.where(per_sample(fooled, x), x_cur, x)
    x_max, f_max, g_max = x_cur.clone(), f_cur.clone(), g_cur.clone()
    x_prev = x_cur
    rises = torch.zeros(n, device=x.device, dtype=torch.long)
    halved_last = torch.zeros(n, dtype=torch.bool, device=x.device)
    f_max_last = f_max.clone()
    marks, last_mark = set(checkpoints(steps)), 0
    for k in range(steps):
        a = 1.0 if k == 0 else momentum
        z = threat.project(x_cur + eta * threat.steepest_ascent(g_cur), x, clip)
        moved = x_cur + a * (z - x_cur) + (1.0 - a) * (x_cur - x_prev)
        x_new = threat.project(moved, x, clip)
        f_new, g_new, now = value_and_grad(x_new)
        best_adv = torch.where(per_sample(now, x), x_new, best_adv)
        fooled |= now
        rises += (f_new > f_cur).long()
        up = f_new > f_max
        x_max = torch.where(per_sample(up, x), x_new, x_max)
        g_max = torch.where(per_sample(up, x), g_new, g_max)
        f_max = torch.where(up, f_new, f_max)
        x_prev, x_cur, f_cur, g_cur = x_cur, x_new, f_new, g_new
        if k + 1 in marks:
            stalled = rises < rho * (k + 1 - last_mark)
            stuck = ~halved_last & (f_max <= f_max_last)
            halve = stalled | stuck
            wide = per_sample(halve, x)
            eta = torch.where(wide, eta / 2, eta)
            x_cur = torch.where(wide, x_max, x_cur)
            g_cur = torch.where(wide, g_max, g_cur)
            f_cur = torch.where(halve, f_max, f_cur)
            halved_last, f_max_last = halve, f_max.clone()
            rises.zero_()
            last_mark = k + 1
    return torch.where(per_sample(fooled, x), best_adv, x_max), fooled


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfAPGD(FixedEpsilonAttack):
    """ℓ∞ Auto-PGD (Croce & Hein 2020, Algorithm 1), the first attack of AutoAttack.

    Defaults are AutoAttack's: ``steps = 100``, one run (``restarts = 1``) from a random
    start, cross-entropy loss (``loss='dlr'`` for the scale-free DLR loss), ``ρ = 0.75``,
    momentum ``α = 0.75``; ``eps`` the project's default 0.05. ``restarts > 1`` reruns the
    inputs still correctly classified from new random starts. ``clip=False`` drops the
    image box (the output stays in the ε-ball but may leave [0, 1]). See the module
    docstring for the step-size schedule.
    """

    name = "apgd"
    norm = "linf"
    paper = "Croce & Hein 2020, Algorithm 1"
    aliases: ClassVar[tuple[str, ...]] = ("apgd_ce",)
    iterative = True
    randomized = True

    eps: float = 0.05
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    rho: float = 0.75
    momentum: float = 0.75
    clip: bool = True

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "steps", self.steps, minimum=1)
        require_int(self.name, "restarts", self.restarts, minimum=1)
        require_choice(self.name, "loss", self.loss, self._losses())
        require_number(self.name, "rho", self.rho)
        require_number(self.name, "momentum", self.momentum, strict=True)
        if self.rho > 1 or self.momentum > 1:
            raise AttackError(
                f"{self.name}: rho and momentum must lie in [0, 1] and (0, 1], got "
                f"rho={self.rho!r}, momentum={self.momentum!r}"
            )
        require_bool(self.name, "clip", self.clip)

    def _losses(self) -> tuple[str, ...]:
        return APGD_LOSSES

    def _targets(self, logits: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        """The target of each input per stage: one untargeted stage here."""
        return [None]

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        if self.eps == 0:
            return x.clone()
        with torch.no_grad():
            logits = model(x)
        out = x.clone()
        fooled = logits.argmax(dim=1) != y  # already adversarial: returned unchanged
        tried = fooled.clone()
        for target in self._targets(logits, y):
            for _ in range(self.restarts):
                rows = (~fooled).nonzero().squeeze(1)
                if not rows.numel():
                    return out
                aim = None if target is None else target[rows]
                x_adv, now = self._attack_rows(model, x[rows], y[rows], aim, generator)
                keep = now | ~tried[rows]  # a first attempt's best point, or a success
                out[rows[keep]] = x_adv[keep]
                tried[rows] = True
                fooled[rows[now]] = True
        return out

    def _attack_rows(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on every input of ``x`` from random starts drawn for the whole batch,
        then in chunks (:meth:`_chunk`): only the speed depends on the chunk size."""
        threat = ThreatModel(self.norm or "linf", self.eps)
        start = threat.random_start(x, generator, self.clip)
        size = self._chunk(model, x)
        parts = [
            apgd_run(
                model,
                x[i : i + size],
                y[i : i + size],
                start[i : i + size],
                threat=threat,
                steps=self.steps,
                loss=self.loss,
                target=None if target is None else target[i : i + size],
                rho=self.rho,
                momentum=self.momentum,
                clip=self.clip,
            )
            for i in range(0, x.shape[0], size)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _chunk(self, model: nn.Module, x: torch.Tensor) -> int:
        """Inputs per chunk: ``chunk_size`` (``'auto'``: :func:`auto_chunk_size`). The base
        class does not chunk APGD (its random starts would then depend on the chunks);
        the starts are drawn first, and each input's run depends on its own start only."""
        if self.chunk_size is None or not x.shape[0]:
            return max(x.shape[0], 1)
        if self.chunk_size == "auto":
            return auto_chunk_size(model, x)
        return int(self.chunk_size)


@register_attack
@dataclass(repr=True, kw_only=True)
class L2APGD(LinfAPGD):
    """ℓ2 Auto-PGD: the step is ``η·g/‖g‖₂`` and the projection scales ``δ`` back onto the
    ℓ2 ball (then the box). Default ``eps = 1.0`` as :class:`~robustcompress.attacks.L2PGD`;
    otherwise as :class:`LinfAPGD`."""

    name = "apgd_l2"
    norm = "l2"
    aliases: ClassVar[tuple[str, ...]] = ()

    eps: float = 1.0


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfAPGDTargeted(LinfAPGD):
    """ℓ∞ APGD-T: APGD on the targeted DLR loss, towards each of the ``target_classes``
    classes with the highest clean logits (other than the label) in turn, each on the
    inputs no earlier target has broken (AutoAttack's second attack).

    Defaults are AutoAttack's standard version: 9 target classes (every other class of
    a 10-class model; fewer when the model has fewer classes), ``steps = 100``, one run
    per target. ``loss='ce'`` ascends ``−CE(logits, target)`` instead. Success means any
    wrong class, as in AutoAttack's robust accuracy, not only the target.
    """

    name = "apgd_t"
    aliases: ClassVar[tuple[str, ...]] = ()
    targeted = True

    loss: str = "dlr"
    target_classes: int = 9

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "target_classes", self.target_classes, minimum=1)

    def _losses(self) -> tuple[str, ...]:
        return APGD_TARGETED_LOSSES

    def _targets(self, logits: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        return list(ranked_targets(logits, y, self.target_classes))


@register_attack
@dataclass(repr=True, kw_only=True)
class L2APGDTargeted(LinfAPGDTargeted):
    """ℓ2 APGD-T: as :class:`LinfAPGDTargeted` with the ℓ2 step and projection of
    :class:`L2APGD` (default ``eps = 1.0``)."""

    name = "apgd_t_l2"
    norm = "l2"

    eps: float = 1.0

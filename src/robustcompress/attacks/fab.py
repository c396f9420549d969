"""FAB, the Fast Adaptive Boundary attack (Croce & Hein 2020, ICML), ℓ∞ and ℓ2.

FAB looks for the *smallest* perturbation that changes the decision. At each step it
linearises the classifier at the current point ``x_k``, picks the class ``s`` whose
linearised boundary is nearest (or a fixed target: FAB-T), and projects two points onto
that boundary hyperplane intersected with the image box (:func:`box_hyperplane_step`):
the current point (``δ_k``) and the original input (``δ_0``). The next point biases
the step toward the original input, so the iterates stay close to it:

    α = min(‖δ_k‖ / (‖δ_k‖ + ‖δ_0‖), α_max)
    x_{k+1} = clip((1 − α)(x_k + η·δ_k) + α(x + η·δ_0))

with the overshoot ``η = 1.05`` and ``α_max = 0.1``. Whenever ``x_{k+1}`` is
misclassified it is remembered if it is the closest adversarial so far, and the search
steps back toward the input: ``x_{k+1} ← x + β(x_{k+1} − x)`` with ``β = 0.9``
(Croce & Hein 2020, Algorithm 1 and §3; defaults as in AutoAttack).

The untargeted attack needs every logit's gradient (one backward pass per class);
FAB-T, AutoAttack's version, aims at one class at a time (one backward pass), going
through the classes with the highest clean logits in turn.

With ``eps`` set, FAB serves as a fixed-budget attack (as in AutoAttack): targets and
restarts run only on inputs with no adversarial example within ``eps`` yet, restarts
start at a random point at distance ``min(best, eps)/2`` (the first run starts at the
input itself), and the result is projected onto the ε-ball (as DeepFool's ``eps``),
so an input is counted broken only by a perturbation within the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from robustcompress.attacks._utils import require_int, require_number
from robustcompress.attacks.base import MinimalPerturbationAttack, register_attack
from robustcompress.attacks.ops import (
    DUAL_NORM,
    TINY,
    ThreatModel,
    clip_box,
    flat_norm,
    logit_gradients,
    per_sample,
    predict,
    random_in_ball,
    ranked_targets,
)
from robustcompress.errors import AttackError

#: Floor of the step norms in α's ratio (AutoAttack's 1e-8), so two zero steps give α = 0.
_STEP_FLOOR = 1e-8


def box_hyperplane_step(
    t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: str
) -> torch.Tensor:
    """The smallest step ``δ`` (in ``norm``: ℓ∞ or ℓ2) onto the hyperplane
    ``⟨w, t + δ⟩ = b`` that keeps ``t + δ`` in the box ``[0, 1]^d``, per row.

    ``t`` and ``w`` are ``N×d``, ``b`` has ``N`` entries. Write ``c = |⟨w, t⟩ − b|``:
    the step must move ``⟨w, ·⟩`` by ``c`` toward ``b``. Each coordinate moves the
    right way (``−sign(w_i)`` after orienting ``w``) by ``min(λ·s_i, r_i)``: ``r_i`` is
    its room to the box edge, ``s_i = 1`` for ℓ∞ (every coordinate moves by the same
    amount until it hits the box) and ``s_i = |w_i|`` for ℓ2 (the KKT conditions of
    ``min ‖δ‖₂``: ``δ = clip(−λw)``). The change ``Σ_i |w_i|·min(λ·s_i, r_i)`` is
    piecewise linear and increasing in ``λ``, with a knot where each coordinate
    saturates (``λ = r_i/s_i``); sorting the knots finds the segment where it reaches
    ``c`` and ``λ`` there in closed form. If even the box corner does not reach the
    hyperplane, the step to that corner is returned (the farthest the box allows).
    Coordinates with ``w_i = 0`` do not move.
    """
    excess = (w * t).sum(dim=1) - b
    orient = torch.where(excess >= 0, 1.0, -1.0).to(w.dtype)
    w = w * orient[:, None]
    need = excess * orient  # ≥ 0: how much ⟨w, ·⟩ has to go down
    room = torch.where(w > 0, t, 1.0 - t)  # lowering moves w > 0 down, w < 0 up
    weight = w.abs()
    speed = torch.ones_like(weight) if norm == "linf" else weight
    knots = torch.where(speed > 0, room / speed.clamp_min(torch.finfo(w.dtype).tiny), torch.inf)
    knots, order = knots.sort(dim=1)
    weight_s, speed_s, room_s = (v.gather(1, order) for v in (weight, speed, room))
    saturated = (weight_s * room_s).cumsum(dim=1)  # change from coordinates up to knot k
    total = (weight * speed).sum(dim=1, keepdim=True)
    slope = total - (weight_s * speed_s).cumsum(dim=1)  # dchange/dλ beyond knot k
    moving = torch.where(slope > 0, knots * slope, torch.zeros_like(slope))
    at_knot = saturated + moving  # the change at λ = knot_k: non-decreasing in k
    k = (at_knot < need[:, None]).sum(dim=1)  # knots passed before reaching ``need``
    d = w.shape[1]
    zero = torch.zeros_like(need)[:, None]
    saturated_before = torch.cat([zero, saturated], dim=1).gather(1, k[:, None]).squeeze(1)
    slope_before = torch.cat([total, slope], dim=1).gather(1, k[:, None]).squeeze(1)
    lam = torch.where(
        slope_before > 0,
        (need - saturated_before) / slope_before.clamp_min(torch.finfo(w.dtype).tiny),
        torch.zeros_like(need),
    )
    lam = torch.where(k >= d, torch.inf, lam)  # unreachable: every coordinate saturates
    reach = torch.where(speed > 0, lam[:, None] * speed, torch.zeros_like(speed))  # no inf·0
    return -w.sign() * torch.minimum(reach, room)


def fab_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    *,
    norm: str,
    steps: int,
    target: torch.Tensor | None = None,
    eta: float = 1.05,
    alpha_max: float = 0.1,
    beta: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FAB run from ``start`` on every input (see the module docstring).

    Returns ``(x_adv, distance)``: per input, the closest misclassified iterate found and
    its ``norm`` distance to ``x``, or ``x`` and ``inf`` if none was. With ``target``
    the boundary is the one to that class (FAB-T); otherwise the nearest linearised one.
    """
    n = x.shape[0]
    rows = torch.arange(n, device=x.device)
    flat_x = x.flatten(1)
    cur = start.clone()
    best = x.clone()
    best_distance = torch.full((n,), torch.inf, device=x.device, dtype=x.dtype)
    for _ in range(steps):
        if target is None:
            logits, grads = logit_gradients(model, cur)
            diff = logits - logits[rows, y][:, None]
            slopes = grads - grads[rows, y][:, None]
            size = flat_norm(slopes.flatten(0, 1), DUAL_NORM[norm]).view(diff.shape)
            distance = diff.abs() / (size + 1e-12)
            distance[rows, y] = torch.inf
            nearest = distance.argmin(dim=1)
            f, g = diff[rows, nearest], slopes[rows, nearest]
        else:  # one backward pass, of the difference itself
            point = cur.detach().requires_grad_(True)
            logits = model(point)
            gap = logits[rows, target] - logits[rows, y]
            (g,) = torch.autograd.grad(gap.sum(), point)
            f = gap.detach()
        w = g.flatten(1)
        b = (w * cur.flatten(1)).sum(dim=1) - f  # the linearised boundary ⟨w, z⟩ = b
        both = box_hyperplane_step(
            torch.cat([cur.flatten(1), flat_x]), torch.cat([w, w]), torch.cat([b, b]), norm
        )
        step_cur, step_x = both[:n].view_as(x), both[n:].view_as(x)
        len_cur = flat_norm(step_cur, norm).clamp_min(_STEP_FLOOR)
        len_x = flat_norm(step_x, norm).clamp_min(_STEP_FLOOR)
        alpha = per_sample((len_cur / (len_cur + len_x)).clamp(0.0, alpha_max), x)
        cur = clip_box((1 - alpha) * (cur + eta * step_cur) + alpha * (x + eta * step_x))
        fooled = predict(model, cur) != y
        distance_now = flat_norm(cur - x, norm)
        closer = fooled & (distance_now < best_distance)
        best = torch.where(per_sample(closer, x), cur, best)
        best_distance = torch.where(closer, distance_now, best_distance)
        cur = torch.where(per_sample(fooled, x), x + beta * (cur - x), cur)
    return best, best_distance


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfFAB(MinimalPerturbationAttack):
    """ℓ∞ FAB (Croce & Hein 2020): the smallest ℓ∞ perturbation found that changes the
    decision, by projections onto linearised boundaries (module docstring).

    Defaults are AutoAttack's: ``steps = 100``, one run (``restarts = 1``, from the input
    itself; later runs from random points), ``eta = 1.05``, ``alpha_max = 0.1``,
    ``beta = 0.9``. ``eps`` (default None) makes it a fixed-budget attack: the result is
    projected onto the ε-ball, and targets and restarts skip inputs already broken within
    it. Inputs the model misclassifies are returned unchanged; inputs FAB cannot break
    are returned as they came.
    """

    name = "fab"
    norm = "linf"
    paper = "Croce & Hein 2020 (FAB), Algorithm 1"
    iterative = True
    randomized = True

    steps: int = 100
    restarts: int = 1
    eta: float = 1.05
    alpha_max: float = 0.1
    beta: float = 0.9
    eps: float | None = None

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "steps", self.steps, minimum=1)
        require_int(self.name, "restarts", self.restarts, minimum=1)
        require_number(self.name, "eta", self.eta, strict=True)
        require_number(self.name, "alpha_max", self.alpha_max)
        require_number(self.name, "beta", self.beta)
        require_number(self.name, "eps", self.eps, allow_none=True)
        if self.alpha_max > 1 or self.beta > 1:
            raise AttackError(
                f"{self.name}: alpha_max and beta must lie in [0, 1], got "
                f"alpha_max={self.alpha_max!r}, beta={self.beta!r}"
            )

    # A first run is deterministic and each input's iterates depend on that input only,
    # so the batch may be split; random restarts draw for the batch, so then it is not.
    def chunkable(self) -> bool:
        return self.restarts == 1

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
        with torch.no_grad():
            logits = model(x)
        best = x.clone()
        distance = torch.full((x.shape[0],), torch.inf, device=x.device, dtype=x.dtype)
        correct = logits.argmax(dim=1) == y  # misclassified inputs are returned unchanged
        budget = torch.inf if self.eps is None else float(self.eps)
        norm = self.norm or "linf"
        for target in self._targets(logits, y):
            for restart in range(self.restarts):
                # with a budget: the inputs not yet broken within it; without one, every
                # correct input, but a restart needs a radius (an adversarial found)
                open_ = correct & (distance > budget)
                if self.eps is None:
                    open_ = correct & torch.isfinite(distance) if restart else correct
                rows = open_.nonzero().squeeze(1)
                if not rows.numel():
                    continue
                start = x[rows]
                if restart:
                    radius = distance[rows].clamp_max(budget) / 2
                    unit = random_in_ball(start, 1.0, norm, generator)
                    unit = unit / per_sample(flat_norm(unit, norm).clamp_min(TINY), unit)
                    start = clip_box(start + per_sample(radius, start) * unit)
                adv, found = fab_run(
                    model,
                    x[rows],
                    y[rows],
                    start,
                    norm=norm,
                    steps=self.steps,
                    target=None if target is None else target[rows],
                    eta=self.eta,
                    alpha_max=self.alpha_max,
                    beta=self.beta,
                )
                closer = found < distance[rows]
                best[rows[closer]] = adv[closer]
                distance[rows[closer]] = found[closer]
        if self.eps is not None:
            best = ThreatModel(norm, float(self.eps)).project(best, x)
        return best


@register_attack
@dataclass(repr=True, kw_only=True)
class L2FAB(LinfFAB):
    """ℓ2 FAB: as :class:`LinfFAB` with ℓ2 projections onto the linearised boundaries."""

    name = "fab_l2"
    norm = "l2"


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfFABTargeted(LinfFAB):
    """ℓ∞ FAB-T, AutoAttack's version: FAB toward each of the ``target_classes`` classes
    with the highest clean logits (other than the label) in turn, keeping per input the
    closest adversarial example over all targets (with ``eps``: each target runs only on
    the inputs not yet broken within it). Success means any wrong class, not only the
    target. Defaults as :class:`LinfFAB` and 9 targets (AutoAttack's standard version).
    """

    name = "fab_t"
    targeted = True
    aliases: ClassVar[tuple[str, ...]] = ()

    target_classes: int = 9

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "target_classes", self.target_classes, minimum=1)

    def _targets(self, logits: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        return list(ranked_targets(logits, y, self.target_classes))


@register_attack
@dataclass(repr=True, kw_only=True)
class L2FABTargeted(LinfFABTargeted):
    """ℓ2 FAB-T: as :class:`LinfFABTargeted` with ℓ2 projections."""

    name = "fab_t_l2"
    norm = "l2"

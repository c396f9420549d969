"""Square attack (Andriushchenko et al. 2020), ℓ∞: a score-based black-box attack.

It needs the model's scores only, never a gradient, so it is the ensemble's check
against gradient masking: a model that looks robust to gradient attacks but not to
Square hides its gradients (Croce & Hein 2020; Athalye et al. 2018).

The ℓ∞ method (Andriushchenko et al. 2020, Algorithm 1 with the ℓ∞ sampling of
Algorithm 2), per input:

* start at ``clip(x + ε·v)`` with ``v`` vertical stripes: one random sign per channel
  and image column;
* each iteration draws a square window of side ``s = max(round(√(p·h·w)), 1)`` at a
  uniformly random position, and sets the perturbation inside it to ``±2ε`` per channel
  (a random sign), projected back onto the ε-ball and the image box. The candidate is
  kept if it lowers the margin loss ``z_y − max_{j≠y} z_j`` (or the cross-entropy's
  negative), or if it is misclassified;
* the window's share of the image, ``p``, starts at ``p_init`` (0.8, AutoAttack's) and
  halves after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 iterations of a
  10,000-iteration budget, scaled to the budget given (:func:`square_fraction`);
* an input stops being queried once it is misclassified.

Windows and signs are drawn independently per input (as in the authors' code; the
AutoAttack port shares one window across the batch per iteration). Inputs the model
already misclassifies are returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.attacks._utils import require_choice, require_int, require_number
from robustcompress.attacks.base import FixedEpsilonAttack, register_attack
from robustcompress.attacks.ops import margin
from robustcompress.errors import AttackError

#: Losses Square can lower: the margin ``z_y − max_{j≠y} z_j`` or ``−CE``.
SQUARE_LOSSES = ("margin", "ce")

#: Iterations (of a 10,000-iteration budget) after which the window share halves again.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init: float, iteration: int, budget: int) -> float:
    """The window's share of the image at ``iteration`` of ``budget`` (AutoAttack's
    schedule, rescaled to the budget): ``p_init / 2^m`` with ``m`` the halvings passed."""
    scaled = int(iteration / budget * 10000)
    return p_init / 2 ** sum(scaled > h for h in _HALVINGS)


def _scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(margin z_y − max_{j≠y} z_j, loss to lower)``: misclassified iff margin < 0."""
    with torch.inference_mode():
        logits = model(x)
    m = -margin(logits, y)
    return m, (m if loss == "margin" else -F.cross_entropy(logits, y, reduction="none"))


def _random_signs(
    shape: tuple[int, ...], like: torch.Tensor, g: torch.Generator | None
) -> torch.Tensor:
    bits = torch.randint(0, 2, shape, generator=g, device=like.device)
    return (2 * bits - 1).to(like.dtype)


@register_attack
@dataclass(repr=True, kw_only=True)
class LinfSquare(FixedEpsilonAttack):
    """ℓ∞ Square attack (Andriushchenko et al. 2020): random square updates kept when they
    lower the margin, from scores only (no gradients).

    Defaults are AutoAttack's: ``queries = 5000`` (iterations after the first query),
    ``p_init = 0.8``, margin loss, one run. ``restarts > 1`` reruns the inputs still
    classified correctly with fresh draws. Inputs must be images ``N×C×H×W``.
    """

    name = "square"
    norm = "linf"
    paper = "Andriushchenko et al. 2020, Algorithms 1-2"
    iterative = True
    randomized = True
    score_based = True

    eps: float = 0.05
    queries: int = 5000
    p_init: float = 0.8
    loss: str = "margin"
    restarts: int = 1

    def validate(self) -> None:
        super().validate()
        require_int(self.name, "queries", self.queries, minimum=1)
        require_number(self.name, "p_init", self.p_init, strict=True)
        if self.p_init > 1:
            raise AttackError(f"{self.name}: p_init must lie in (0, 1], got {self.p_init!r}")
        require_choice(self.name, "loss", self.loss, SQUARE_LOSSES)
        require_int(self.name, "restarts", self.restarts, minimum=1)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        if x.dim() != 4:
            raise AttackError(
                f"{self.name}: inputs must be images N×C×H×W, got shape {tuple(x.shape)}"
            )
        out = x.clone()
        if self.eps == 0 or not x.shape[0]:
            return out
        best_margin, _ = _scores(model, x, y, self.loss)
        fooled = best_margin < 0
        for restart in range(self.restarts):
            rows = (~fooled).nonzero().squeeze(1)
            if not rows.numel():
                break
            with torch.inference_mode():  # scores only: no autograd bookkeeping at all
                x_adv, now = self._one_run(model, x[rows], y[rows], generator)
            x_adv, now = x_adv.clone(), now.clone()  # normal tensors again
            keep = now if restart else torch.ones_like(now)  # a first run's point, or a success
            out[rows[keep]] = x_adv[keep]
            fooled[rows[now]] = True
        return out

    def _one_run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        g: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on every input. The inputs still to break are kept packed (their
        images, bounds, labels and scores), so an iteration touches only them; an input
        leaves the pack when it is broken. ``lo``/``hi`` is the ε-ball ∩ box per pixel."""
        n, c, h, w = x.shape
        eps = self.eps
        lo, hi = (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)
        best = (x + eps * _random_signs((n, c, 1, w), x, g)).clamp(lo, hi)
        margins, losses = _scores(model, best, y, self.loss)
        rows_h = torch.arange(h, device=x.device)
        rows_w = torch.arange(w, device=x.device)
        idx = (margins >= 0).nonzero().squeeze(1)
        cur, lo_a, hi_a, y_a = best[idx], lo[idx], hi[idx], y[idx]
        margin_a, loss_a = margins[idx], losses[idx]
        for i in range(self.queries):
            k = idx.numel()
            if not k:
                break
            p = square_fraction(self.p_init, i, self.queries)
            s = min(max(round((p * h * w) ** 0.5), 1), h, w)
            top = torch.randint(0, h - s + 1, (k, 1), generator=g, device=x.device)
            left = torch.randint(0, w - s + 1, (k, 1), generator=g, device=x.device)
            inside_h = (rows_h >= top) & (rows_h < top + s)
            inside_w = (rows_w >= left) & (rows_w < left + s)
            window = (inside_h[:, :, None] & inside_w[:, None, :])[:, None]  # k×1×h×w
            step = (2 * eps) * _random_signs((k, c, 1, 1), x, g)
            candidate = torch.where(window, torch.clamp(cur + step, lo_a, hi_a), cur)
            m, value = _scores(model, candidate, y_a, self.loss)
            keep = (value < loss_a) | (m < 0)
            cur = torch.where(keep[:, None, None, None], candidate, cur)
            margin_a = torch.where(keep, m, margin_a)
            loss_a = torch.where(keep, torch.minimum(value, loss_a), loss_a)
            broken = margin_a < 0
            if broken.any():
                best[idx[broken]], margins[idx[broken]] = cur[broken], margin_a[broken]
                left_in = ~broken
                idx, cur, lo_a, hi_a, y_a = (t[left_in] for t in (idx, cur, lo_a, hi_a, y_a))
                margin_a, loss_a = margin_a[left_in], loss_a[left_in]
        best[idx], margins[idx] = cur, margin_a
        return best, margins < 0

"""Square attack (Andriushchenko et al. 2020), ℓ∞ and ℓ2: a score-based black-box attack.

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

import functools
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
        images, labels, scores and whatever the norm's update needs: :meth:`_packed`),
        so an iteration touches only them; an input leaves the pack when it is broken."""
        best = self._start(x, g)
        margins, losses = _scores(model, best, y, self.loss)
        idx = (margins >= 0).nonzero().squeeze(1)
        cur, y_a, margin_a, loss_a = best[idx], y[idx], margins[idx], losses[idx]
        pack = tuple(t[idx] for t in self._packed(x))
        rows, cols = (torch.arange(size, device=x.device) for size in x.shape[2:])
        for i in range(self.queries):
            k = idx.numel()
            if not k:
                break
            p = square_fraction(self.p_init, i, self.queries)
            candidate = self._candidate(cur, pack, (rows, cols), p, g)
            m, value = _scores(model, candidate, y_a, self.loss)
            keep = (value < loss_a) | (m < 0)
            cur = torch.where(keep[:, None, None, None], candidate, cur)
            margin_a = torch.where(keep, m, margin_a)
            loss_a = torch.where(keep, torch.minimum(value, loss_a), loss_a)
            broken = margin_a < 0
            if broken.any():
                best[idx[broken]], margins[idx[broken]] = cur[broken], margin_a[broken]
                left_in = ~broken
                idx, cur, y_a = idx[left_in], cur[left_in], y_a[left_in]
                margin_a, loss_a = margin_a[left_in], loss_a[left_in]
                pack = tuple(t[left_in] for t in pack)
        best[idx], margins[idx] = cur, margin_a
        return best, margins < 0

    def _start(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """The first point: ``clip(x + ε·v)``, ``v`` vertical stripes of random signs."""
        n, c, _, w = x.shape
        return (x + self.eps * _random_signs((n, c, 1, w), x, g)).clamp(0.0, 1.0)

    def _packed(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per input, what :meth:`_candidate` needs: the ε-ball ∩ box bounds per pixel."""
        return (x - self.eps).clamp(0.0, 1.0), (x + self.eps).clamp(0.0, 1.0)

    def _candidate(
        self,
        cur: torch.Tensor,
        pack: tuple[torch.Tensor, ...],
        grid: tuple[torch.Tensor, torch.Tensor],
        p: float,
        g: torch.Generator | None,
    ) -> torch.Tensor:
        """A window of share ``p`` per input set to ``±2ε`` per channel, then projected."""
        lo, hi = pack
        k, c, h, w = cur.shape
        s = min(max(round((p * h * w) ** 0.5), 1), h, w)
        window = _windows(k, s, grid, g)
        step = (2 * self.eps) * _random_signs((k, c, 1, 1), cur, g)
        return torch.where(window, torch.clamp(cur + step, lo, hi), cur)


def _windows(
    k: int, s: int, grid: tuple[torch.Tensor, torch.Tensor], g: torch.Generator | None
) -> torch.Tensor:
    """A ``k×1×h×w`` mask: per input, one ``s×s`` window at a uniformly random position;
    ``grid`` holds the row and column indices (built once per run, not per iteration)."""
    rows, cols = grid
    h, w = rows.numel(), cols.numel()
    top = torch.randint(0, h - s + 1, (k, 1), generator=g, device=rows.device)
    left = torch.randint(0, w - s + 1, (k, 1), generator=g, device=rows.device)
    inside_h = (rows >= top) & (rows < top + s)
    inside_w = (cols >= left) & (cols < left + s)
    return (inside_h[:, :, None] & inside_w[:, None, :])[:, None]


def centred_squares(rows: int, cols: int) -> torch.Tensor:
    """The ℓ2 Square attack's building block on a ``rows×cols`` patch (Andriushchenko et
    al. 2020, §3.2): squares centred on the patch, the ``k``-th (side ``2k + 1``) adding
    ``1/(k + 1)²``, so the mass falls off from the centre; unit ℓ2 norm."""
    ring = torch.maximum(
        (torch.arange(rows) - rows // 2).abs()[:, None], (torch.arange(cols) - cols // 2).abs()
    )
    count = max(rows // 2, cols // 2) + 1
    weights = 1.0 / torch.arange(1, count + 1, dtype=torch.float64) ** 2
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[d] = Σ_{k ≥ d} 1/(k + 1)²
    patch = tail[ring]
    return patch / patch.norm() if patch.numel() else patch


@functools.lru_cache(maxsize=64)
def square_pattern(s: int) -> torch.Tensor:
    """The ``s×s`` update of the ℓ2 Square attack: centred squares of opposite signs on the
    two halves (upper ``⌊s/2⌋`` rows positive), unit ℓ2 norm. Cached: the side changes
    only at the schedule's halvings, the pattern is drawn every iteration (callers must
    not write into it)."""
    top = centred_squares(s // 2, s)
    bottom = -centred_squares(s - s // 2, s)
    both = torch.cat([top, bottom])
    return both / both.norm()


@register_attack
@dataclass(repr=True, kw_only=True)
class L2Square(LinfSquare):
    """ℓ2 Square attack (Andriushchenko et al. 2020, Algorithm 3), scores only.

    The perturbation always has norm ε (before the box clips it). It starts as a grid of
    :func:`square_pattern` patches of side ``⌊h/5⌋``, each transposed with probability ½
    and with random signs per channel. Each iteration draws two windows of side ``s``
    (odd, ≥ 3, from the window share ``p`` of :func:`square_fraction`) per input: the mass
    of both moves into the first one, as the old content of the first window (normalised)
    plus a fresh pattern of random sign per channel, scaled to carry the old mass of both
    windows plus the budget still unused; the second window is emptied; the whole is
    rescaled to norm ε and clipped to the box. Kept when it lowers the loss, as in the ℓ∞
    attack. Default ``eps = 1.0``.
    """

    name = "square_l2"
    norm = "l2"
    paper = "Andriushchenko et al. 2020, Algorithm 3"

    eps: float = 1.0

    def _start(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n, c, h, w = x.shape
        delta = torch.zeros_like(x)
        s = max(min(h, w) // 5, 1)
        patch = square_pattern(s).to(x)
        top0, left0 = (h - 5 * s) // 2, (w - 5 * s) // 2
        for top in range(max(top0, 0), h - s + 1, s):
            for left in range(max(left0, 0), w - s + 1, s):
                flip = torch.rand(n, generator=g, device=x.device) < 0.5
                turned = torch.where(flip[:, None, None], patch.T, patch)[:, None]
                signs = _random_signs((n, c, 1, 1), x, g)
                delta[:, :, top : top + s, left : left + s] += signs * turned
        return self._to_budget(x, delta)

    def _to_budget(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``clip(x + ε·δ/‖δ‖₂)``."""
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return (x + delta * (self.eps / norm)[:, None, None, None]).clamp(0.0, 1.0)

    def _packed(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x,)

    def _candidate(
        self,
        cur: torch.Tensor,
        pack: tuple[torch.Tensor, ...],
        grid: tuple[torch.Tensor, torch.Tensor],
        p: float,
        g: torch.Generator | None,
    ) -> torch.Tensor:
        (x,) = pack
        k, c, h, w = cur.shape
        s = max(round((p * h * w) ** 0.5), 3)
        s = min(s + 1 - s % 2, h - (1 - h % 2), w - (1 - w % 2))  # odd, within the image
        delta = cur - x
        first = _windows(k, s, grid, g)
        second = _windows(k, s, grid, g)
        old = delta[first.expand_as(delta)].view(k, c, s, s)
        old = old / old.flatten(2).norm(dim=2).clamp_min(1e-12)[:, :, None, None]
        flip = torch.rand(k, generator=g, device=cur.device) < 0.5
        pattern = square_pattern(s).to(cur)
        pattern = torch.where(flip[:, None, None], pattern.T, pattern)[:, None]
        fresh = pattern * _random_signs((k, c, 1, 1), cur, g) + old
        total = delta.flatten(1).norm(dim=1)
        moved = (delta * (first | second)).flatten(1).norm(dim=1)
        mass = ((self.eps**2 - total**2).clamp_min(0) / c + moved**2).sqrt()
        fresh = fresh / fresh.flatten(2).norm(dim=2).clamp_min(1e-12)[:, :, None, None]
        fresh = fresh * mass[:, None, None, None]
        delta = delta.masked_fill(second, 0.0)
        delta = delta.masked_scatter(first.expand_as(delta), fresh)
        return self._to_budget(x, delta)

"""Pure robustness metrics on per-sample predictions and perturbation norms.

Every function takes per-sample arrays (NumPy arrays or CPU tensors of length N, the
number of test inputs) and returns a number or an array; none of them touches a model.
Which inputs form the denominator is part of each definition and is stated in each
docstring (see docs/algorithms.md, Fooling ratio):

* :func:`fooling_ratio` — among the *correctly classified* inputs;
* :func:`accuracy` / :func:`adversarial_accuracy` — over *all* inputs;
* :func:`mean_relative_perturbation` — over the inputs selected by a mask, usually
  "correctly classified and fooled" (:func:`successful`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from robustcompress.attacks.ops import flat_norm
from robustcompress.errors import ConfigError

#: Perturbation norms reported for every attack, whatever norm the attack works in.
REPORTED_NORMS = ("l2", "linf")


def _vector(values: Any, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(
            f"{what} must be a vector with one entry per input, got shape {array.shape}"
        )
    return array


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"per-sample arrays differ in length: {lengths}")


def correctly_classified(pred_clean: Any, labels: Any) -> np.ndarray:
    """Boolean mask ``k̂(x_n) = y_n``: the set S on which the fooling ratio is measured."""
    pred, y = _vector(pred_clean, "pred_clean"), _vector(labels, "labels")
    _same_length(pred_clean=pred, labels=y)
    return pred == y


def fooled(pred_clean: Any, pred_adv: Any) -> np.ndarray:
    """Boolean mask ``k̂(x_adv,n) ≠ k̂(x_n)``: the attack changed the decision."""
    clean, adv = _vector(pred_clean, "pred_clean"), _vector(pred_adv, "pred_adv")
    _same_length(pred_clean=clean, pred_adv=adv)
    return clean != adv


def successful(pred_clean: Any, pred_adv: Any, labels: Any) -> np.ndarray:
    """Boolean mask of successful attacks: correctly classified and fooled.

    This is the set over which Guo et al. (2018, §4) and Langenberg et al. (2019, §5)
    measure perturbation sizes and fooling.
    """
    return correctly_classified(pred_clean, labels) & fooled(pred_clean, pred_adv)


def accuracy(pred: Any, labels: Any) -> float:
    """Share of all inputs classified correctly, ``mean_n 1[k̂(x_n) = y_n]`` (NaN if N = 0)."""
    p, y = _vector(pred, "pred"), _vector(labels, "labels")
    _same_length(pred=p, labels=y)
    return float(np.mean(p == y)) if len(y) else math.nan


def adversarial_accuracy(pred_adv: Any, labels: Any) -> float:
    """Accuracy on adversarial inputs over *all* test points, ``mean_n 1[k̂(x_adv,n) = y_n]``.

    See docs/algorithms.md, Fooling ratio. Unlike the fooling ratio, misclassified clean
    inputs count (as errors unless the attack happens to fix them), so
    ``adversarial_accuracy ≤ 1 − FR·acc`` up to such fixes.
    """
    return accuracy(pred_adv, labels)


def fooling_ratio(pred_clean: Any, pred_adv: Any, labels: Any) -> float:
    """Fooling ratio: the share of correctly classified inputs whose prediction changes.

    ``FR = |{n ∈ S : k̂(x_adv,n) ≠ k̂(x_n)}| / |S|`` with ``S = {n : k̂(x_n) = y_n}``
    (Langenberg et al. 2019, §5: "the percentage of inputs, among the correctly
    classified ones, whose classification outcome changes"; docs/algorithms.md, Fooling
    ratio). On S a changed prediction is a wrong one, so FR is also the error rate on S.
    Returns NaN when no input is classified correctly (the ratio is undefined).
    """
    correct = correctly_classified(pred_clean, labels)
    if not correct.any():
        return math.nan
    return float(np.mean(fooled(pred_clean, pred_adv)[correct]))


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``‖x_adv,n − x_n‖_p`` over all non-batch dimensions (``norm``: l2, linf).

    Computed in float64 so that ℓ2 norms of many tiny differences do not lose digits.
    """
    if norm not in REPORTED_NORMS:
        raise ConfigError(f"unknown norm {norm!r}: choose one of {', '.join(REPORTED_NORMS)}")
    return flat_norm((x_adv.double() - x.double()), norm)


def input_norms(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``‖x_n‖_p``, the denominator of the relative perturbation sizes."""
    if norm not in REPORTED_NORMS:
        raise ConfigError(f"unknown norm {norm!r}: choose one of {', '.join(REPORTED_NORMS)}")
    return flat_norm(x.double(), norm)


def mean_relative_perturbation(delta_norms: Any, x_norms: Any, mask: Any) -> float:
    """Mean relative perturbation size ``E[‖δ‖_p / ‖x‖_p]`` over the inputs in ``mask``.

    With ``mask = successful(...)`` (correctly classified and fooled) this is

    * DeepFool's robustness ``ρ_adv = mean ‖r̂(x)‖₂/‖x‖₂`` (Moosavi-Dezfooli et al.
      2016, eq. (15)) for a minimal-perturbation attack, averaged over fooled points
      as Balda et al.'s code does (docs/algorithms.md, Fooling ratio);
    * the brief's reading of Guo et al.'s (2018) ``r₂`` (DeepFool / C&W) and ``r∞``
      (FGS / rFGS with the smallest successful ε per input, see
      :func:`smallest_fooling_eps`), docs/algorithms.md, Perturbation sizes.

    Guo et al.'s eq. (5) literally defines ``r∞`` as the accuracy under FGS (our
    :func:`adversarial_accuracy`) and ``r₂ = E[1(y = ŷ)·‖x̃ − x‖₂]`` over *all* inputs
    (:func:`expected_correct_distance`); report which one you use. Inputs with
    ``‖x‖ = 0`` are left out. Returns NaN if no input qualifies.
    """
    d, n, m = (
        _vector(delta_norms, "delta_norms"),
        _vector(x_norms, "x_norms"),
        _vector(mask, "mask"),
    )
    _same_length(delta_norms=d, x_norms=n, mask=m)
    keep = m.astype(bool) & (n > 0) & np.isfinite(d)
    if not keep.any():
        return math.nan
    return float(np.mean(d[keep] / n[keep]))


def expected_correct_distance(delta_norms: Any, pred_clean: Any, labels: Any) -> float:
    """Guo et al.'s ``r₂ = E_{x,y}[1(y = ŷ)·‖x̃ − x‖₂]``, literally as in their eq. (1)/(5).

    The mean over *all* inputs, with misclassified ones contributing 0, of the distance
    to a minimal adversarial example x̃ (DeepFool or C&W). Unnormalised, unlike
    :func:`mean_relative_perturbation`. Returns NaN if N = 0.
    """
    d = _vector(delta_norms, "delta_norms")
    correct = correctly_classified(pred_clean, labels)
    _same_length(delta_norms=d, labels=correct)
    if not len(d):
        return math.nan
    return float(np.mean(np.where(correct, np.nan_to_num(d, posinf=0.0), 0.0)))


def within_budget(pred_clean: Any, pred_adv: Any, delta_norms: Any, eps: float) -> np.ndarray:
    """Predictions of a minimal-perturbation attack restricted to the budget ``‖r‖_p ≤ ε``.

    Where the found perturbation is larger than ε, the input is left clean (so its
    prediction is ``k̂(x)``). Feeding the result to :func:`fooling_ratio` gives
    ``FR(ε) = |{n ∈ S : success and ‖r_n‖ ≤ ε}| / |S|``, how DeepFool curves are drawn
    from one unbounded run (docs/algorithms.md, Fooling ratio).
    """
    clean, adv = _vector(pred_clean, "pred_clean"), _vector(pred_adv, "pred_adv")
    d = _vector(delta_norms, "delta_norms")
    _same_length(pred_clean=clean, pred_adv=adv, delta_norms=d)
    return np.where(d <= eps, adv, clean)


def smallest_fooling_eps(eps: Any, fooled_at: Any) -> np.ndarray:
    """Per input, the smallest budget on the grid ``eps`` at which the attack fools it.

    ``fooled_at`` is a boolean array of shape ``len(eps) × N``; the result has length N
    with ``inf`` where no ε on the grid fools the input. On a fine grid this is the
    per-sample bisection of docs/algorithms.md, Perturbation sizes (Guo et al.'s minimal ε
    for single-step attacks) up to the grid spacing, and costs nothing extra once the curve
    has been computed.
    """
    grid = np.asarray(eps, dtype=float)
    hits = np.asarray(fooled_at, dtype=bool)
    if hits.ndim != 2 or hits.shape[0] != grid.shape[0]:
        raise ConfigError(
            f"fooled_at must have shape len(eps) × N = {grid.shape[0]} × N, got {hits.shape}"
        )
    order = np.argsort(grid, kind="stable")
    grid, hits = grid[order], hits[order]
    first = np.argmax(hits, axis=0)
    return np.where(hits.any(axis=0), grid[first], np.inf)

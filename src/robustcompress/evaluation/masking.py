"""Gradient-masking guardrails: cheap signs that a robustness number is not to be trusted.

A model can look robust only because its gradients are useless to a first-order
attack (obfuscated or masked gradients; Athalye, Carlini & Wagner 2018, §3; Carlini
et al. 2019, "On evaluating adversarial robustness", §5 checklist). These symptoms are
checked on every evaluation:

``degenerate_gradients``
    the input gradient ``∇_x J(x, y)`` is exactly zero or non-finite for many inputs;
``iterative_weaker_than_single_step``
    an iterative ℓ∞ attack (PGD, BIM, GNM, ...) fools fewer inputs than a single-step
    one (FGSM, R+FGSM) at the same ε, although it can take that step and more;
``black_box_stronger_than_white_box``
    a score-based attack (Square), which never sees a gradient, fools more inputs than
    every gradient attack at the same ε (Croce & Hein 2020's tell-tale; a reference
    Square runs when no score-based attack was asked for);
``low_fooling_at_large_eps``
    FGSM at ε = 1 (the ℓ∞ ball is then the whole image box) fools well below 100%;
``non_monotone_curve``
    adversarial accuracy rises with ε for some fixed-budget attack.

Each check is a pure function of measured numbers returning a :class:`MaskingFlag`;
:func:`degenerate_input_gradients` is the one that needs the model.

Which attacks count as iterative or single-step is read from the capability flags
every attack class declares (``iterative``, ``single_step``, ``targeted``,
``minimal_perturbation``; see :class:`robustcompress.attacks.Attack`) by
:func:`compared_as_iterative` and :func:`compared_as_single_step`, so an attack added
later is checked as soon as it declares what it is, without a list of names here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcompress.attacks.ops import loss_gradient

#: Share of inputs with zero / non-finite input gradients above which masking is flagged.
#: A smooth trained model has none (the cross-entropy gradient vanishes exactly only
#: when the softmax saturates in float32, margins above ~100 logits), so 10% is far
#: from normal behaviour yet tolerant of a few saturated inputs.
DEGENERATE_GRADIENT_SHARE = 0.10

#: How many percentage points (as a fraction) an iterative attack may trail FGSM at the
#: same ε before masking is flagged; a little slack because, per input, a projected
#: path can miss a corner FGSM lands on.
ITERATIVE_MARGIN = 0.02

#: How far (as a fraction) a black-box attack's fooling ratio may exceed the best
#: gradient attack's at the same ε before masking is flagged: the same slack as
#: :data:`ITERATIVE_MARGIN`, for per-input luck of random search.
BLACK_BOX_MARGIN = 0.02

#: Queries of the reference Square run of the black-box check (AutoAttack's standard
#: version spends 5,000; a tenth keeps the check cheap beside the attacks it checks, and
#: a weaker black-box search only makes the check more conservative). Square stops
#: querying an input once it is broken, so the cost is about robust inputs × queries
#: forward passes: on the CNN with 200 of 400 inputs robust, about 30 s on one core.
REFERENCE_SQUARE_QUERIES = 500

#: The largest evaluation (inputs) the reference Square runs on: at 10,000 CNN inputs it
#: would cost minutes where the rest of the masking checks cost seconds.
REFERENCE_SQUARE_MAX_INPUTS = 1000

#: The "very large" ℓ∞ budget: with ε = 1 on [0, 1] images any image is reachable.
LARGE_EPS = 1.0

#: Minimum fooling ratio expected at :data:`LARGE_EPS`. FGSM at ε = 1 fooled 100% of
#: the correctly classified inputs of briefly trained FCNN (MNIST) and CNN
#: (Fashion-MNIST) models in our runs.
LARGE_EPS_MIN_FOOLING = 0.95

#: Largest rise of adversarial accuracy between a smaller and a larger ε tolerated
#: before a curve counts as non-monotone.
MONOTONE_TOLERANCE = 0.02

#: Settings of the reference PGD run when no iterative ℓ∞ attack was requested:
#: 10 steps of α = 2.5·ε/10 (α ≈ 2.5ε/steps, so the steps can cross the ball; see
#: docs/algorithms.md, PGD), no random start.
REFERENCE_PGD_STEPS = 10


@dataclass(frozen=True)
class MaskingFlag:
    """One gradient-masking check.

    Attributes:
        name: the check's identifier (e.g. ``"degenerate_gradients"``).
        triggered: ``True`` if the measured value crosses the threshold.
        value: the measured value, or ``None`` if the check could not be run.
        threshold: where the check triggers (its direction is in ``explanation``).
        explanation: one line saying what was measured and what a trigger means.
        checked: ``False`` when the evaluation did not contain what the check needs.
    """

    name: str
    triggered: bool
    value: float | None
    threshold: float
    explanation: str
    checked: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The flag as a JSON-able dict."""
        return asdict(self)


def _untargeted_linf_budget(capabilities: Mapping[str, bool], norm: str | None, kind: str) -> bool:
    """An attack of ``kind`` (a capability flag) that is untargeted, spends an ℓ∞ budget."""
    return (
        bool(capabilities.get(kind))
        and not capabilities.get("targeted")
        and not capabilities.get("minimal_perturbation")
        and norm == "linf"
    )


def compared_as_iterative(capabilities: Mapping[str, bool], norm: str | None) -> bool:
    """Whether an attack enters the iterative-vs-single-step check as an *iterative* one.

    Read from the attack's declared capabilities (:meth:`Attack.capabilities
    <robustcompress.attacks.Attack.capabilities>`), never its name: an ``iterative``,
    untargeted, fixed-budget ℓ∞ attack that follows gradients can reach FGSM's region of
    the ε-ball and more, so it should fool at least as many inputs. A targeted attack
    (ILLC) aims at one class, a minimal-perturbation attack has no budget and a
    score-based one (Square) searches at random, so none is held to that.
    """
    return _untargeted_linf_budget(capabilities, norm, "iterative") and not capabilities.get(
        "score_based"
    )


def compared_as_black_box(capabilities: Mapping[str, bool], norm: str | None) -> bool:
    """Whether an attack is the black-box side of the black-box-vs-white-box check: a
    ``score_based``, untargeted, fixed-budget ℓ∞ attack (Square)."""
    return _untargeted_linf_budget(capabilities, norm, "score_based")


def compared_as_white_box(capabilities: Mapping[str, bool], norm: str | None) -> bool:
    """Whether an attack is a gradient attack of that check: untargeted, fixed-budget
    ℓ∞, iterative or single-step, and not score-based."""
    return (
        compared_as_iterative(capabilities, norm) or compared_as_single_step(capabilities, norm)
    ) and not capabilities.get("score_based")


def compared_as_single_step(capabilities: Mapping[str, bool], norm: str | None) -> bool:
    """Whether an attack's curve joins FGSM's as a *single-step* baseline of that check.

    A ``single_step``, untargeted, fixed-budget ℓ∞ attack (FGSM, R+FGSM): per ε the
    baseline is the best fooling ratio among them, so an iterative attack trailing any
    one-step attack by more than the margin is flagged.
    """
    return _untargeted_linf_budget(capabilities, norm, "single_step")


def _not_checked(name: str, threshold: float, why: str) -> MaskingFlag:
    return MaskingFlag(name, False, None, threshold, f"not checked: {why}", checked=False)


def degenerate_input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per input, whether ``∇_x J(x_n, y_n)`` is identically zero or has a non-finite entry.

    ``J`` is the cross-entropy of the logits, summed over the batch so each input's
    gradient is its own. The model should already be in eval mode. Returns a boolean
    vector of length N on ``x``'s device.
    """
    grad, _ = loss_gradient(model, x, y)
    flat = grad.reshape(grad.shape[0], -1)
    return (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)


def check_gradients(
    degenerate: Sequence[bool] | np.ndarray, threshold: float = DEGENERATE_GRADIENT_SHARE
) -> MaskingFlag:
    """Flag when more than ``threshold`` of the inputs have degenerate input gradients."""
    name = "degenerate_gradients"
    mask = np.asarray(degenerate, dtype=bool)
    if not mask.size:
        return _not_checked(name, threshold, "no inputs")
    share = float(mask.mean())
    return MaskingFlag(
        name,
        share > threshold,
        share,
        threshold,
        f"share of inputs whose loss gradient is zero or non-finite (triggers above "
        f"{threshold:g}): first-order attacks cannot move them",
    )


def check_iterative_vs_single_step(
    single_step: Mapping[float, float],
    iterative: Mapping[str, Mapping[float, float]],
    margin: float = ITERATIVE_MARGIN,
) -> MaskingFlag:
    """Flag when an iterative attack's fooling ratio trails FGSM's by more than ``margin``.

    ``single_step`` maps ε to the single-step baseline's fooling ratio (FGSM's, or the
    best of the single-step attacks run); ``iterative`` maps an attack label to its own
    ``{ε: fooling ratio}``. The value is the largest ``FR_single(ε) − FR_iter(ε)`` over
    every attack and every ε > 0 both were run at (NaN ratios are skipped).
    """
    name = "iterative_weaker_than_single_step"
    largest = _largest_difference(single_step, iterative, sign=-1.0)
    if largest is None:
        return _not_checked(name, margin, "no iterative ℓ∞ attack shares an ε with FGSM")
    gap, label, eps = largest
    return MaskingFlag(
        name,
        gap > margin,
        float(gap),
        margin,
        f"largest lead of the single-step (FGSM) fooling ratio over an iterative attack at "
        f"the same ε ({label} at ε={eps:g}; triggers above {margin:g}): an iterative attack "
        "can take the single step and more, so trailing it means its gradients mislead",
    )


def _largest_difference(
    reference: Mapping[float, float],
    curves: Mapping[str, Mapping[float, float]],
    sign: float,
) -> tuple[float, str, float] | None:
    """``max sign·(FR_curve(ε) − FR_reference(ε))`` over the curves and every ε > 0 both
    were run at (NaN ratios skipped), with the curve's label and that ε; None if none."""
    found = [
        (sign * (fr - ref), label, eps)
        for label, curve in curves.items()
        for eps, fr in curve.items()
        if eps > 0
        and (ref := reference.get(eps)) is not None
        and np.isfinite(ref)
        and np.isfinite(fr)
    ]
    return max(found) if found else None


def check_black_box_vs_white_box(
    black_box: Mapping[str, Mapping[float, float]],
    white_box: Mapping[float, float],
    margin: float = BLACK_BOX_MARGIN,
) -> MaskingFlag:
    """Flag when a black-box attack fools more inputs than every gradient attack.

    ``black_box`` maps a score-based attack's label to ``{ε: fooling ratio}``;
    ``white_box`` maps ε to the best fooling ratio of the gradient attacks run there.
    The value is the largest ``FR_black(ε) − FR_white(ε)`` over every ε > 0 both were run
    at: a random search beating every gradient means the gradients mislead (Croce &
    Hein 2020, §5; Carlini et al. 2019, §5).
    """
    name = "black_box_stronger_than_white_box"
    largest = _largest_difference(white_box, black_box, sign=1.0)
    if largest is None:
        why = (
            "no score-based ℓ∞ attack was run at an ε of a gradient one (the reference "
            f"Square runs on evaluations of at most {REFERENCE_SQUARE_MAX_INPUTS} inputs)"
        )
        return _not_checked(name, margin, why)
    lead, label, eps = largest
    return MaskingFlag(
        name,
        lead > margin,
        float(lead),
        margin,
        f"largest lead of a black-box attack's fooling ratio over the best gradient attack "
        f"at the same ε ({label} at ε={eps:g}; triggers above {margin:g}): a search that "
        "never sees a gradient should not beat every attack that follows one",
    )


def check_large_eps(
    fooling_at_large_eps: float | None,
    eps: float = LARGE_EPS,
    threshold: float = LARGE_EPS_MIN_FOOLING,
) -> MaskingFlag:
    """Flag when the fooling ratio at the very large budget ``eps`` is below ``threshold``."""
    name = "low_fooling_at_large_eps"
    if fooling_at_large_eps is None or not np.isfinite(fooling_at_large_eps):
        return _not_checked(name, threshold, f"no fooling ratio at ε={eps:g}")
    value = float(fooling_at_large_eps)
    return MaskingFlag(
        name,
        value < threshold,
        value,
        threshold,
        f"FGSM fooling ratio at ε={eps:g}, where every image in the box is reachable "
        f"(triggers below {threshold:g}): an unbounded attack should succeed everywhere",
    )


MIN_CORRECT = 30
"""Fewest correctly classified inputs a fooling ratio may be over before it is flagged."""

CHANCE_MARGIN = 0.1
"""Clean accuracy within this of chance (1/K) is flagged: the model has not learned."""


def near_chance(
    accuracy: float, n_correct: int, num_classes: int, *, min_correct: int = MIN_CORRECT
) -> bool:
    """Whether fooling ratios of a model with this clean ``accuracy`` are not to be read
    as robustness: fewer than ``min_correct`` correct inputs to take the ratio over, or
    an accuracy at most ``1/K +`` :data:`CHANCE_MARGIN`."""
    return n_correct < min_correct or accuracy <= 1.0 / max(2, num_classes) + CHANCE_MARGIN


def run_near_chance(config: Mapping[str, Any], final: Mapping[str, Any]) -> bool | None:
    """:func:`near_chance` for a stored run: its final tracked ``accuracy`` on its
    ``tracking.eval_size`` inputs and its data set's classes (``None`` if not known)."""
    from robustcompress.data import dataset_classes

    accuracy = final.get("accuracy")
    size = (config.get("tracking") or {}).get("eval_size")
    dataset = (config.get("data") or {}).get("dataset")
    if not isinstance(accuracy, (int, float)) or not isinstance(size, int) or not dataset:
        return None
    classes = dataset_classes(str(dataset))
    return near_chance(float(accuracy), round(accuracy * size), classes or 10)


def check_clean_accuracy(
    n_correct: int, n: int, num_classes: int, *, min_correct: int = MIN_CORRECT
) -> MaskingFlag:
    """Flag a model at or near chance, or with too few correct inputs to judge.

    A fooling ratio is over the correctly classified inputs; for a model at chance
    accuracy (a diverged or untrained one) that is a handful of inputs, and a ratio of
    0 there is not robustness. Triggers when fewer than ``min_correct`` inputs are
    classified correctly or the clean accuracy is at most ``1/K +`` :data:`CHANCE_MARGIN`.
    """
    name = "near_chance_accuracy"
    if n == 0:
        return _not_checked(name, CHANCE_MARGIN, "no inputs")
    accuracy = n_correct / n
    chance = 1.0 / max(2, num_classes)
    triggered = near_chance(accuracy, n_correct, num_classes, min_correct=min_correct)
    return MaskingFlag(
        name,
        triggered,
        accuracy,
        chance + CHANCE_MARGIN,
        f"clean accuracy {accuracy:.3f} ({n_correct} of {n} inputs correct; chance ≈ "
        f"{chance:.3f}; triggers at ≤ {chance + CHANCE_MARGIN:.3f} or fewer than "
        f"{min_correct} correct): fooling ratios over so few correctly classified inputs "
        "say nothing about robustness",
    )


def largest_rise(eps: Sequence[float], values: Sequence[float]) -> float:
    """``max_{ε_i < ε_j} (v_j − v_i)``: the largest increase along a curve sorted by ε.

    Zero (or negative) for a non-increasing curve; NaN points are skipped; needs two
    finite points, else NaN.
    """
    points = sorted(
        (float(e), float(v)) for e, v in zip(eps, values, strict=True) if np.isfinite(v)
    )
    if len(points) < 2:
        return float("nan")
    best, low = -np.inf, points[0][1]
    for _, v in points[1:]:
        best = max(best, v - low)
        low = min(low, v)
    return float(best)


def check_monotone(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    tolerance: float = MONOTONE_TOLERANCE,
) -> MaskingFlag:
    """Flag when adversarial accuracy rises with ε by more than ``tolerance`` on some curve.

    ``curves`` maps an attack label to ``(eps values, adversarial accuracies)``; curves
    with fewer than two ε are skipped. The value is the largest rise (:func:`largest_rise`).
    """
    name = "non_monotone_curve"
    rises = {label: largest_rise(eps, acc) for label, (eps, acc) in curves.items() if len(eps) >= 2}
    rises = {k: v for k, v in rises.items() if np.isfinite(v)}
    if not rises:
        return _not_checked(name, tolerance, "no fixed-budget attack was run at two or more ε")
    label = max(rises, key=lambda k: rises[k])
    rise = max(rises[label], 0.0)
    return MaskingFlag(
        name,
        rise > tolerance,
        rise,
        tolerance,
        f"largest rise of adversarial accuracy with growing ε ({label}; triggers above "
        f"{tolerance:g}): a bigger budget can only help a working attack",
    )

"""Scoring attacks: robustness metrics, streaming evaluation and gradient-masking checks.

Running an attack lives in :mod:`robustcompress.attacks`; scoring it lives here
(adv_lib's split). :mod:`~robustcompress.evaluation.metrics` holds the pure metrics
(fooling ratio, adversarial accuracy, perturbation sizes), :mod:`.robustness` the
streaming :func:`evaluate` and :func:`fooling_ratio_of`, :mod:`.masking` the
gradient-masking guardrails reported with every evaluation, and :mod:`.clever` the CLEVER
score, an attack-agnostic estimate of the minimal perturbation (Weng et al. 2018).

This package reaches the attacks only through their public seams: the operations in
:mod:`robustcompress.attacks.ops` and the capability flags every attack class declares
(:data:`robustcompress.attacks.CAPABILITIES`). It names no attack except the reference
runs it chooses itself (FGSM, and PGD when no iterative attack was requested) and the
ensemble (:class:`~robustcompress.attacks.AutoAttack`), whose per-input record of the
stage that broke each input it keeps.
"""

from robustcompress.evaluation.clever import (
    CleverResult,
    CleverTarget,
    WeibullFit,
    clever_score,
    clever_scores,
    fit_reverse_weibull,
)
from robustcompress.evaluation.masking import MaskingFlag, degenerate_input_gradients
from robustcompress.evaluation.metrics import (
    accuracy,
    adversarial_accuracy,
    correctly_classified,
    expected_correct_distance,
    fooled,
    fooling_ratio,
    input_norms,
    mean_relative_perturbation,
    perturbation_norms,
    smallest_fooling_eps,
    successful,
    within_budget,
)
from robustcompress.evaluation.robustness import (
    AttackCurve,
    EvaluationRecord,
    evaluate,
    fooling_ratio_of,
    iterate_batches,
    masking_flags,
)

__all__ = [
    "AttackCurve",
    "CleverResult",
    "CleverTarget",
    "EvaluationRecord",
    "MaskingFlag",
    "WeibullFit",
    "accuracy",
    "adversarial_accuracy",
    "clever_score",
    "clever_scores",
    "correctly_classified",
    "degenerate_input_gradients",
    "evaluate",
    "expected_correct_distance",
    "fit_reverse_weibull",
    "fooled",
    "fooling_ratio",
    "fooling_ratio_of",
    "input_norms",
    "iterate_batches",
    "masking_flags",
    "mean_relative_perturbation",
    "perturbation_norms",
    "smallest_fooling_eps",
    "successful",
    "within_budget",
]

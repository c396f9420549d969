"""The pure robustness metrics: hand-computed answers, denominators and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.errors import ConfigError
from robustcompress.evaluation.metrics import (
    accuracy,
    adversarial_accuracy,
    correctly_classified,
    expected_correct_distance,
    fooling_ratio,
    input_norms,
    mean_relative_perturbation,
    perturbation_norms,
    smallest_fooling_eps,
    successful,
    within_budget,
)

# Five inputs: 0, 1, 2 are classified correctly; 3 and 4 are not.
LABELS = np.array([0, 1, 2, 0, 0])
PRED_CLEAN = np.array([0, 1, 2, 3, 4])
# The attack changes 0 and 2 (correct), leaves 1, changes 4 (already wrong), leaves 3.
PRED_ADV = np.array([1, 1, 0, 3, 1])


def test_fooling_ratio_counts_only_correctly_classified_inputs() -> None:
    # 2 of the 3 correctly classified inputs change; the wrong ones are not counted.
    assert fooling_ratio(PRED_CLEAN, PRED_ADV, LABELS) == pytest.approx(2 / 3)


def test_adversarial_accuracy_is_over_all_inputs() -> None:
    # Only input 1 is right after the attack: 1 of 5.
    assert adversarial_accuracy(PRED_ADV, LABELS) == pytest.approx(1 / 5)
    assert accuracy(PRED_CLEAN, LABELS) == pytest.approx(3 / 5)


def test_masks_by_hand() -> None:
    assert correctly_classified(PRED_CLEAN, LABELS).tolist() == [True, True, True, False, False]
    assert successful(PRED_CLEAN, PRED_ADV, LABELS).tolist() == [True, False, True, False, False]


def test_metrics_accept_tensors() -> None:
    as_tensor = [torch.as_tensor(a) for a in (PRED_CLEAN, PRED_ADV, LABELS)]
    assert fooling_ratio(*as_tensor) == pytest.approx(2 / 3)


def test_fooling_ratio_is_nan_without_correct_inputs() -> None:
    assert math.isnan(fooling_ratio([1, 1], [0, 0], [0, 0]))
    assert math.isnan(accuracy([], []))


def test_length_mismatch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="differ in length"):
        fooling_ratio([0, 1], [0, 1, 2], [0, 1])
    with pytest.raises(ConfigError, match="vector"):
        accuracy(np.zeros((2, 2)), np.zeros((2, 2)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1))
def test_fooling_ratio_properties(triples: list[tuple[int, int, int]]) -> None:
    clean, adv, labels = (np.array(v) for v in zip(*triples, strict=True))
    fr = fooling_ratio(clean, adv, labels)
    correct = clean == labels
    if not correct.any():
        assert math.isnan(fr)
        return
    assert 0.0 <= fr <= 1.0
    # On S a changed prediction is a wrong one: FR is the error rate on S.
    assert fr == pytest.approx(1 - accuracy(adv[correct], labels[correct]))
    assert fooling_ratio(clean, clean, labels) == 0.0


def test_perturbation_norms_closed_form() -> None:
    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0], x_adv[0, 0, 1, 1] = 0.3, -0.4  # ‖δ‖₂ = 0.5, ‖δ‖∞ = 0.4
    x_adv[1] = 0.1  # four entries of 0.1: ‖δ‖₂ = 0.2, ‖δ‖∞ = 0.1
    assert perturbation_norms(x, x_adv, "l2").tolist() == pytest.approx([0.5, 0.2])
    assert perturbation_norms(x, x_adv, "linf").tolist() == pytest.approx([0.4, 0.1])
    assert input_norms(x_adv, "linf").tolist() == pytest.approx([0.4, 0.1])
    with pytest.raises(ConfigError, match="unknown norm"):
        perturbation_norms(x, x_adv, "l3")


def test_mean_relative_perturbation_uses_the_mask_and_skips_zero_inputs() -> None:
    delta = [1.0, 2.0, 3.0, 4.0]
    x_norm = [2.0, 4.0, 0.0, 8.0]
    mask = [True, True, True, False]
    # Input 2 has ‖x‖ = 0 and input 3 is masked out: mean(1/2, 2/4) = 0.5.
    assert mean_relative_perturbation(delta, x_norm, mask) == pytest.approx(0.5)
    assert math.isnan(mean_relative_perturbation(delta, x_norm, [False] * 4))


def test_expected_correct_distance_is_guo_eq5() -> None:
    # E[1(y = ŷ)·‖r‖₂] over all five inputs: (1 + 2 + 3)/5, wrong inputs count 0.
    delta = [1.0, 2.0, 3.0, 100.0, 100.0]
    assert expected_correct_distance(delta, PRED_CLEAN, LABELS) == pytest.approx(6 / 5)


def test_within_budget_keeps_clean_prediction_outside_the_ball() -> None:
    pred = within_budget([0, 1, 2], [5, 6, 7], [0.1, 0.5, 0.3], eps=0.3)
    assert pred.tolist() == [5, 1, 7]


def test_smallest_fooling_eps_on_an_unsorted_grid() -> None:
    eps = [0.2, 0.0, 0.1]
    fooled_at = np.array(
        [
            [True, True, False],  # ε = 0.2
            [False, False, False],  # ε = 0.0
            [True, False, False],  # ε = 0.1
        ]
    )
    assert smallest_fooling_eps(eps, fooled_at).tolist() == [0.1, 0.2, math.inf]
    with pytest.raises(ConfigError, match="shape"):
        smallest_fooling_eps([0.1], fooled_at)

"""Gradient-masking guardrails: each check on numbers, then on a masked and a normal model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.evaluation import evaluate
from robustcompress.evaluation.masking import (
    DEGENERATE_GRADIENT_SHARE,
    check_gradients,
    check_iterative_vs_single_step,
    check_large_eps,
    check_monotone,
    degenerate_input_gradients,
    largest_rise,
)


def test_check_gradients_threshold() -> None:
    assert not check_gradients([False] * 9 + [True]).triggered  # 10% is not above 10%
    flag = check_gradients([False] * 8 + [True] * 2)
    assert flag.triggered and flag.value == pytest.approx(0.2)
    assert flag.threshold == DEGENERATE_GRADIENT_SHARE
    assert not check_gradients([]).checked


def test_check_iterative_vs_single_step() -> None:
    fgsm = {0.05: 0.60, 0.1: 0.90}
    ok = check_iterative_vs_single_step(fgsm, {"pgd": {0.05: 0.61, 0.1: 0.89}})
    assert not ok.triggered and ok.value == pytest.approx(0.01)
    bad = check_iterative_vs_single_step(fgsm, {"pgd": {0.05: 0.62, 0.1: 0.50}})
    assert bad.triggered and bad.value == pytest.approx(0.40)
    assert "ε=0.1" in bad.explanation
    # ε = 0 is the identity for both attacks and is not compared.
    assert not check_iterative_vs_single_step({0.0: 0.0}, {"pgd": {0.0: 0.0}}).checked
    assert not check_iterative_vs_single_step(fgsm, {"pgd": {0.2: 1.0}}).checked


def test_check_large_eps() -> None:
    assert check_large_eps(0.5).triggered
    assert not check_large_eps(1.0).triggered
    assert not check_large_eps(None).checked
    assert not check_large_eps(math.nan).checked


def test_largest_rise_closed_form() -> None:
    assert largest_rise([0.1, 0.0, 0.2], [0.5, 0.9, 0.1]) == pytest.approx(-0.4)
    assert largest_rise([0.0, 0.1, 0.2, 0.3], [0.9, 0.3, 0.5, 0.2]) == pytest.approx(0.2)
    assert math.isnan(largest_rise([0.1], [0.5]))


def test_check_monotone() -> None:
    down = check_monotone({"fgsm": ([0.0, 0.1, 0.2], [0.9, 0.5, 0.1])})
    assert not down.triggered and down.value == 0.0
    up = check_monotone({"fgsm": ([0.0, 0.1, 0.2], [0.9, 0.5, 0.6]), "pgd": ([0.1], [0.2])})
    assert up.triggered and up.value == pytest.approx(0.1)
    assert not check_monotone({"pgd": ([0.1], [0.2])}).checked


def test_degenerate_gradients_on_masked_and_normal_models(
    small_model: nn.Module, masked_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    x, y = small_batch
    assert degenerate_input_gradients(masked_model, x, y).all()
    assert not degenerate_input_gradients(small_model, x, y).any()


def test_non_finite_gradients_count_as_degenerate(small_batch: tuple[torch.Tensor, ...]) -> None:
    x, y = small_batch
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight[0, 0] = math.nan
    assert degenerate_input_gradients(model, x, y).all()


def _flags(record) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {flag.name: flag for flag in record.masking}


def test_masked_model_triggers_flags(
    masked_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    record = evaluate(masked_model, small_batch, ["fgsm", "pgd"], eps=[0.05, 0.1])
    flags = _flags(record)
    assert flags["degenerate_gradients"].triggered
    assert flags["degenerate_gradients"].value == 1.0
    assert flags["low_fooling_at_large_eps"].triggered
    assert flags["low_fooling_at_large_eps"].value == 0.0
    assert record.masking_suspected


def test_weak_iterative_attack_triggers_flag(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    # A "PGD" whose single step is tiny fools far fewer inputs than FGSM at ε = 0.3.
    weak = attacks.get("pgd", alpha=1e-4, steps=1)
    record = evaluate(small_model, small_batch, {"weak_pgd": weak}, eps=[0.3])
    flag = _flags(record)["iterative_weaker_than_single_step"]
    assert flag.triggered, flag
    assert "weak_pgd" in flag.explanation


def test_normal_model_triggers_no_flag(
    trained_fcnn: nn.Module, mnist_batch: tuple[torch.Tensor, ...]
) -> None:
    record = evaluate(trained_fcnn, mnist_batch, ["fgsm", "pgd"], eps=[0.02, 0.05, 0.1])
    flags = _flags(record)
    assert all(flag.checked for flag in record.masking)
    assert not record.masking_suspected, record.masking
    assert flags["degenerate_gradients"].value == 0.0
    assert flags["low_fooling_at_large_eps"].value >= 0.95


def test_reference_pgd_runs_when_no_iterative_attack_is_requested(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    record = evaluate(small_model, small_batch, "fgsm", eps=[0.05, 0.2])
    assert record.references["reference_pgd"].eps == [0.2]
    assert 1.0 in record.references["reference_fgsm"].eps
    assert _flags(record)["iterative_weaker_than_single_step"].checked
    assert not evaluate(small_model, small_batch, "fgsm", check_masking=False).masking

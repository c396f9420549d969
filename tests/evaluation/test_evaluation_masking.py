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
    check_black_box_vs_white_box,
    check_gradients,
    check_iterative_vs_single_step,
    check_large_eps,
    check_monotone,
    compared_as_black_box,
    compared_as_iterative,
    compared_as_single_step,
    compared_as_white_box,
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


def test_check_black_box_vs_white_box() -> None:
    white = {0.05: 0.30, 0.1: 0.60}
    flag = check_black_box_vs_white_box({"square": {0.05: 0.50, 0.1: 0.61}}, white)
    assert flag.triggered and flag.value == pytest.approx(0.20)
    assert "square at ε=0.05" in flag.explanation
    assert not check_black_box_vs_white_box({"square": {0.05: 0.31}}, white).triggered
    unchecked = check_black_box_vs_white_box({"square": {0.3: 0.9}}, white)
    assert not unchecked.checked and unchecked.value is None
    assert not check_black_box_vs_white_box({}, white).checked


def test_square_is_the_black_box_side_only() -> None:
    square = attacks.get("square").capabilities()
    pgd = attacks.get("pgd").capabilities()
    fgsm = attacks.get("fgsm").capabilities()
    assert compared_as_black_box(square, "linf") and not compared_as_white_box(square, "linf")
    assert not compared_as_iterative(square, "linf")  # random search: not held to FGSM's
    assert compared_as_white_box(pgd, "linf") and compared_as_white_box(fgsm, "linf")
    assert not compared_as_black_box(pgd, "linf")
    assert compared_as_iterative(attacks.get("autoattack").capabilities(), "linf")


def test_a_black_box_attack_beating_every_gradient_attack_is_flagged(
    masked_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    """Rounded inputs give zero gradients: PGD and FGSM cannot move, the reference
    Square (scores only) can."""
    record = evaluate(masked_model, small_batch, ["fgsm", "pgd"], eps=[0.3])
    assert record.references["reference_square"].eps == [0.3]
    flag = _flags(record)["black_box_stronger_than_white_box"]
    assert flag.triggered and flag.value is not None and flag.value > 0.2, flag
    asked = evaluate(
        masked_model, small_batch, {"sq": attacks.get("square", queries=200)}, eps=[0.3]
    )
    assert "reference_square" not in asked.references  # a requested one is used instead
    assert _flags(asked)["black_box_stronger_than_white_box"].triggered


def test_no_reference_square_on_large_evaluations(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    x, y = small_batch
    big = (x.repeat(26, 1, 1, 1), y.repeat(26))  # 1,040 inputs
    record = evaluate(small_model, big, ["fgsm", "pgd"], eps=[0.1])
    assert "reference_square" not in record.references
    flag = _flags(record)["black_box_stronger_than_white_box"]
    assert not flag.checked and "at most 1000 inputs" in flag.explanation
    assert "reference_square" in evaluate(small_model, small_batch, "pgd", eps=[0.1]).references


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


# --- which attacks the iterative-vs-single-step check compares: declared capabilities


def _stall_attack(iterative: bool) -> attacks.Attack:
    """A fixed-budget ℓ∞ attack defined here (not registered) that never moves the input."""

    class Stall(attacks.FixedEpsilonAttack):
        name = "stall"
        norm = "linf"

        def run(self, model, x, y, generator):  # type: ignore[no-untyped-def]
            return x.clone()

    Stall.iterative = iterative
    return Stall(eps=0.3)


def test_an_attack_declaring_iterative_is_checked(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    record = evaluate(small_model, small_batch, {"stall": _stall_attack(True)}, eps=[0.3])
    flag = _flags(record)["iterative_weaker_than_single_step"]
    assert flag.triggered, flag
    assert "stall" in flag.explanation
    assert "reference_pgd" not in record.references  # the requested one is the iterative one


def test_an_attack_not_declaring_iterative_is_not_checked(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    record = evaluate(small_model, small_batch, {"stall": _stall_attack(False)}, eps=[0.3])
    flag = _flags(record)["iterative_weaker_than_single_step"]
    assert "reference_pgd" in record.references  # no iterative attack was requested
    assert "stall" not in flag.explanation and not flag.triggered, flag


def test_a_single_step_attack_joins_the_baseline(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    """A declared single-step attack stronger than PGD (it cheats: 10× the budget) is
    the baseline PGD is held to; undeclared, it is not compared."""

    class Wide(attacks.FGSM):
        name = "wide_fgsm"
        scaled_sign_step = False

        def run(self, model, x, y, generator):  # type: ignore[no-untyped-def]
            return attacks.FGSM(eps=min(1.0, 10 * self.eps)).run(model, x, y, generator)

    pgd = attacks.get("pgd", steps=5, alpha=0.02)
    flags = _flags(evaluate(small_model, small_batch, {"wide": Wide(), "pgd": pgd}, eps=[0.05]))
    assert flags["iterative_weaker_than_single_step"].triggered

    Wide.single_step = False
    flags = _flags(evaluate(small_model, small_batch, {"wide": Wide(), "pgd": pgd}, eps=[0.05]))
    assert not flags["iterative_weaker_than_single_step"].triggered


def test_compared_as_iterative_and_single_step_read_the_flags() -> None:
    for name in ("pgd", "bim", "gnm"):
        cls = attacks.attack_class(name)
        assert compared_as_iterative(cls.capabilities(), "linf"), name
        assert not compared_as_single_step(cls.capabilities(), "linf"), name
    # ℓ2 attacks, targeted ILLC and minimal-perturbation attacks are not held to FGSM
    assert not compared_as_iterative(attacks.attack_class("pgd").capabilities(), "l2")
    assert not compared_as_iterative(attacks.attack_class("bim_ll").capabilities(), "linf")
    assert not compared_as_iterative(attacks.attack_class("deepfool_linf").capabilities(), "linf")
    for name in ("fgsm", "rfgsm"):
        assert compared_as_single_step(attacks.attack_class(name).capabilities(), "linf"), name
    assert not compared_as_single_step(attacks.attack_class("noise").capabilities(), None)


def test_scaled_sign_step_attacks_run_once_per_batch(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, ...]
) -> None:
    """The former FGSM special case, now any attack declaring ``scaled_sign_step``."""
    calls: list[float] = []

    class CountingFGSM(attacks.FGSM):
        name = "counting_fgsm"

        def run(self, model, x, y, generator):  # type: ignore[no-untyped-def]
            calls.append(self.eps)
            return super().run(model, x, y, generator)

    grid = [0.05, 0.1, 0.2]
    reused = evaluate(
        small_model, small_batch, CountingFGSM(chunk_size=None), eps=grid, check_masking=False
    )
    assert calls == [1.0]
    calls.clear()
    CountingFGSM.scaled_sign_step = False
    each = evaluate(
        small_model, small_batch, CountingFGSM(chunk_size=None), eps=grid, check_masking=False
    )
    assert calls == grid
    curve, direct = reused.attacks["counting_fgsm"], each.attacks["counting_fgsm"]
    assert (curve.pred_adv == direct.pred_adv).all()
    assert curve.delta_linf == pytest.approx(direct.delta_linf)

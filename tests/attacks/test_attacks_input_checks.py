"""Wrong uses of an attack are one-line ``AttackError``s, not NaNs, zeros or torch errors.

Each test fails without its check: zero steps used to return ``x`` (fooling ratio 0,
``nan`` norms), NaN inputs passed the [0, 1] check and came back NaN, a float64 batch
on a float32 model and out-of-range labels reached torch's own ``RuntimeError`` and
``IndexError``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch
from attack_helpers import make_attack
from torch import nn

from robustcompress import attacks
from robustcompress.attacks import FixedEpsilonAttack
from robustcompress.attacks.base import ITERATION_SETTINGS, output_width
from robustcompress.errors import AttackError

ITERATIVE = sorted(n for n in attacks.list_attacks() if attacks.attack_class(n).iterative)


def _iteration_settings(name: str) -> list[str]:
    fields = {f.name for f in dataclasses.fields(attacks.attack_class(name))}
    return [s for s in ITERATION_SETTINGS if s in fields]


def test_every_iterative_attack_counts_its_iterations() -> None:
    assert ITERATIVE == [
        "apgd",
        "apgd_l2",
        "apgd_t",
        "apgd_t_l2",
        "autoattack",
        "bim",
        "bim_ll",
        "cw_l2",
        "deepfool",
        "deepfool_linf",
        "fab",
        "fab_l2",
        "fab_t",
        "fab_t_l2",
        "gnm",
        "pgd",
        "pgd_l2",
        "square",
        "square_l2",
    ]
    for name in ITERATIVE:
        assert _iteration_settings(name), name


@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize(
    ("name", "setting"), [(n, s) for n in ITERATIVE for s in _iteration_settings(n)]
)
def test_iterative_attacks_reject_fewer_than_one_step(name, setting, value) -> None:
    message = rf"^{name}: {setting} must be an int ≥ 1 .*got {value}$"
    with pytest.raises(AttackError, match=message):
        attacks.get(name, **{setting: value})


def test_bim_keeps_kurakins_schedule_for_steps_none() -> None:
    assert attacks.get("bim", steps=None).iterations == 15


def test_a_new_iterative_attack_is_checked_without_code_of_its_own() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Stepper(FixedEpsilonAttack):
        name = "stepper"
        iterative: ClassVar[bool] = True
        steps: int = 3

    Stepper(steps=1)
    with pytest.raises(AttackError, match="stepper: steps must be an int ≥ 1"):
        Stepper(steps=0)

    @dataclasses.dataclass(kw_only=True)
    class OneShot(FixedEpsilonAttack):  # not iterative: its steps are its own business
        name = "one_shot"
        steps: int = 0

    OneShot(steps=0)


ALL = sorted(attacks.list_attacks())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "1 NaN"), (float("inf"), r"1 \+inf"), (-float("inf"), "1 -inf")],
)
def test_non_finite_inputs_are_rejected(name, value, shown, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x = x.clone()
    x[3, 0, 2, 5] = value
    message = rf"^{name}: inputs contain {shown} \(of {x.numel()} values\); attacks need finite"
    with pytest.raises(AttackError, match=message):
        make_attack(name)(tiny_model, x, y)


def test_non_finite_inputs_are_counted_by_kind(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x = x.clone()
    x[0, 0, 0, :2] = float("nan")
    x[1, 0, 0, 0] = float("inf")
    with pytest.raises(AttackError, match=r"inputs contain 2 NaN, 1 \+inf \(of 512 values\)"):
        attacks.get("fgsm")(tiny_model, x, y)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_inputs_of_another_dtype_than_the_model_are_rejected(
    name, dtype, tiny_model, tiny_batch
) -> None:
    x, y = tiny_batch
    message = (
        rf"^{name}: inputs are {dtype} but the model's parameters are torch.float32; "
        rf"convert the inputs with x.to\(torch.float32\)"
    )
    with pytest.raises(AttackError, match=message):
        make_attack(name)(tiny_model, x.to(dtype), y)


def test_a_float64_model_takes_float64_inputs(affine_problem) -> None:
    model, x, _ = affine_problem()
    y = model(x).argmax(dim=1)
    assert attacks.get("fgsm")(model, x, y).dtype == torch.float64
    with pytest.raises(AttackError, match=r"inputs are torch\.float32 .* torch\.float64"):
        attacks.get("fgsm")(model, x.float(), y)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("label", [10, 11, -1])
def test_labels_outside_the_models_classes_are_rejected(name, label, tiny_model, tiny_batch):
    x, y = tiny_batch
    y = y.clone()
    y[5] = label
    message = (
        rf"^{name}: label {label} is not a class of the model: labels must be in "
        r"\[0, 10\) for its 10 logits$"
    )
    with pytest.raises(AttackError, match=message):
        make_attack(name)(tiny_model, x, y)


def test_the_label_check_leaves_the_model_as_it_was(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = nn.Sequential(tiny_model, nn.BatchNorm1d(10)).train()
    stats = model[1].running_mean.clone()
    flags = [p.requires_grad for p in model.parameters()]
    attacks.get("fgsm")(model, x, y)
    assert model.training and torch.equal(model[1].running_mean, stats)
    assert [p.requires_grad for p in model.parameters()] == flags


def test_output_width_is_measured_once_and_again_for_a_new_head(tiny_model, tiny_batch):
    x, _ = tiny_batch
    calls = []
    handle = tiny_model.register_forward_hook(lambda *_: calls.append(1))
    assert output_width(tiny_model, x) == 10
    assert output_width(tiny_model, x) == 10
    assert len(calls) == 1
    tiny_model[-1] = nn.Linear(16, 4)
    assert output_width(tiny_model, x) == 4
    handle.remove()


def test_valid_inputs_give_the_same_result_as_before(tiny_model, tiny_batch) -> None:
    """The checks only read: an attack on valid inputs is the method's own output."""
    from robustcompress.attacks.pgd import pgd

    x, y = tiny_batch
    expected = pgd(
        tiny_model.eval().requires_grad_(False),
        x,
        y,
        eps=0.05,
        alpha=0.005,
        steps=20,
        norm="linf",
        random_start=False,
    )
    tiny_model.requires_grad_(True)
    assert torch.equal(attacks.get("pgd", chunk_size=None)(tiny_model, x, y), expected)

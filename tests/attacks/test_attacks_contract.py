"""The contract every registered attack keeps (one test, parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import RANDOM, make_attack

from robustcompress import attacks
from robustcompress.attacks import FixedEpsilonAttack

ALL = sorted(attacks.list_attacks())
FIXED = [n for n in ALL if issubclass(attacks.attack_class(n), FixedEpsilonAttack)]
DETERMINISTIC = [n for n in ALL if n not in RANDOM]


def test_registry_has_every_attack() -> None:
    expected = {
        "fgsm", "pgd", "pgd_l2", "gnm", "rfgsm", "bim", "bim_ll",
        "deepfool", "deepfool_linf", "cw_l2", "noise",
        "apgd", "apgd_l2", "apgd_t", "apgd_t_l2", "square", "autoattack",
        "fab", "fab_l2", "fab_t", "fab_t_l2", "square_l2",
    }  # fmt: skip
    assert set(ALL) == expected
    assert attacks.attack_class("linf_pgd") is attacks.attack_class("pgd")
    assert attacks.attack_class("apgd_ce") is attacks.attack_class("apgd")


@pytest.mark.parametrize("name", ALL)
def test_output_shape_dtype_and_box(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x_adv = make_attack(name, seed=0)(tiny_model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", FIXED)
def test_budget_holds(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = make_attack(name, eps=0.1, seed=0)
    delta = (attack(tiny_model, x, y) - x).flatten(1)
    if attack.norm == "linf":
        assert delta.abs().amax(dim=1).max() <= 0.1 + 1e-6
    else:
        assert delta.norm(dim=1).max() <= 0.1 + 1e-5


def test_gnm_l2_budget_holds(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    delta = make_attack("gnm", norm="l2", eps=0.3)(tiny_model, x, y) - x
    assert delta.flatten(1).norm(dim=1).max() <= 0.3 + 1e-5


@pytest.mark.parametrize("name", FIXED)
def test_zero_budget_is_identity(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    assert torch.equal(make_attack(name, eps=0.0, seed=0)(tiny_model, x, y), x)


@pytest.mark.parametrize("name", ALL)
def test_model_state_is_restored_and_no_grad_accumulates(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    params = list(tiny_model.parameters())
    params[0].requires_grad_(False)  # a mix of frozen and trainable parameters
    params[1].grad = torch.ones_like(params[1])  # a gradient left from training
    tiny_model.train()
    make_attack(name, seed=0)(tiny_model, x, y)
    assert tiny_model.training
    assert [p.requires_grad for p in params] == [False] + [True] * (len(params) - 1)
    assert torch.equal(params[1].grad, torch.ones_like(params[1]))
    assert all(p.grad is None for i, p in enumerate(params) if i != 1)


@pytest.mark.parametrize("name", ALL)
def test_works_inside_no_grad(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    expected = make_attack(name, seed=0)(tiny_model, x, y)
    with torch.no_grad():
        assert torch.equal(make_attack(name, seed=0)(tiny_model, x, y), expected)


@pytest.mark.parametrize("name", ALL)
def test_fixed_seed_reproduces(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    first = make_attack(name, seed=3)(tiny_model, x, y)
    assert torch.equal(make_attack(name, seed=3)(tiny_model, x, y), first)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("noise", {}),
        ("rfgsm", {}),
        ("pgd", {"random_start": True}),
        ("pgd_l2", {"random_start": True}),
    ],
)
def test_different_seeds_differ(name, settings, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    a = make_attack(name, seed=1, **settings)(tiny_model, x, y)
    b = make_attack(name, seed=2, **settings)(tiny_model, x, y)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_batch_size_does_not_change_the_result(name, tiny_model, tiny_batch) -> None:
    model = tiny_model.double()
    x, y = tiny_batch
    x = x.double()
    attack = make_attack(name)
    whole = attack(model, x, y)
    halves = torch.cat([attack(model, x[:4], y[:4]), attack(model, x[4:], y[4:])])
    torch.testing.assert_close(whole, halves, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_conv_model_and_empty_batch(name) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 6)
    )
    x = torch.rand(3, 3, 6, 6)
    y = torch.tensor([0, 1, 2])
    attack = make_attack(name, seed=0)
    assert attack(model, x, y).shape == x.shape
    assert attack(model, x[:0], y[:0]).shape == (0, 3, 6, 6)

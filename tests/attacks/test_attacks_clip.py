"""``clip``: every ℓ∞/ℓ2 budget attack keeps [0, 1] by default and leaves it with clip=False."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import affine_problem, make_attack
from torch import nn

from robustcompress import attacks
from robustcompress.attacks.ops import ThreatModel
from robustcompress.errors import AttackError
from robustcompress.evaluation import evaluate

#: The attacks with a ``clip`` setting (GNM had it first).
CLIPPED = ("fgsm", "pgd", "pgd_l2", "rfgsm", "bim", "bim_ll", "gnm")


def near_the_border(n: int = 16, d: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The affine problem with half of every input's pixels moved to within 0.02 of 0 or 1."""
    model, x, weight = affine_problem(n=n, d=d)
    g = torch.Generator().manual_seed(3)
    edge = torch.where(torch.rand(x.shape, generator=g) < 0.5, 0.01, 0.99).to(x.dtype)
    x = torch.where(torch.arange(d) % 2 == 0, edge, x)
    return model, x, weight


def labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


@pytest.mark.parametrize("name", CLIPPED)
def test_clip_is_on_by_default_and_must_be_a_bool(name: str) -> None:
    assert attacks.get(name).clip is True  # type: ignore[attr-defined]
    with pytest.raises(AttackError, match=f"{name}: clip must be true or false"):
        attacks.get(name, clip="no")


def test_unclipped_fgsm_is_x_plus_eps_sign_gradient_in_closed_form() -> None:
    # f(x) = Ax + b: ∇_x CE(f(x), y) = Aᵀ(softmax(f(x)) − e_y), so the step is known exactly.
    model, x, weight = near_the_border()
    y = (labels(model, x) + 1) % weight.shape[0]  # wrong labels: no saturated softmax
    eps = 0.05
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    grad = (p - nn.functional.one_hot(y, weight.shape[0]).to(p.dtype)) @ weight
    expected = x + eps * grad.sign().view_as(x)

    unclipped = attacks.get("fgsm", eps=eps, clip=False)(model, x, y)
    clipped = attacks.get("fgsm", eps=eps)(model, x, y)
    assert torch.equal(unclipped, expected)
    assert ((unclipped < 0) | (unclipped > 1)).any()
    assert torch.equal(clipped, unclipped.clamp(0, 1))
    assert not torch.equal(clipped, unclipped)


def test_unclipped_fgsm_is_evaluated_at_every_eps_not_derived_by_clipping() -> None:
    # The scaled-sign shortcut is clip_box(x + ε·s); without the box it would be wrong.
    model, x, _ = near_the_border(n=64)
    y = labels(model, x)
    fgsm = attacks.get("fgsm", clip=False)
    assert not fgsm.scaled_sign_step and not fgsm.capabilities()["scaled_sign_step"]
    assert attacks.get("fgsm").capabilities()["scaled_sign_step"]
    assert attacks.attack_class("fgsm").capabilities()["scaled_sign_step"]
    grid = [0.05, 0.2, 0.5]
    record = evaluate(
        model, (x, y), {"fgsm": "fgsm", "unclipped": fgsm}, eps=grid, check_masking=False
    )
    for i, eps in enumerate(grid):
        direct = labels(model, fgsm.replace(eps=eps)(model, x, y)).numpy()
        assert (record.attacks["unclipped"].pred_adv[i] == direct).all()
        delta = (fgsm.replace(eps=eps)(model, x, y) - x).abs().flatten(1).amax(dim=1)
        assert record.attacks["unclipped"].delta_linf[i] == pytest.approx(delta.numpy())
    assert record.attacks["unclipped"].settings["clip"] is False
    assert record.attacks["unclipped"].capabilities["single_step"]


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("pgd", {"eps": 0.05, "alpha": 0.02, "steps": 10}),
        ("pgd", {"eps": 0.05, "alpha": 0.02, "steps": 10, "random_start": True, "seed": 1}),
        ("pgd", {"eps": 0.05, "steps": 3, "random_start": True, "restarts": 2, "seed": 1}),
        ("pgd_l2", {"eps": 0.5, "alpha": 0.2, "steps": 10}),
        ("pgd_l2", {"eps": 0.5, "alpha": 0.2, "steps": 10, "random_start": True, "seed": 1}),
        ("bim", {"eps": 0.05}),
        ("bim_ll", {"eps": 0.05}),
        ("rfgsm", {"eps": 0.05, "seed": 1}),
        ("gnm", {"eps": 0.05}),
        ("gnm", {"eps": 0.5, "norm": "l2"}),
    ],
)
def test_unclipped_attacks_stay_in_the_eps_ball_and_leave_the_box(name: str, settings) -> None:
    model, x, _ = near_the_border()
    y = labels(model, x)
    attack = make_attack(name, **settings)
    threat = ThreatModel(attack.norm or "linf", settings["eps"])
    unclipped = attack.replace(clip=False)(model, x, y)
    clipped = attack(model, x, y)
    tol = 1e-9
    assert (threat.norm_of(unclipped - x) <= settings["eps"] + tol).all()
    assert ((unclipped < 0) | (unclipped > 1)).any()
    assert threat.contains(clipped, x, tol).all()
    assert not torch.equal(clipped, unclipped)


def test_unclipped_linf_pgd_is_projected_gradient_ascent_on_the_ball_alone() -> None:
    # One step of size α ≥ ε from x: every moved pixel lands on x ± ε, inside or not.
    model, x, _ = near_the_border()
    y = labels(model, x)
    one = attacks.get("pgd", eps=0.05, alpha=0.1, steps=1, clip=False)(model, x, y)
    fgsm = attacks.get("fgsm", eps=0.05, clip=False)(model, x, y)
    assert torch.equal(one, fgsm)


def test_threat_model_clip_switch_leaves_the_box_out() -> None:
    threat = ThreatModel("linf", 0.1)
    x = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    x_adv = torch.tensor([[-0.3, 0.55, 1.3]], dtype=torch.float64)
    expected = torch.tensor([[-0.1, 0.55, 1.1]], dtype=torch.float64)
    torch.testing.assert_close(threat.project(x_adv, x, clip=False), expected)
    torch.testing.assert_close(threat.project_(x_adv.clone(), x, clip=False), expected)
    torch.testing.assert_close(threat.project(x_adv, x), expected.clamp(0, 1))
    g = torch.Generator().manual_seed(0)
    start = threat.random_start(x.expand(1000, 3), g, clip=False)
    assert (start < 0).any() and (start > 1).any()
    assert ((start - x).abs() <= 0.1).all()

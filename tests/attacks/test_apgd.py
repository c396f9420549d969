"""APGD and APGD-T (Croce & Hein 2020): schedule, losses, closed forms, restarts, chunking."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import affine_min_distance, make_attack

from robustcompress import attacks
from robustcompress.attacks import ops
from robustcompress.attacks.apgd import apgd_run, checkpoints
from robustcompress.errors import AttackError

APGD = ["apgd", "apgd_l2", "apgd_t", "apgd_t_l2"]


def test_checkpoints_follow_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then 1.05 > 1)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1000)[:3] == [220, 410, 570]
    for n in range(1, 60):
        marks = checkpoints(n)
        assert marks == sorted(set(marks)) and all(0 < m < n for m in marks)


def test_dlr_is_the_scaled_margin() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.5, -2.0], [0.0, 2.0, 1.0, 0.0]])
    y = torch.tensor([0, 2])
    # z_π1 − z_π3: 3 − 0.5 and 2 − 0
    expected = torch.tensor([-(3.0 - 1.0) / (3.0 - 0.5), (2.0 - 1.0) / (2.0 - 0.0)])
    assert torch.allclose(ops.dlr(logits, y), expected)
    assert torch.allclose(ops.dlr(7.0 * logits + 1.0, y), expected)  # scale and shift free
    assert torch.equal(ops.dlr(logits, y) > 0, logits.argmax(dim=1) != y)
    assert torch.allclose(ops.per_sample_loss(logits, y, "dlr"), expected)


def test_targeted_dlr_formula() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.5, -2.0, -3.0]])
    y, t = torch.tensor([0]), torch.tensor([3])
    # −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) = −(3 + 2) / (3 − (0.5 − 2)/2)
    expected = -(3.0 + 2.0) / (3.0 - (0.5 - 2.0) / 2)
    assert ops.targeted_dlr(logits, y, t).item() == pytest.approx(expected)
    assert ops.targeted_dlr(4 * logits, y, t).item() == pytest.approx(expected)


def test_dlr_needs_enough_classes() -> None:
    with pytest.raises(AttackError, match=r"at least 3 classes.*loss='ce'"):
        ops.dlr(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AttackError, match="at least 4 classes"):
        ops.targeted_dlr(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), torch.ones(1).long())


def _affine_case(affine_problem, name: str, dual: str, loss: str) -> tuple[torch.Tensor, ...]:
    """Distances to the boundary, ε (their median) and which inputs the attack fooled."""
    model, x, weight = affine_problem(num_classes=5, n=64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(dim=1)
    distance = affine_min_distance(weight, logits, dual)
    eps = distance.median()
    every_target = {"target_classes": 4} if attacks.attack_class(name).targeted else {}
    x_adv = make_attack(name, eps=float(eps), loss=loss, seed=0, **every_target)(model, x, y)
    with torch.no_grad():
        fooled = model(x_adv).argmax(dim=1) != y
    assert not fooled[distance > eps * (1 + 1e-9)].any()  # beyond ε: impossible
    return distance, eps, fooled


@pytest.mark.parametrize(("name", "dual"), [("apgd_t", "l1"), ("apgd_t_l2", "l2")])
def test_targeted_dlr_finds_every_affine_boundary_within_the_budget(
    name, dual, affine_problem
) -> None:
    """An affine model with the box inactive: each pair of classes has its boundary at a
    known distance, and APGD-T aims at every class in turn, so every input closer than
    0.9ε to the boundary is fooled (exact, not a rate)."""
    distance, eps, fooled = _affine_case(affine_problem, name, dual, "dlr")
    assert fooled[distance < 0.9 * eps].all()


@pytest.mark.parametrize(("name", "dual"), [("apgd", "l1"), ("apgd_l2", "l2")])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_untargeted_apgd_on_an_affine_model(name, dual, loss, affine_problem) -> None:
    """Untargeted, the loss's ascent direction need not point at the nearest boundary,
    so only nearly every input within 0.9ε is fooled (measured with the tests' 20 steps:
    all, or all but one, of 28-31 inputs)."""
    distance, eps, fooled = _affine_case(affine_problem, name, dual, loss)
    inside = fooled[distance < 0.9 * eps]
    assert inside.float().mean() >= 0.9 and inside.numel() >= 20


@pytest.mark.parametrize("name", APGD)
def test_at_least_as_strong_as_pgd(name, trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    x, y = x[:100], y[:100]
    pgd = "pgd" if attacks.attack_class(name).norm == "linf" else "pgd_l2"
    eps = 0.05 if pgd == "pgd" else 1.0
    ours = make_attack(name, eps=eps, seed=0, steps=50)(trained_fcnn, x, y)
    theirs = make_attack(pgd, eps=eps, steps=20, alpha=eps / 10)(trained_fcnn, x, y)
    with torch.no_grad():
        robust_ours = (trained_fcnn(ours).argmax(1) == y).sum().item()
        robust_pgd = (trained_fcnn(theirs).argmax(1) == y).sum().item()
    assert robust_ours <= robust_pgd


def test_misclassified_inputs_are_returned_unchanged(tiny_model, tiny_batch) -> None:
    x, _ = tiny_batch
    with torch.no_grad():
        wrong = (tiny_model(x).argmax(dim=1) + 1) % 3
    for name in APGD:
        assert torch.equal(make_attack(name, seed=0)(tiny_model, x, wrong), x)


def test_run_returns_a_feasible_point_no_worse_than_its_start(trained_fcnn, mnist_batch) -> None:
    """``apgd_run``'s point for an input it does not fool has the highest loss seen,
    which is at least the loss at its start."""
    x, y = mnist_batch
    x, y = x[:64], y[:64]
    threat = ops.ThreatModel("linf", 0.02)
    start = threat.random_start(x, torch.Generator().manual_seed(0))
    with torch.enable_grad():
        x_adv, fooled = apgd_run(trained_fcnn, x, y, start, threat=threat, steps=30)
    with torch.no_grad():
        before = ops.per_sample_loss(trained_fcnn(start), y, "ce")
        after = ops.per_sample_loss(trained_fcnn(x_adv), y, "ce")
        assert torch.equal(fooled, trained_fcnn(x_adv).argmax(1) != y)
    assert (after[~fooled] >= before[~fooled]).all()
    assert threat.contains(x_adv, x, tol=1e-6).all()


@pytest.mark.parametrize("name", ["apgd", "apgd_t_l2"])
def test_chunking_changes_only_the_speed(name, trained_cnn, fashion_batch) -> None:
    x, y = fashion_batch
    x, y = x[:40], y[:40]
    whole = make_attack(name, seed=3, steps=10, chunk_size=None)(trained_cnn, x, y)
    chunked = make_attack(name, seed=3, steps=10, chunk_size=7)(trained_cnn, x, y)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_restarts_only_help(trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    one = make_attack("apgd", eps=0.03, steps=20, seed=1)(trained_fcnn, x, y)
    three = make_attack("apgd", eps=0.03, steps=20, seed=1, restarts=3)(trained_fcnn, x, y)
    with torch.no_grad():
        fooled_one = trained_fcnn(one).argmax(1) != y
        fooled_three = trained_fcnn(three).argmax(1) != y
    assert (fooled_three >= fooled_one).all()  # the first run is the same run


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"loss": "margin"}, "loss must be one of ce, dlr"),
        ({"rho": 1.5}, "rho and momentum must lie"),
        ({"momentum": 0}, "momentum must be a number > 0"),
        ({"restarts": 0}, "restarts must be an int ≥ 1"),
        ({"steps": 0}, "steps must be an int ≥ 1"),
    ],
)
def test_bad_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("apgd", **settings)


def test_targeted_settings() -> None:
    with pytest.raises(AttackError, match="target_classes must be an int ≥ 1"):
        attacks.get("apgd_t", target_classes=0)
    assert attacks.get("apgd_t").loss == "dlr" and attacks.get("apgd_t").targeted

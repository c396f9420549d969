"""DeepFool against the exact minimal perturbation of affine classifiers."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import affine_min_distance

from robustcompress import attacks
from robustcompress.attacks.deepfool import deepfool_step
from robustcompress.errors import AttackError


@pytest.mark.parametrize(
    ("name", "norm", "dual"), [("deepfool", 2, "l2"), ("deepfool_linf", float("inf"), "l1")]
)
def test_within_five_percent_of_the_affine_optimum(name, norm, dual, affine_problem) -> None:
    model, x, weight = affine_problem(num_classes=6, n=32)
    with torch.no_grad():
        logits = model(x)
    k = logits.argmax(dim=1)
    x_adv = attacks.get(name)(model, x, k)
    with torch.no_grad():
        assert (model(x_adv).argmax(dim=1) != k).all()
    assert x_adv.min() > 0 and x_adv.max() < 1  # the box never binds: the oracle applies
    found = torch.linalg.vector_norm((x_adv - x).flatten(1), ord=norm, dim=1)
    optimum = affine_min_distance(weight, logits, dual)
    ratio = found / optimum
    assert ratio.min() >= 1.0 - 1e-9  # nothing can beat the optimum
    assert ratio.max() <= 1.05


def test_step_formula_l2_and_linf() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])  # column 0 is the current class
    grads = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]])
    # w = ((3, 4), (0, 1)), f' = (−1, −2); ℓ2 distances ≈ (0.2, 2): target 1
    r2 = deepfool_step(logits, grads, "l2")
    torch.testing.assert_close(r2[0], (1 + 1e-4) / 25 * torch.tensor([3.0, 4.0]))
    # ℓ1 norms (7, 1): distances ≈ (1/7, 2): target 1, step (1/7)·sign(w)
    r_inf = deepfool_step(logits, grads, "linf")
    torch.testing.assert_close(r_inf[0], (1 + 1e-4) / 7 * torch.ones(2))


def test_samples_stop_once_fooled(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    full = attacks.get("deepfool")(tiny_model, x, y)
    one_step = attacks.get("deepfool", max_iter=1)(tiny_model, x, y)
    with torch.no_grad():
        fooled_after_one = tiny_model(one_step).argmax(dim=1) != y
    assert fooled_after_one.any()
    assert torch.equal(full[fooled_after_one], one_step[fooled_after_one])


@pytest.mark.parametrize("name", ["deepfool", "deepfool_linf"])
def test_max_iter_zero_is_rejected(name) -> None:
    with pytest.raises(AttackError, match=r"max_iter must be an int ≥ 1.*got 0"):
        attacks.get(name, max_iter=0)


@pytest.mark.parametrize(("name", "norm"), [("deepfool", 2), ("deepfool_linf", float("inf"))])
def test_eps_cap_projects_the_perturbation(name, norm, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    capped = attacks.get(name, eps=0.01)(tiny_model, x, y)
    sizes = torch.linalg.vector_norm((capped - x).flatten(1), ord=norm, dim=1)
    assert sizes.max() <= 0.01 + 1e-6


def test_fools_a_trained_network_with_small_perturbations(trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    with torch.no_grad():
        clean = trained_fcnn(x).argmax(dim=1)
    x_adv = attacks.get("deepfool")(trained_fcnn, x, y)
    with torch.no_grad():
        fooled = trained_fcnn(x_adv).argmax(dim=1) != clean
    assert fooled.float().mean() > 0.95
    # ρ₂ = ‖r‖₂/‖x‖₂ is a few percent on MNIST (Moosavi-Dezfooli et al. 2016, Table 1)
    rho = (x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert rho[fooled].mean() < 0.3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"overshoot": -0.1}, "overshoot"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("deepfool", **settings)

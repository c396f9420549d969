"""GNM on affine models, where the linearised margins are exact."""

from __future__ import annotations

import pytest
import torch

from robustcompress import attacks
from robustcompress.attacks.gnm import gnm_target_scores
from robustcompress.errors import AttackError

DUAL_ORD = {"linf": 1, "l2": 2}


def _margins(model, x, k):
    with torch.no_grad():
        logits = model(x)
    return logits.gather(1, k[:, None]) - logits


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_binary_affine_margin_drops_by_eps_times_dual_norm(norm, affine_problem) -> None:
    # one target only, so after T steps: m(x_T) = m(x) − ε‖a_k − a_j‖_q exactly
    model, x, weight = affine_problem(num_classes=2)
    with torch.no_grad():
        k = model(x).argmax(dim=1)
    eps = 0.04 if norm == "linf" else 0.2
    x_adv = attacks.get("gnm", eps=eps, steps=5, norm=norm)(model, x, k)
    assert x_adv.min() > 0 and x_adv.max() < 1  # clipping inactive: the oracle applies
    g_norm = torch.linalg.vector_norm(weight[0] - weight[1], ord=DUAL_ORD[norm])
    j = 1 - k
    before = _margins(model, x, k).gather(1, j[:, None]).squeeze(1)
    after = _margins(model, x_adv, k).gather(1, j[:, None]).squeeze(1)
    torch.testing.assert_close(after, before - eps * g_norm, rtol=0, atol=1e-10)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_one_step_reaches_the_lowest_linearised_margin(norm, affine_problem) -> None:
    # T = 1 on a K-class affine model: the new margin of the chosen target equals
    # min_j (m_j − ε‖g_j‖_q), and no class reaches a lower margin.
    model, x, weight = affine_problem(num_classes=6)
    with torch.no_grad():
        k = model(x).argmax(dim=1)
    eps = 0.02 if norm == "linf" else 0.1
    x_adv = attacks.get("gnm", eps=eps, steps=1, norm=norm)(model, x, k)
    diffs = weight[k][:, None, :] - weight[None, :, :]
    scores = _margins(model, x, k) - eps * torch.linalg.vector_norm(
        diffs, ord=DUAL_ORD[norm], dim=2
    )
    scores.scatter_(1, k[:, None], float("inf"))
    after = _margins(model, x_adv, k).scatter(1, k[:, None], float("inf"))
    torch.testing.assert_close(after.amin(dim=1), scores.amin(dim=1), rtol=0, atol=1e-10)


def test_target_scores_match_the_formula() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.5]])
    grads = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    scores, g = gnm_target_scores(logits, grads, torch.tensor([0]), step=0.5, norm="linf")
    # m = (0, 2, 0.5); g = (0, (1, −2), (0, −1)); ‖g‖₁ = (0, 3, 1)
    assert torch.equal(scores, torch.tensor([[float("inf"), 0.5, 0.0]]))
    assert torch.equal(g[0, 1], torch.tensor([1.0, -2.0]))


def test_loss_mode_on_a_binary_affine_model_is_fgsm(affine_problem) -> None:
    # the CE gradient of an affine binary model has the fixed sign of a_j − a_k, so
    # T steps of ε/T in ℓ∞ add up to one FGSM step of ε against the clean decision
    model, x, _ = affine_problem(num_classes=2)
    with torch.no_grad():
        k = model(x).argmax(dim=1)
    gnm = attacks.get("gnm", eps=0.04, steps=4, mode="loss")(model, x, k)
    fgsm = attacks.get("fgsm", eps=0.04)(model, x, k)
    torch.testing.assert_close(gnm, fgsm, rtol=0, atol=1e-12)


def test_uses_the_clean_prediction_not_the_label(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = attacks.get("gnm", eps=0.1)
    assert torch.equal(attack(tiny_model, x, y), attack(tiny_model, x, (y + 1) % 10))


def test_clip_false_reproduces_the_unclipped_reference(tiny_model) -> None:
    x = torch.ones(4, 1, 8, 8)  # on the box edge: half the steps point outside
    y = torch.zeros(4, dtype=torch.long)
    unclipped = attacks.get("gnm", eps=0.1, clip=False)(tiny_model, x, y)
    clipped = attacks.get("gnm", eps=0.1)(tiny_model, x, y)
    assert unclipped.max() > 1
    assert (unclipped - x).abs().max() <= 0.1 + 1e-6
    assert clipped.max() <= 1


def test_fools_a_trained_network(trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    with torch.no_grad():
        clean = trained_fcnn(x).argmax(dim=1)
        adv = trained_fcnn(attacks.get("gnm", eps=0.1)(trained_fcnn, x, y)).argmax(dim=1)
    assert (adv != clean).float().mean() > 0.5


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"norm": "l1"}, "norm"), ({"mode": "logit"}, "mode"), ({"steps": 0}, "steps")],
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("gnm", **settings)

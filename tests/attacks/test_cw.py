"""Carlini–Wagner ℓ2: the binary search over c and the affine optimum."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import affine_min_distance

from robustcompress import attacks
from robustcompress.attacks.cw import from_tanh_space, next_constants, to_tanh_space
from robustcompress.errors import AttackError


def test_within_25_percent_of_the_affine_optimum(affine_problem) -> None:
    model, x, weight = affine_problem(num_classes=4, n=12)
    with torch.no_grad():
        logits = model(x)
    k = logits.argmax(dim=1)
    x_adv = attacks.get("cw_l2", steps=200)(model, x, k)
    with torch.no_grad():
        assert (model(x_adv).argmax(dim=1) != k).all()
    found = (x_adv - x).flatten(1).norm(dim=1)
    ratio = found / affine_min_distance(weight, logits, "l2")
    assert ratio.min() >= 1.0 - 1e-6
    assert ratio.max() <= 1.25


def test_binary_search_schedule() -> None:
    c = torch.tensor([1e-3, 1e-3, 4.0])
    lower = torch.tensor([0.0, 0.0, 2.0])
    upper = torch.tensor([1e10, 1e10, 8.0])
    success = torch.tensor([True, False, False])
    c, lower, upper = next_constants(c, lower, upper, success)
    # success: upper = c, bisect; failure with no upper bound: ×10; failure: bisect up
    torch.testing.assert_close(c, torch.tensor([5e-4, 1e-2, 6.0]))
    torch.testing.assert_close(lower, torch.tensor([0.0, 1e-3, 4.0]))
    torch.testing.assert_close(upper, torch.tensor([1e-3, 1e10, 8.0]))


def test_tanh_change_of_variables_round_trips() -> None:
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    back = from_tanh_space(to_tanh_space(x))
    torch.testing.assert_close(back, x, rtol=0, atol=1e-6)


def test_unfooled_samples_are_returned_unchanged(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    # one short run with a tiny c cannot fool anything
    x_adv = attacks.get("cw_l2", steps=5, search_steps=1)(tiny_model, x, y)
    assert torch.equal(x_adv, x)


def test_confidence_enforces_a_logit_gap(affine_problem) -> None:
    model, x, _ = affine_problem(num_classes=3, n=6)
    with torch.no_grad():
        k = model(x).argmax(dim=1)
    x_adv = attacks.get("cw_l2", steps=100, search_steps=5, confidence=0.5)(model, x, k)
    with torch.no_grad():
        logits = model(x_adv)
    others = logits.scatter(1, k[:, None], float("-inf")).amax(dim=1)
    assert (others - logits.gather(1, k[:, None]).squeeze(1) > 0.5).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"search_steps": 0}, "search_steps"),
        ({"confidence": -1}, "confidence"),
        ({"abort_early": "yes"}, "abort_early"),
    ],
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("cw_l2", **settings)

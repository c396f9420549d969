"""Square (Andriushchenko et al. 2020): schedule, scores only, queries, input checks."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import make_attack
from torch import nn

from robustcompress import attacks
from robustcompress.attacks.square import centred_squares, square_fraction, square_pattern
from robustcompress.errors import AttackError


def test_window_share_schedule() -> None:
    assert square_fraction(0.8, 0, 10000) == 0.8
    assert square_fraction(0.8, 10, 10000) == 0.8  # halves *after* 10
    assert square_fraction(0.8, 11, 10000) == 0.4
    assert square_fraction(0.8, 51, 10000) == 0.2
    assert square_fraction(0.8, 9999, 10000) == pytest.approx(0.8 / 512)
    assert square_fraction(0.8, 11, 1000) == 0.2  # 110 of 10,000: rescaled to the budget


class _NoGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise RuntimeError("a gradient was asked for")


class _Opaque(nn.Module):
    """A model whose input gradient raises: only a score-based attack can run on it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(_NoGradient.apply(x))


@pytest.mark.parametrize(("name", "eps"), [("square", 0.1), ("square_l2", 1.5)])
def test_needs_scores_only(name, eps, trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    opaque = _Opaque(trained_fcnn)
    with pytest.raises(RuntimeError, match="a gradient was asked for"):
        make_attack("apgd", seed=0)(opaque, x[:4], y[:4])
    x_adv = make_attack(name, eps=eps, queries=300, seed=0)(opaque, x, y)
    with torch.no_grad():
        clean = (trained_fcnn(x).argmax(1) == y).float().mean()
        adv = (trained_fcnn(x_adv).argmax(1) == y).float().mean()
    assert adv < clean - 0.3  # it does break the model (measured: ℓ∞ 0.875 → 0.17)


def test_more_queries_extend_the_same_run(trained_fcnn, mnist_batch) -> None:
    """With one seed the draws are one sequence: a longer run continues the shorter one,
    so every input fooled within 100 queries is fooled within 300 as well."""
    x, y = mnist_batch
    short = make_attack("square", eps=0.05, queries=100, seed=4)(trained_fcnn, x, y)
    long = make_attack("square", eps=0.05, queries=300, seed=4)(trained_fcnn, x, y)
    with torch.no_grad():
        fooled_short = trained_fcnn(short).argmax(1) != y
        fooled_long = trained_fcnn(long).argmax(1) != y
    assert fooled_short.sum() > 0 and (fooled_long >= fooled_short).all()
    assert fooled_long.sum() > fooled_short.sum()


def test_perturbation_is_a_corner_of_the_ball_inside_the_box(trained_fcnn, mnist_batch) -> None:
    """Every pixel moves by ±ε unless the box stops it: Square samples vertices only."""
    x, y = mnist_batch
    x_adv = make_attack("square", eps=0.05, queries=50, seed=0)(trained_fcnn, x, y)
    with torch.no_grad():
        moved = trained_fcnn(x).argmax(1) == y  # misclassified inputs are left alone
    delta = (x_adv - x)[moved]
    at_corner = torch.isclose(delta.abs(), torch.tensor(0.05), atol=1e-6)
    at_box = torch.isclose(x_adv[moved], torch.zeros(())) | torch.isclose(
        x_adv[moved], torch.ones(())
    )
    assert (at_corner | at_box).all()


def test_l2_patterns() -> None:
    """Centred squares on 3×5: ring 0 (the centre) gets 1 + 1/4 + 1/9, ring 1 gets
    1/4 + 1/9, ring 2 gets 1/9; the update has unit norm, positive upper rows and
    negative lower ones."""
    patch = centred_squares(3, 5)
    ratio = patch / patch[1, 2]
    expected = torch.tensor(
        [[1 / 9, 13 / 36, 13 / 36, 13 / 36, 1 / 9]] * 1
        + [[1 / 9, 13 / 36, 49 / 36, 13 / 36, 1 / 9]]
        + [[1 / 9, 13 / 36, 13 / 36, 13 / 36, 1 / 9]],
        dtype=patch.dtype,
    ) / (49 / 36)
    torch.testing.assert_close(ratio, expected)
    pattern = square_pattern(5)
    assert pattern.shape == (5, 5) and pattern.norm().item() == pytest.approx(1.0)
    assert (pattern[:2] > 0).all() and (pattern[2:] < 0).all()


def test_l2_perturbation_spends_the_whole_budget(trained_fcnn, mnist_batch) -> None:
    """Every candidate has norm ε before the box clips it: the result has norm ≤ ε on
    MNIST (whose black background clips), and exactly ε on grey images with ε = 0.5,
    where no pixel can leave the box."""
    x, y = mnist_batch
    eps = 1.0
    x_adv = make_attack("square_l2", eps=eps, queries=50, seed=0)(trained_fcnn, x, y)
    with torch.no_grad():
        moved = trained_fcnn(x).argmax(1) == y
    size = (x_adv - x)[moved].flatten(1).norm(dim=1)
    assert size.max() <= eps * (1 + 1e-6) and size.min() > 0
    longer = make_attack("square_l2", eps=eps, queries=300, seed=0)(trained_fcnn, x, y)
    with torch.no_grad():
        fooled = [(trained_fcnn(a).argmax(1) != y)[moved].sum() for a in (x_adv, longer)]
    assert 0 < fooled[0] < fooled[1]
    grey = torch.full((4, 1, 28, 28), 0.5)
    with torch.no_grad():
        labels = trained_fcnn(grey).argmax(1)
    inside = make_attack("square_l2", eps=0.5, queries=20, seed=0)(trained_fcnn, grey, labels)
    torch.testing.assert_close((inside - grey).flatten(1).norm(dim=1), torch.full((4,), 0.5))


def test_bad_input_and_settings(tiny_model) -> None:
    with pytest.raises(AttackError, match="inputs must be images N×C×H×W"):
        attacks.get("square")(
            nn.Sequential(nn.Linear(4, 3)), torch.rand(2, 4), torch.zeros(2).long()
        )
    with pytest.raises(AttackError, match="p_init must lie in"):
        attacks.get("square", p_init=2.0)
    with pytest.raises(AttackError, match="queries must be an int ≥ 1"):
        attacks.get("square", queries=0)
    with pytest.raises(AttackError, match="loss must be one of margin, ce"):
        attacks.get("square", loss="dlr")


def test_output_is_an_ordinary_tensor(trained_fcnn, mnist_batch) -> None:
    """Square scores under ``torch.inference_mode``; what it returns must still work with
    autograd (adversarial training differentiates through the model at x_adv)."""
    x, y = mnist_batch
    x_adv = make_attack("square", eps=0.05, queries=20, seed=0)(trained_fcnn, x[:16], y[:16])
    assert not x_adv.is_inference()
    x_adv.requires_grad_(True)
    (grad,) = torch.autograd.grad(trained_fcnn(x_adv).sum(), x_adv)  # no parameter .grad
    assert grad.shape == x_adv.shape

"""Properties of the public operations in ``attacks.ops``: dual maximiser, projection, ball."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.attacks.ops import (
    dual_maximizer,
    flat_norm,
    gradient_sign,
    logit_gradients,
    margin,
    project,
    random_in_ball,
)

NORMS = ["linf", "l2"]
DUAL = {"linf": "l1", "l2": "l2"}

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _batch(seed: int, shape=(5, 3, 4)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_dual_maximizer_attains_the_dual_norm(norm, seed) -> None:
    g = _batch(seed)
    u = dual_maximizer(g, norm)
    torch.testing.assert_close(flat_norm(u, norm), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close((g * u).flatten(1).sum(1), flat_norm(g, DUAL[norm]))


def test_dual_maximizer_of_zero_is_zero() -> None:
    for norm in NORMS:
        assert torch.equal(dual_maximizer(torch.zeros(2, 3), norm), torch.zeros(2, 3))


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=25, deadline=None)
@given(seed=seeds, eps=st.floats(min_value=0.0, max_value=3.0))
def test_projection_lands_in_the_ball_and_is_idempotent(norm, seed, eps) -> None:
    delta = _batch(seed)
    projected = project(delta, eps, norm)
    assert (flat_norm(projected, norm) <= eps + 1e-9).all()
    torch.testing.assert_close(project(projected, eps, norm), projected)
    inside = flat_norm(delta, norm) <= eps
    torch.testing.assert_close(projected[inside], delta[inside])


@pytest.mark.parametrize("norm", NORMS)
def test_random_in_ball_stays_in_the_ball_and_fills_it(norm) -> None:
    like = torch.zeros(2000, 8)
    delta = random_in_ball(like, 0.5, norm, torch.Generator().manual_seed(0))
    radii = flat_norm(delta, norm)
    assert radii.max() <= 0.5
    # uniform in a d = 8 ball: P(radius ≤ r) = (r/ε)^d, so the median radius is ε·2^{−1/8}
    expected = 0.5 * 2 ** (-1 / 8) if norm == "l2" else None
    if expected is not None:
        assert radii.median().item() == pytest.approx(expected, rel=0.02)


def test_margin_is_positive_iff_misclassified() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    torch.testing.assert_close(margin(logits, y), torch.tensor([-1.0, 3.0]))


def test_logit_gradients_are_the_jacobian_rows() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    x = torch.rand(2, 4, dtype=torch.float32)
    logits, grads = logit_gradients(model, x)
    for n in range(2):
        jac = torch.autograd.functional.jacobian(model, x[n : n + 1]).squeeze(2).squeeze(0)
        torch.testing.assert_close(grads[n], jac)
    torch.testing.assert_close(logits, model(x))
    classes = torch.tensor([[2], [0]])
    _, picked = logit_gradients(model, x, classes)
    torch.testing.assert_close(picked[:, 0], torch.stack([grads[0, 2], grads[1, 0]]))


def test_gradient_sign_reuses_a_contiguous_gradient() -> None:
    grad = torch.tensor([[-2.0, 0.0, 3.0]])
    out = gradient_sign(grad)
    assert torch.equal(out, torch.tensor([[-1.0, 0.0, 1.0]]))
    assert out.data_ptr() == grad.data_ptr()


def test_gradient_sign_copies_an_expanded_gradient() -> None:
    grad = torch.tensor([-0.5]).expand(2, 3)  # six elements sharing one memory cell
    out = gradient_sign(grad)
    assert torch.equal(out, -torch.ones(2, 3))
    assert torch.equal(grad, torch.full((2, 3), -0.5))  # left untouched


def test_ops_is_public_and_private_utils_stay_inside_attacks() -> None:
    """Evaluation (and everything outside ``attacks/``) uses ``attacks.ops``, never ``_utils``."""
    import importlib
    from pathlib import Path

    import robustcompress

    ops = importlib.import_module("robustcompress.attacks.ops")
    for name in ("flat_norm", "project", "clip_box", "loss_gradient", "predict", "ThreatModel"):
        assert callable(getattr(ops, name)), name
    package = Path(robustcompress.__file__).parent
    evaluation = sorted((package / "evaluation").rglob("*.py"))
    assert evaluation
    for path in evaluation:
        assert "_utils" not in path.read_text(encoding="utf-8"), path
    for path in package.rglob("*.py"):
        if path.parent.name != "attacks":
            assert "attacks._utils" not in path.read_text(encoding="utf-8"), path

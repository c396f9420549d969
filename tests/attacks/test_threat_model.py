"""ThreatModel against closed forms: ℓ∞ clamp, ℓ2 rescale onto the ball, box clip, norms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress import attacks
from robustcompress.attacks import ThreatModel, ops
from robustcompress.errors import AttackError

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _batch(seed: int, shape: tuple[int, ...] = (6, 2, 5), scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, generator=g, dtype=torch.float64)


def test_exported_from_the_package() -> None:
    assert attacks.ThreatModel is ops.ThreatModel
    assert "ThreatModel" in attacks.__all__ and "ops" in attacks.__all__


def test_norm_of_closed_forms() -> None:
    delta = torch.tensor([[3.0, -4.0], [0.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(
        ThreatModel("l2", 1.0).norm_of(delta), torch.tensor([5.0, 0.5], dtype=torch.float64)
    )
    torch.testing.assert_close(
        ThreatModel("linf", 1.0).norm_of(delta), torch.tensor([4.0, 0.5], dtype=torch.float64)
    )


def test_linf_projection_is_a_coordinate_clamp() -> None:
    delta = torch.tensor([[0.3, -0.05, -0.2, 0.1]], dtype=torch.float64)
    projected = ThreatModel("linf", 0.1).project_delta(delta)
    expected = torch.tensor([[0.1, -0.05, -0.1, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(projected, expected)


def test_l2_projection_rescales_onto_the_sphere() -> None:
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    projected = ThreatModel("l2", 1.0).project_delta(delta)
    # outside: δ·ε/‖δ‖ = (0.6, 0.8); inside: unchanged
    expected = torch.tensor([[0.6, 0.8], [0.3, 0.4]], dtype=torch.float64)
    torch.testing.assert_close(projected, expected)


def test_project_around_x_then_box() -> None:
    x = torch.tensor([[0.95, 0.5, 0.02]], dtype=torch.float64)
    x_adv = torch.tensor([[1.3, 0.45, -0.4]], dtype=torch.float64)
    # ℓ∞ ε = 0.1: clamp δ = (0.35, −0.05, −0.42) to (0.1, −0.05, −0.1), then box [0, 1]
    linf = ThreatModel("linf", 0.1).project(x_adv, x)
    torch.testing.assert_close(linf, torch.tensor([[1.0, 0.45, 0.0]], dtype=torch.float64))
    # a narrower box clips to it
    narrow = ThreatModel("linf", 0.1, box=(0.1, 0.9)).project(x_adv, x)
    torch.testing.assert_close(narrow, torch.tensor([[0.9, 0.45, 0.1]], dtype=torch.float64))


def test_clip_box() -> None:
    x = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.7])
    assert torch.equal(ThreatModel("l2", 1.0).clip_box(x), torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]))
    assert torch.equal(
        ThreatModel("l2", 1.0, box=(0.2, 0.8)).clip_box(x),
        torch.tensor([0.2, 0.2, 0.3, 0.8, 0.8]),
    )


@pytest.mark.parametrize("norm", ["linf", "l2"])
@settings(max_examples=30, deadline=None)
@given(seed=seeds, eps=st.floats(min_value=0.0, max_value=2.0))
def test_projection_is_feasible_idempotent_and_in_place_equal(norm, seed, eps) -> None:
    threat = ThreatModel(norm, eps)
    x = _batch(seed).abs().clamp(max=1.0)
    x_adv = x + _batch(seed + 1, scale=0.7)
    projected = threat.project(x_adv, x)
    assert threat.contains(projected, x, tol=1e-9).all()
    torch.testing.assert_close(threat.project(projected, x), projected)
    in_place = x_adv.clone()
    assert threat.project_(in_place, x) is in_place
    assert torch.equal(in_place, projected)
    # inside the ball and the box a point is left where it is
    inside = threat.contains(x_adv, x)
    torch.testing.assert_close(projected[inside], x_adv[inside])


@pytest.mark.parametrize("norm", ["linf", "l2"])
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_steepest_ascent_is_a_unit_step_attaining_the_dual_norm(norm, seed) -> None:
    threat = ThreatModel(norm, 0.5)
    g = _batch(seed)
    u = threat.steepest_ascent(g)
    torch.testing.assert_close(threat.norm_of(u), torch.ones(6, dtype=torch.float64))
    dual = ops.flat_norm(g, ops.DUAL_NORM[norm])
    torch.testing.assert_close((g * u).flatten(1).sum(1), dual)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_feasible_and_seeded(norm) -> None:
    threat = ThreatModel(norm, 0.3)
    x = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    a = threat.random_start(x, torch.Generator().manual_seed(1))
    b = threat.random_start(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert threat.contains(a, x, tol=1e-6).all()


def test_eps_zero_is_the_identity_and_inf_only_clips() -> None:
    x = torch.rand(3, 5, generator=torch.Generator().manual_seed(0))
    x_adv = x + 0.2
    assert torch.equal(ThreatModel("linf", 0).project(x_adv, x), x)
    assert torch.equal(ThreatModel("l2", math.inf).project(x_adv, x), x_adv.clamp(0, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": "l1", "eps": 0.1},
        {"norm": "linf", "eps": -0.1},
        {"norm": "linf", "eps": math.nan},
        {"norm": "linf", "eps": True},
        {"norm": "linf", "eps": "0.1"},
        {"norm": "l2", "eps": 1.0, "box": (1.0, 0.0)},
        {"norm": "l2", "eps": 1.0, "box": (0.0,)},
        {"norm": "l2", "eps": 1.0, "box": (0.0, math.inf)},
    ],
)
def test_invalid_settings_raise(kwargs) -> None:
    with pytest.raises(AttackError):
        ThreatModel(**kwargs)


def test_frozen_and_replaceable() -> None:
    threat = ThreatModel("linf", 0.1)
    with pytest.raises(AttributeError):
        threat.eps = 0.2  # type: ignore[misc]
    assert threat.replace(eps=0.2) == ThreatModel("linf", 0.2, (0.0, 1.0))
    assert ThreatModel("linf", 0.1, box=(0, 1)).box == (0.0, 1.0)

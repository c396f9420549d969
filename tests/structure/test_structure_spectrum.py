"""Singular values and the spectral measures built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.errors import ConfigError
from robustcompress.structure import (
    numerical_rank,
    singular_value_std,
    singular_values,
    spectral_norm,
    stable_rank,
)

PROPERTY = settings(max_examples=40, deadline=None)


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    k = draw(st.integers(1, min(m, n)))
    return rng.standard_normal((m, k)) @ rng.standard_normal((k, n))


@PROPERTY
@given(matrices())
def test_singular_values_match_scipy(a: np.ndarray) -> None:
    sigma = singular_values(torch.from_numpy(a).float())
    assert sigma.dtype == torch.float64 and sigma.dim() == 1
    assert len(sigma) == min(a.shape)
    assert torch.all(sigma[:-1] >= sigma[1:])
    reference = scipy.linalg.svdvals(a.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(sigma.numpy(), reference, rtol=1e-10, atol=1e-12 * reference[0])
    assert spectral_norm(torch.from_numpy(a)) == pytest.approx(np.linalg.norm(a, 2), rel=1e-10)
    np.testing.assert_allclose(
        singular_value_std(torch.from_numpy(a)), np.std(scipy.linalg.svdvals(a)), rtol=1e-9
    )


@PROPERTY
@given(matrices())
def test_one_le_stable_rank_le_rank(a: np.ndarray) -> None:
    srank = stable_rank(torch.from_numpy(a))
    assert 1.0 - 1e-9 <= srank <= np.linalg.matrix_rank(a) + 1e-9
    fro, two = np.linalg.norm(a, "fro"), np.linalg.norm(a, 2)
    assert srank == pytest.approx(fro**2 / two**2, rel=1e-9)


def test_wide_and_tall_orientations_agree() -> None:
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(singular_values(w), singular_values(w.T), rtol=1e-13, atol=0)


def test_closed_forms() -> None:
    assert stable_rank(torch.eye(5)) == pytest.approx(5.0)
    assert stable_rank(torch.ones(3, 4)) == pytest.approx(1.0)
    assert spectral_norm(torch.diag(torch.tensor([3.0, -7.0, 1.0]))) == pytest.approx(7.0)
    # σ = (3, 1): population std = 1
    assert singular_value_std(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(1.0)
    q = torch.linalg.qr(
        torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )[0]
    assert singular_value_std(2.5 * q) == pytest.approx(0.0, abs=1e-12)


def test_singular_value_std_scales_linearly() -> None:
    w = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    assert singular_value_std(-4.0 * w) == pytest.approx(4.0 * singular_value_std(w), rel=1e-12)


@pytest.mark.parametrize(
    ("energy", "expected"), [(0.5, 1), (0.64, 1), (0.65, 2), (0.9, 2), (0.95, 3), (1.0, 3)]
)
def test_numerical_rank_of_diagonal(energy: float, expected: int) -> None:
    # σ² = 9, 4, 1 (total 14): the first k directions carry 9/14 ≈ 0.643, 13/14 ≈ 0.929, 1
    w = torch.diag(torch.tensor([1.0, -3.0, 2.0]))
    assert numerical_rank(w, energy) == expected


def test_numerical_rank_ignores_zero_singular_values() -> None:
    w = torch.diag(torch.tensor([2.0, 1.0, 0.0, 0.0]))
    assert numerical_rank(w, energy=1.0) == 2
    assert numerical_rank(w) == 2  # default 0.99: 4/5 < 0.99


def test_zero_matrix() -> None:
    zero = torch.zeros(4, 3)
    assert math.isnan(stable_rank(zero))
    assert spectral_norm(zero) == 0.0
    assert singular_value_std(zero) == 0.0
    assert numerical_rank(zero) == 0
    assert torch.equal(singular_values(zero), torch.zeros(3, dtype=torch.float64))


def test_requires_grad_and_return_types() -> None:
    w = torch.randn(3, 4, requires_grad=True)
    assert isinstance(spectral_norm(w), float)
    assert isinstance(stable_rank(w), float)
    assert isinstance(singular_value_std(w), float)
    assert isinstance(numerical_rank(w), int)
    assert not singular_values(w).requires_grad
    assert w.grad is None


@pytest.mark.parametrize("energy", [0.0, -0.1, 1.5, float("nan")])
def test_invalid_energy_raises(energy: float) -> None:
    with pytest.raises(ConfigError, match="energy"):
        numerical_rank(torch.eye(3), energy)


def test_non_matrix_raises() -> None:
    with pytest.raises(ConfigError, match="2-D"):
        singular_values(torch.ones(5))

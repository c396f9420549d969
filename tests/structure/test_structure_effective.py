"""Effective sparsity and effective rank: closed forms, invariances, bounds, references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.errors import ConfigError
from robustcompress.structure import effective_rank, effective_sparsity, exact_sparsity

PROPERTY = settings(max_examples=40, deadline=None)


def random_matrix(seed: int, m: int, n: int, rank: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if rank is None:
        return torch.randn(m, n, generator=g, dtype=torch.float64)
    return torch.randn(m, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, n, generator=g, dtype=torch.float64
    )


def orthogonal(seed: int, n: int) -> torch.Tensor:
    return torch.linalg.qr(random_matrix(seed, n, n))[0]


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    m = draw(st.integers(1, 6))
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()):  # sparse entries
        a[rng.random((m, n)) < 0.5] = 0.0
    if draw(st.booleans()):  # low rank
        k = draw(st.integers(1, min(m, n)))
        a = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    return a


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_identity_has_r_and_s_equal_sqrt_n(n: int) -> None:
    eye = torch.eye(n)
    assert effective_rank(eye) == pytest.approx(math.sqrt(n), rel=1e-12)
    assert effective_sparsity(eye) == pytest.approx(math.sqrt(n), rel=1e-12)


def test_effective_rank_of_eye4_is_2() -> None:
    assert effective_rank(torch.eye(4)) == pytest.approx(2.0, abs=1e-12)
    assert isinstance(effective_rank(torch.eye(4)), float)


def test_rank_one_matrix_has_effective_rank_one() -> None:
    uv = random_matrix(0, 7, 1) @ random_matrix(1, 1, 5)
    assert effective_rank(uv) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_k_sparse_equal_magnitude_vector_has_s_sqrt_k(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    x = torch.zeros(50)
    support = torch.randperm(50, generator=g)[:k]
    x[support] = 0.7 * torch.where(torch.rand(k, generator=g) < 0.5, -1.0, 1.0)
    assert effective_sparsity(x) == pytest.approx(math.sqrt(k), rel=1e-12)
    assert effective_sparsity(x.reshape(5, 10)) == pytest.approx(math.sqrt(k), rel=1e-12)


@pytest.mark.parametrize("c", [-3.0, 1e-4, 1e4])
def test_scale_invariance(c: float) -> None:
    w = random_matrix(2, 6, 4)
    assert effective_rank(c * w) == pytest.approx(effective_rank(w), rel=1e-12)
    assert effective_sparsity(c * w) == pytest.approx(effective_sparsity(w), rel=1e-12)


def test_effective_rank_is_invariant_under_orthogonal_transforms() -> None:
    w = random_matrix(3, 6, 4, rank=3)
    transformed = orthogonal(4, 6) @ w @ orthogonal(5, 4)
    assert effective_rank(transformed) == pytest.approx(effective_rank(w), rel=1e-12)
    # effective sparsity is not rotation invariant: a rotated identity is dense
    assert effective_sparsity(orthogonal(6, 4)) > effective_sparsity(torch.eye(4)) + 0.1


@pytest.mark.parametrize("m", [2, 9, 25])
def test_kronecker_with_identity_scales_effective_rank_by_sqrt_m(m: int) -> None:
    """Appendix B says W̃ ⊗ I_m and W̃ have the same effective rank; in fact r grows by √m."""
    w_tilde = random_matrix(7, 4, 6)
    big = torch.kron(w_tilde, torch.eye(m, dtype=torch.float64))
    assert effective_rank(big) == pytest.approx(math.sqrt(m) * effective_rank(w_tilde), rel=1e-10)
    assert effective_sparsity(big) == pytest.approx(
        math.sqrt(m) * effective_sparsity(w_tilde), rel=1e-12
    )


@PROPERTY
@given(matrices())
def test_bounds_and_agreement_with_numpy(a: np.ndarray) -> None:
    w = torch.from_numpy(a)
    if not np.any(a):
        assert math.isnan(effective_rank(w)) and math.isnan(effective_sparsity(w))
        return
    r, s = effective_rank(w), effective_sparsity(w)
    rank = np.linalg.matrix_rank(a)
    assert 1.0 - 1e-9 <= r <= math.sqrt(rank) + 1e-9
    assert 1.0 - 1e-9 <= s <= math.sqrt(np.count_nonzero(a)) + 1e-9 <= math.sqrt(a.size) + 1e-9
    fro = np.linalg.norm(a, "fro")
    assert r == pytest.approx(np.linalg.norm(a, "nuc") / fro, rel=1e-9)
    assert s == pytest.approx(np.abs(a).sum() / fro, rel=1e-9)


def test_zero_matrix_gives_nan_ratios_and_full_exact_sparsity() -> None:
    zero = torch.zeros(3, 5)
    assert math.isnan(effective_rank(zero))
    assert math.isnan(effective_sparsity(zero))
    assert exact_sparsity(zero) == 1.0


def test_exact_sparsity_counts_zeros_and_respects_atol() -> None:
    w = torch.tensor([[0.0, 1.0, -1e-4], [2.0, 0.0, 3.0]])
    assert exact_sparsity(w) == pytest.approx(2 / 6)
    assert exact_sparsity(w, atol=1e-3) == pytest.approx(3 / 6)
    assert exact_sparsity(torch.ones(4, 4)) == 0.0


def test_inputs_requiring_grad_are_detached() -> None:
    w = torch.randn(4, 3, requires_grad=True)
    assert isinstance(effective_rank(w), float)
    assert isinstance(effective_sparsity(w), float)
    assert isinstance(exact_sparsity(w), float)
    assert w.grad is None


def test_float32_input_is_measured_in_float64() -> None:
    w = random_matrix(8, 5, 5)
    assert effective_rank(w.float()) == pytest.approx(effective_rank(w), rel=1e-6)


def test_invalid_inputs_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="2-D"):
        effective_rank(torch.ones(2, 3, 4))
    with pytest.raises(ConfigError, match="NaN"):
        effective_sparsity(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ConfigError, match="empty"):
        effective_rank(torch.ones(0, 3))
    with pytest.raises(ConfigError, match="atol"):
        exact_sparsity(torch.ones(2, 2), atol=-1.0)
    with pytest.raises(ConfigError, match=r"torch\.Tensor"):
        effective_rank(np.eye(3))  # type: ignore[arg-type]

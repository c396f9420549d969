"""Closed-form proximal operators: soft-thresholding, singular-value thresholding, thin SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.errors import ConfigError, ModelError
from robustcompress.regularizers import (
    l1_norm,
    nuclear_norm,
    singular_value_threshold,
    soft_threshold,
    thin_svd,
)


def test_soft_threshold_closed_form_and_exact_zeros() -> None:
    W = torch.tensor([[-2.0, -0.5, 0.0], [0.3, 0.5, 1.25]], dtype=torch.float64)
    out = soft_threshold(W, 0.5)
    expected = torch.tensor([[-1.5, 0.0, 0.0], [0.0, 0.0, 0.75]], dtype=torch.float64)
    assert torch.equal(out, expected)
    assert int((out == 0).sum()) == 4  # |w| ≤ τ becomes exactly zero, including |w| = τ


def test_soft_threshold_tau_zero_is_identity_and_negative_tau_raises() -> None:
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(soft_threshold(W, 0.0), W)
    with pytest.raises(ConfigError, match="tau"):
        soft_threshold(W, -0.1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    tau=st.floats(0.0, 2.0),
)
def test_soft_threshold_minimises_the_prox_objective(seed: int, tau: float) -> None:
    """prox(V) beats random nearby points on ½‖W − V‖² + τ‖W‖₁ (it is the minimiser)."""
    g = torch.Generator().manual_seed(seed)
    V = torch.randn(4, 5, generator=g, dtype=torch.float64)
    P = soft_threshold(V, tau)

    def objective(W: torch.Tensor) -> float:
        return float(0.5 * ((W - V) ** 2).sum() + tau * l1_norm(W))

    best = objective(P)
    for _ in range(20):
        other = P + 0.1 * torch.randn(4, 5, generator=g, dtype=torch.float64)
        assert objective(other) >= best - 1e-12


def _random_matrix_with_spectrum(
    singular_values: list[float], m: int, n: int, seed: int = 0
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = len(singular_values)
    U, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ V.T


def test_singular_value_threshold_matches_numpy_closed_form() -> None:
    W = _random_matrix_with_spectrum([5.0, 3.0, 1.0, 0.4], 6, 8)
    tau = 0.7
    U, S, Vt = np.linalg.svd(W.numpy(), full_matrices=False)
    expected = (U * np.maximum(S - tau, 0.0)) @ Vt
    out = singular_value_threshold(W, tau)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(
        torch.linalg.svdvals(out)[:4].numpy(), [4.3, 2.3, 0.3, 0.0], atol=1e-12
    )


def test_singular_value_threshold_lowers_the_rank() -> None:
    W = _random_matrix_with_spectrum([4.0, 2.0, 1.0, 0.5, 0.25], 5, 7)
    assert torch.linalg.matrix_rank(W) == 5
    for tau, rank in [(0.3, 4), (0.75, 3), (1.5, 2), (3.0, 1), (4.0, 0)]:
        assert int(torch.linalg.matrix_rank(singular_value_threshold(W, tau))) == rank


def test_singular_value_threshold_with_repeated_singular_values() -> None:
    """Equal singular values are shrunk equally: SVT(c·Q, τ) = (c − τ)·Q for orthogonal Q."""
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)).double())
    out = singular_value_threshold(3.0 * Q, 1.0)
    torch.testing.assert_close(out, 2.0 * Q, atol=1e-12, rtol=0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.0, 3.0))
def test_singular_value_threshold_minimises_the_prox_objective(seed: int, tau: float) -> None:
    """prox(V) beats random nearby points on ½‖W − V‖_F² + τ‖W‖_*."""
    g = torch.Generator().manual_seed(seed)
    V = torch.randn(4, 6, generator=g, dtype=torch.float64)
    P = singular_value_threshold(V, tau)

    def objective(W: torch.Tensor) -> float:
        return float(0.5 * ((W - V) ** 2).sum() + tau * nuclear_norm(W))

    best = objective(P)
    for _ in range(20):
        other = P + 0.05 * torch.randn(4, 6, generator=g, dtype=torch.float64)
        assert objective(other) >= best - 1e-10


def test_singular_value_threshold_rejects_non_matrices() -> None:
    with pytest.raises(ModelError, match="2-D"):
        singular_value_threshold(torch.zeros(2, 3, 3, 3), 0.1)


@pytest.mark.parametrize("shape", [(6, 30), (30, 6), (8, 8), (5, 9), (1, 12), (12, 1)])
def test_thin_svd_agrees_with_torch_svd(shape: tuple[int, int]) -> None:
    W = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    U, S, Vh = thin_svd(W)
    k = min(shape)
    assert U.shape == (shape[0], k) and S.shape == (k,) and Vh.shape == (k, shape[1])
    torch.testing.assert_close(S, torch.linalg.svdvals(W), atol=1e-12, rtol=0)
    torch.testing.assert_close((U * S) @ Vh, W, atol=1e-12, rtol=0)
    torch.testing.assert_close(U.T @ U, torch.eye(k, dtype=W.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(Vh @ Vh.T, torch.eye(k, dtype=W.dtype), atol=1e-12, rtol=0)

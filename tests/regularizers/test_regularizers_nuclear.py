"""Nuclear-norm regularization, eq. (6): value, gradient U Vᵀ, convolutions, prox."""

from __future__ import annotations

import torch
from torch import nn

from robustcompress.models import create_model, weight_matrices
from robustcompress.regularizers import Nuclear, nuclear_norm, singular_value_threshold


def _matrix_with_spectrum(singular_values: list[float], m: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    k = len(singular_values)
    U, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ V.T


def _grad(W: torch.Tensor) -> torch.Tensor:
    W = W.clone().requires_grad_(True)
    nuclear_norm(W).backward()
    assert W.grad is not None
    return W.grad


def test_nuclear_norm_is_the_sum_of_singular_values() -> None:
    W = _matrix_with_spectrum([3.0, 2.0, 0.5], 5, 4)
    torch.testing.assert_close(nuclear_norm(W), torch.tensor(5.5, dtype=torch.float64))


def test_gradient_is_U_V_transpose_for_distinct_singular_values() -> None:
    W = torch.randn(5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(W, full_matrices=False)
    torch.testing.assert_close(_grad(W), U @ Vh, atol=1e-12, rtol=0)


def test_gradient_with_repeated_singular_values_is_the_polar_factor() -> None:
    """For W = c·Q (all σ equal) the gradient is Q, whatever basis the SVD picks."""
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)).double())
    torch.testing.assert_close(_grad(2.5 * Q), Q, atol=1e-12, rtol=0)


def test_gradient_at_zero_singular_values_is_the_minimum_norm_subgradient() -> None:
    W = _matrix_with_spectrum([2.0, 1.0], 5, 4)  # rank 2 in a 5 × 4 matrix
    U, _, Vh = torch.linalg.svd(W, full_matrices=False)
    expected = U[:, :2] @ Vh[:2]
    torch.testing.assert_close(_grad(W), expected, atol=1e-10, rtol=0)
    assert torch.equal(_grad(torch.zeros(3, 4, dtype=torch.float64)), torch.zeros(3, 4).double())


def test_convolutions_use_the_reshaped_kernel() -> None:
    torch.manual_seed(0)
    model = create_model("cnn")
    kernel = weight_matrices(model)[1].parameter  # 32 × 32 × 3 × 3
    by_hand = 0.05 * torch.linalg.svdvals(kernel.reshape(32, 288)).sum()
    torch.testing.assert_close(Nuclear({"W2": 0.05}).penalty(model), by_hand)


def test_zero_lambda_gives_exact_zero() -> None:
    model = create_model("fcnn")
    penalty = Nuclear({"W1": 0.0}).penalty(model)
    assert penalty.item() == 0.0 and not penalty.requires_grad
    assert Nuclear(0.0).lambdas(model) == {f"W{i}": 0.0 for i in range(1, 7)}


def test_prox_on_a_convolution_thresholds_the_reshaped_kernel() -> None:
    torch.manual_seed(0)
    model = create_model("cnn", channels=8)
    wm = weight_matrices(model)[1]  # 8 × 8 × 3 × 3, W̃ is 8 × 72
    before = wm.matrix.detach().clone()
    sigma = torch.linalg.svdvals(before)
    tau = float(sigma[4] + sigma[5]) / 2  # keeps exactly 5 singular values
    Nuclear({"W2": 2.0}).prox(model, lr=tau / 2.0)
    assert wm.parameter.shape == (8, 8, 3, 3)
    torch.testing.assert_close(wm.matrix.detach(), singular_value_threshold(before, tau))
    assert int(torch.linalg.matrix_rank(wm.matrix.detach())) == 5


def test_sgd_with_prox_converges_to_the_exact_low_rank_solution() -> None:
    """Proximal gradient on ½‖W − A‖_F² + λ‖W‖_* reaches SVT(A, λ) of rank #{σ_i(A) > λ}."""
    layer = nn.Linear(6, 5, bias=False).double()
    A = _matrix_with_spectrum([4.0, 2.0, 1.0, 0.5, 0.2], 5, 6)
    lam = 0.8
    reg = Nuclear(lam)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    eye = torch.eye(6, dtype=torch.float64)
    for _ in range(80):
        opt.zero_grad()
        loss = 0.5 * ((layer(eye) - A.T) ** 2).sum()  # layer(I) = Wᵀ
        loss.backward()
        opt.step()
        reg.prox(layer, lr=0.5)
    W = layer.weight.detach()
    torch.testing.assert_close(W, singular_value_threshold(A, lam), atol=1e-10, rtol=0)
    sigma = torch.linalg.svdvals(W)
    torch.testing.assert_close(
        sigma[:3], torch.tensor([3.2, 1.2, 0.2], dtype=torch.float64), atol=1e-10, rtol=0
    )
    assert float(sigma[3:].max()) < 1e-12  # rank exactly 3, not merely small

"""Nuclear-norm regularization of the weight matrices (Langenberg et al. 2019, eq. (6))."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from robustcompress.errors import ModelError
from robustcompress.regularizers.base import PerMatrixRegularizer
from robustcompress.regularizers.prox import singular_value_threshold, thin_svd
from robustcompress.regularizers.registry import register_regularizer


def numerical_rank_mask(S: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Which singular values count as nonzero: ``σ_i > max(m, n)·eps·σ_1``.

    The same tolerance as :func:`torch.linalg.matrix_rank`'s default; an all-zero
    matrix has no nonzero singular values.
    """
    if S.numel() == 0:
        return torch.zeros_like(S, dtype=torch.bool)
    tol = max(shape) * torch.finfo(S.dtype).eps * S.max()
    return S.gt(tol)


class _NuclearNorm(torch.autograd.Function):
    """``‖W‖_*`` with the minimum-norm subgradient ``U_r V_rᵀ`` as its backward."""

    @staticmethod
    def forward(ctx: Any, W: torch.Tensor) -> torch.Tensor:
        U, S, Vh = thin_svd(W)
        keep = numerical_rank_mask(S, (W.shape[0], W.shape[1])).to(W.dtype)
        ctx.save_for_backward(U * keep, Vh)
        return S.sum()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        U_r, Vh = ctx.saved_tensors
        return grad * (U_r @ Vh)


def nuclear_norm(W: torch.Tensor) -> torch.Tensor:
    """Nuclear norm ``‖W‖_* = Σ_i σ_i(W)`` of a 2-D matrix, differentiable.

    Gradient: for ``W = U Σ Vᵀ`` (thin SVD) with rank r, ``∂‖W‖_*/∂W = U_r V_rᵀ``,
    the singular vectors of the nonzero singular values.

    * **Repeated singular values** are harmless: ``U_r V_rᵀ`` is the orthogonal
      polar factor of W restricted to its range and does not depend on which basis
      the SVD picks inside a repeated singular subspace (no ``1/(σ_i − σ_j)`` terms,
      unlike the gradient of U or V themselves).
    * **Zero (rank-deficient) singular values** make the norm non-differentiable;
      the subdifferential is ``{U_r V_rᵀ + Z : U_rᵀZ = 0, Z V_r = 0, ‖Z‖₂ ≤ 1}``. We
      return its minimum-norm element Z = 0, treating ``σ_i ≤ max(m, n)·eps·σ_1`` as
      zero (see :func:`numerical_rank_mask`); ``W = 0`` gets gradient 0. This is
      deterministic, whereas autograd through :func:`torch.linalg.svdvals` would
      add ``U_0 V_0ᵀ`` for whatever null-space basis LAPACK returns, pushing zero
      singular values back up.

    One SVD per call (``O(mn·min(m, n))``, via :func:`thin_svd`); the backward is
    once-differentiable.
    """
    if W.dim() != 2:
        raise ModelError(
            f"nuclear_norm expects a 2-D matrix, got shape {tuple(W.shape)}: "
            "reshape convolution kernels to c_out × (c_in·k_h·k_w) first"
        )
    return _NuclearNorm.apply(W)


@register_regularizer
class Nuclear(PerMatrixRegularizer):
    """``L_nuclear = Σ_i λ_{*,i} ‖W_i‖_*``, the low-rank-promoting penalty of eq. (6).

    The nuclear norm is the convex relaxation of the rank. Convolutions enter through
    the reshaped kernel W̃ = c_out × (c_in·k_h·k_w), as in the paper's Appendix B. The
    paper argues that W = W̃ ⊗ I_m has the same effective rank as W̃; in fact
    r(W̃ ⊗ I_m) = √m · r(W̃) (the nuclear norm grows by m, the Frobenius norm by √m),
    so the penalty on W̃ is the one on W up to the constant factor m.

    Args:
        lam: λ_{*,i} ≥ 0, a float for every weight matrix or a mapping ``{"W2": 0.05}``
            (keys: name, module path or 1-based index; others get 0). No default: the
            paper uses λ_{*,1} ∈ {0.01, 0.03} on the FCNN's W_1 (Table 1) and
            λ_{*,2} ∈ {0.05, 0.1, 0.5} on the CNN's second convolution (Table 2).

    :meth:`penalty` costs one SVD per regularized matrix per call; its gradient is
    described in :func:`nuclear_norm`. :meth:`prox` applies singular-value
    thresholding by lr·λ_{*,i}, which lowers the rank exactly.
    """

    name = "nuclear"
    paper = "Langenberg et al. 2019, eq. (6)"

    @staticmethod
    def norm(W: torch.Tensor) -> torch.Tensor:
        return nuclear_norm(W)

    @staticmethod
    def prox_matrix(W: torch.Tensor, tau: float) -> torch.Tensor:
        return singular_value_threshold(W, tau)

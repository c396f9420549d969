"""Closed-form proximal operators of the ℓ1 and nuclear norms (pure functions).

For a convex penalty τ·R the proximal operator is
``prox_{τR}(V) = argmin_W ½‖W − V‖_F² + τ·R(W)``. A proximal-gradient step for
``L_CE + λR`` with learning rate η is ``W ← prox_{ηλR}(W − η∇L_CE)``: the gradient
step handles the smooth loss and the prox handles the non-smooth penalty exactly,
which is what produces *exact* zeros / *exact* rank drops (a subgradient step on
λR only oscillates around them).

* ℓ1 (Langenberg et al. 2019, eq. (5)): soft-thresholding, entrywise
  ``prox(V)_{jk} = sign(V_{jk})·max(|V_{jk}| − τ, 0)`` (Donoho 1995).
* nuclear norm (eq. (6)): singular-value thresholding,
  ``prox(V) = U·max(Σ − τ, 0)·Vᵀ`` for ``V = UΣVᵀ`` (Cai, Candès & Shen 2010).
"""

from __future__ import annotations

import math

import torch

from robustcompress.errors import ConfigError, ModelError


def _check_tau(tau: float, where: str) -> float:
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise ConfigError(f"{where}: threshold tau must be a finite number ≥ 0, got {tau}")
    return tau


def thin_svd(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``W = U·diag(S)·Vh`` of a 2-D matrix, QR-first when W is far from square.

    Same contract as ``torch.linalg.svd(W, full_matrices=False)`` (S descending). For
    an m × n matrix with ``max(m, n) ≥ 2·min(m, n)`` — e.g. reshaped kernels W̃ =
    c_out × (c_in·k_h·k_w) — it first QR-factorises the tall orientation and takes
    the SVD of the small square factor R (Chan 1982). Single-threaded on our CPU
    build this is 1.7–4× faster than the direct call (512 × 4608: 0.45 s vs 1.65 s;
    128 × 1152: 8 ms vs 20 ms) and agrees with it to rounding.
    """
    m, n = W.shape
    if n >= 2 * m:  # wide: W = (Q R)ᵀ = Rᵀ Qᵀ, and Rᵀ = U S Ṽᵀ gives Vh = Ṽᵀ Qᵀ
        Q, R = torch.linalg.qr(W.mT)
        U, S, Vh_small = torch.linalg.svd(R.mT)
        return U, S, Vh_small @ Q.mT
    if m >= 2 * n:  # tall: W = Q R and R = Ũ S Vh gives U = Q Ũ
        Q, R = torch.linalg.qr(W)
        U_small, S, Vh = torch.linalg.svd(R)
        return Q @ U_small, S, Vh
    return torch.linalg.svd(W, full_matrices=False)


def soft_threshold(W: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft-thresholding ``sign(W)·max(|W| − τ, 0)``, the prox of ``τ‖·‖₁``.

    Works entrywise on a tensor of any shape and returns a new tensor (same dtype
    and device). Entries with ``|W| ≤ τ`` become exactly 0; the others move τ
    towards 0. ``τ = 0`` returns an unchanged copy.
    """
    tau = _check_tau(tau, "soft_threshold")
    return torch.sign(W) * torch.clamp(W.abs() - tau, min=0)


def singular_value_threshold(W: torch.Tensor, tau: float) -> torch.Tensor:
    """Singular-value thresholding ``U·max(Σ − τ, 0)·Vᵀ``, the prox of ``τ‖·‖_*``.

    ``W`` must be a 2-D matrix (reshape a convolution kernel to W̃ = c_out × (c_in·k_h·k_w)
    first, as :attr:`WeightMatrix.matrix` does). Every singular value ≤ τ is set to 0,
    so the rank drops to ``#{σ_i > τ}``; the singular vectors are kept. The result is
    unique even when singular values repeat, because equal σ_i are shrunk equally.
    Computed with :func:`thin_svd` in ``W``'s dtype; ``τ = 0`` reproduces ``W`` up to rounding.
    """
    tau = _check_tau(tau, "singular_value_threshold")
    if W.dim() != 2:
        raise ModelError(
            f"singular_value_threshold expects a 2-D matrix, got shape {tuple(W.shape)}: "
            "reshape convolution kernels to c_out × (c_in·k_h·k_w) first"
        )
    U, S, Vh = thin_svd(W)
    return (U * torch.clamp(S - tau, min=0)) @ Vh

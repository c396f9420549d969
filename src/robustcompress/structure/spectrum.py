"""Spectral measures of a weight matrix: singular values and what they summarise.

Every function takes a matrix ``W`` (a 2-D tensor; it may require grad, it is
detached inside) and computes its singular values σ_1 ≥ … ≥ σ_p ≥ 0,
p = min(m, n), in float64 on the CPU for accuracy. Scalar measures are returned
as Python ``float`` (or ``int`` for ranks); the spectrum itself as a 1-D float64
CPU tensor. None of them is differentiable: the regularizers have their own
differentiable penalties.

For a convolution pass the reshaped kernel ``W̃`` (``WeightMatrix.matrix``); the
spectrum of the convolution *operator* itself is in :mod:`robustcompress.structure.conv`.

The zero matrix has σ = 0: ratio measures (stable rank here, effective rank and
effective sparsity in :mod:`robustcompress.structure.effective`) are 0/0 and
return NaN; the spectral norm and the singular-value standard deviation are 0 and
the numerical rank is 0.
"""

from __future__ import annotations

import math

import torch

from robustcompress.errors import ConfigError

DEFAULT_ENERGY = 0.99
"""Default energy fraction of :func:`numerical_rank` (99 % of ‖W‖_F²)."""


def as_float64(x: torch.Tensor, *, what: str = "W", matrix: bool = True) -> torch.Tensor:
    """Detached float64 CPU copy of ``x``, validated.

    Raises :class:`ConfigError` when ``x`` is not a tensor, is empty, is not 2-D
    (if ``matrix``), or has non-finite entries.
    """
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if matrix and x.dim() != 2:
        raise ConfigError(
            f"{what} must be a 2-D matrix, got shape {tuple(x.shape)} "
            "(reshape a convolution kernel to c_out × (c_in·k_h·k_w), e.g. WeightMatrix.matrix)"
        )
    if x.numel() == 0:
        raise ConfigError(f"{what} is empty (shape {tuple(x.shape)}): measures need ≥ 1 entry")
    out = x.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(out).all()):
        raise ConfigError(
            f"{what} has NaN or infinite entries: the weights diverged; measure a finite checkpoint"
        )
    return out


def singular_values(W: torch.Tensor) -> torch.Tensor:
    """Singular values σ_1 ≥ … ≥ σ_p of ``W`` (p = min(m, n)), float64, on the CPU.

    Computed with ``torch.linalg.svdvals`` on a float64 copy, so measures built on
    them are accurate to ~1e-15 relative even for float32 weights. A wide matrix
    is decomposed as its transpose (same singular values), which LAPACK handles
    several times faster.
    """
    W64 = as_float64(W)
    return torch.linalg.svdvals(W64.mT if W64.shape[0] < W64.shape[1] else W64)


def spectral_norm(W: torch.Tensor) -> float:
    """Spectral norm ‖W‖₂ = σ_1, the largest singular value (0 for the zero matrix).

    This is the Lipschitz constant of x ↦ Wx in ℓ2. For a convolution it is the
    norm of the reshaped kernel W̃, which is *not* the operator norm of the layer:
    see :func:`robustcompress.structure.conv.conv_spectral_norm`.
    """
    return _spectral_norm(singular_values(W))


def stable_rank(W: torch.Tensor) -> float:
    """Stable rank srank(W) = ‖W‖_F² / ‖W‖₂² = Σ_i σ_i² / σ_1².

    A continuous surrogate of the rank: 1 ≤ srank(W) ≤ rank(W), with equality on
    the left iff W has rank one and on the right iff all non-zero σ_i are equal
    (Arora et al. ICML 2018; Sanyal et al.). NaN for the zero matrix (0/0).
    """
    return _stable_rank(singular_values(W))


def numerical_rank(W: torch.Tensor, energy: float = DEFAULT_ENERGY) -> int:
    """Smallest k with Σ_{i≤k} σ_i² ≥ energy · Σ_i σ_i² (0 for the zero matrix).

    The number of singular directions that carry a fraction ``energy`` of the
    squared Frobenius norm; the best rank-k approximation then has relative
    squared error ≤ 1 − energy (Eckart–Young). The default 0.99 keeps 99 % of the
    energy, a common choice for "how many directions matter". ``energy = 1``
    counts every singular value that is non-zero up to round-off.
    """
    _check_energy(energy)
    return _numerical_rank(singular_values(W), energy)


def singular_value_std(W: torch.Tensor) -> float:
    """Standard deviation of the singular values, √((1/p) Σ_i (σ_i − σ̄)²).

    The statistic of the ICLR 2020 submission "Towards understanding the
    regularization of adversarial robustness on neural networks" (Figs. 1a, 5c-d,
    App. B.2), which reports that stronger
    adversarial training lowers it in most layers. The paper plots the plain
    standard deviation of all singular values of each weight matrix: it does not
    normalise by σ_max or by the mean (its App. B.2 notes the values are "around 1"
    in most layers, which only makes sense unnormalised), and does not say which
    estimator it uses; we take the population form (divide by p, NumPy's default).
    The measure therefore scales with W: std(cW) = |c|·std(W). It is 0 when all σ_i
    are equal (e.g. orthogonal matrices, where ‖Wx‖ = σ‖x‖ for every x).
    """
    return _singular_value_std(singular_values(W))


# σ-level helpers, shared with the model report (one SVD per matrix).


def _spectral_norm(sigma: torch.Tensor) -> float:
    return float(sigma[0])


def _stable_rank(sigma: torch.Tensor) -> float:
    top = float(sigma[0])
    if top == 0.0:
        return math.nan
    return float((sigma / top).square().sum())


def _numerical_rank(sigma: torch.Tensor, energy: float) -> int:
    cumulative = torch.cumsum(sigma.square(), dim=0)
    total = float(cumulative[-1])
    if total == 0.0:
        return 0
    return int((cumulative < energy * total).sum()) + 1


def _singular_value_std(sigma: torch.Tensor) -> float:
    return float(sigma.std(correction=0))


def _check_energy(energy: float) -> None:
    if not 0.0 < energy <= 1.0:
        raise ConfigError(
            f"energy must be in (0, 1], got {energy} (e.g. 0.99 keeps 99 % of ‖W‖_F²)"
        )

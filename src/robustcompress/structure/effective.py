"""Effective sparsity and effective rank (Langenberg, Balda, Behboodi, Mathar 2019).

The paper's two structure measures are the same ratio of norms applied once to
the entries of W and once to its singular values:

    s(x) = ‖x‖₁ / ‖x‖₂                      (effective sparsity of a vector)
    s(W) = ‖W‖₁ / ‖W‖_F                     (eq. 2, entries of W)
    r(W) = ‖W‖_* / ‖W‖_F = s(σ(W))          (eq. 3, singular values of W)

If x has k non-zero entries then 1 ≤ s(x) ≤ √k (Cauchy–Schwarz), with s = √k iff
the non-zeros have equal magnitude; so s² is a smooth, scale-invariant count of
"how many entries matter" and r² of "how many directions matter". Both are NaN for
an all-zero input (0/0). Results are Python floats computed in float64; inputs may
require grad (they are detached).
"""

from __future__ import annotations

import math

import torch

from robustcompress.errors import ConfigError
from robustcompress.structure.spectrum import as_float64, singular_values


def effective_sparsity(W: torch.Tensor) -> float:
    """Effective sparsity s(W) = ‖W‖₁ / ‖W‖_F (Langenberg et al. 2019, eq. 2).

    Entrywise, so it accepts a vector (the paper's s(x) = ‖x‖₁/‖x‖₂) or a tensor of
    any shape (a convolution kernel gives the same value as its reshaped W̃).
    Bounds: 1 ≤ s(W) ≤ √(#non-zeros) ≤ √(#entries); invariant to scaling W ↦ cW,
    c ≠ 0. NaN for the zero tensor.
    """
    return _l1_over_l2(as_float64(W, matrix=False).flatten())


def effective_rank(W: torch.Tensor) -> float:
    """Effective rank r(W) = ‖W‖_* / ‖W‖_F = Σσ_i / √(Σσ_i²) (Langenberg et al. 2019, eq. 3).

    The effective sparsity of the singular values. Bounds: 1 ≤ r(W) ≤ √rank(W),
    with r = 1 iff rank(W) = 1 and r = √rank(W) iff the non-zero σ_i are equal
    (so ``effective_rank(torch.eye(4)) == 2``). Invariant to scaling and to
    orthogonal transforms U W V. NaN for the zero matrix.

    Convolutions. Appendix B of the paper writes a convolution as a fully
    connected layer W = W̃ ⊗ I_m (W̃ the c_out × (c_in·k_h·k_w) reshaped kernel,
    m the number of output positions) and states that W and W̃ "have the same
    effective rank". They do not: the singular values of W̃ ⊗ I_m are those of W̃,
    each repeated m times, so ‖W‖_* = m‖W̃‖_* and ‖W‖_F = √m‖W̃‖_F, giving

        r(W̃ ⊗ I_m) = √m · r(W̃).

    The two differ by a layer-constant factor, so comparisons of one layer across
    training runs are unaffected, but absolute values (and comparisons between
    layers with different m) are not. This library, like the paper's
    experiments, reports r(W̃).
    """
    return _l1_over_l2(singular_values(W))


def exact_sparsity(W: torch.Tensor, atol: float = 0.0) -> float:
    """Fraction of entries with |w| ≤ atol (1.0 for the zero tensor).

    ``atol = 0`` counts exact zeros, which is what magnitude pruning produces
    (Guo et al. 2018 report the density 1 − exact_sparsity). Entrywise, so any
    shape is accepted.
    """
    if not atol >= 0.0:
        raise ConfigError(f"atol must be ≥ 0, got {atol}")
    x = as_float64(W, matrix=False)
    return float((x.abs() <= atol).sum()) / x.numel()


def _l1_over_l2(x: torch.Tensor) -> float:
    """‖x‖₁ / ‖x‖₂ of a float64 vector; NaN when x = 0."""
    l2 = float(torch.linalg.vector_norm(x))
    if l2 == 0.0:
        return math.nan
    return float(torch.linalg.vector_norm(x / l2, ord=1))

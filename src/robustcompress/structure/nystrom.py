"""Rank-r projections of symmetric matrices: exact, Nyström and ensembled Nyström.

The low-rank (LR) virtual layer of Sanyal et al. keeps its m×m map W symmetric and
positive semi-definite (SPSD) of rank at most r by replacing it, every few steps, with
Π_r(W) (their Algorithm 2, line 13). For a symmetric W:

* :func:`exact_projection` takes the eigendecomposition and keeps the r largest
  *positive* eigenvalues: the nearest SPSD matrix of rank ≤ r in the Frobenius norm. For
  an SPSD W this is the best rank-r approximation (Eckart–Young), which is the paper's
  Π_r; for an indefinite W it is what Lemma 1 needs, an SPSD result. Cost O(m³).
* :func:`nystrom` samples l column indices I uniformly without replacement, forms
  C = W[:, I] and the principal submatrix Z = W[I, I], and returns C Z_r⁺ Cᵀ, with Z_r⁺
  the pseudo-inverse of Z's best rank-r SPSD part (its r largest positive eigenpairs;
  eigenvalues below ``tol``·λ_max count as zero). The result is SPSD of rank ≤ r
  (Lemma 1), exact when W is SPSD of rank ≤ r and the sampled columns span its range.
  The eigenproblem is l×l; the rest is matrix products, O(m·l·r + m²·r).
* :func:`ensembled_nystrom` averages t such runs with uniform weights 1/t (Kumar,
  Mohri & Talwalkar 2009a) and truncates the average back to rank r: writing each run
  as F_i F_iᵀ with F_i = C U_r Λ_r^{-1/2} (m×r), the average is F Fᵀ with
  F = [F_1 … F_t]/√t, and the top r left singular pairs of F give its best rank-r
  approximation, still SPSD. Without this last step the average could have rank t·r.

The paper smooths W "by repeatedly adding 0.01·I until the SVD algorithm converges"; an
eigendecomposition that fails to converge is retried here on W + k·0.01·I (k = 1, 2, …,
at most ``max_smoothing`` times) and the number of additions is reported.
Everything runs in float64 on the input's device and returns the input's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustcompress.errors import ConfigError

METHODS = ("svd", "nystrom")
"""The projections :func:`rank_projection` can run: exact, or ensembled Nyström."""

SMOOTHING = 0.01
"""The multiple of the identity added to a matrix whose eigendecomposition failed."""


@dataclass(frozen=True)
class Projection:
    """A rank-r projection and how it was obtained: ``method`` (``svd`` or ``nystrom``),
    the ``rank`` kept (≤ r: fewer when fewer positive eigenvalues exist), the number of
    ``smoothing`` additions of 0.01·I, and for Nyström the ``columns`` per run and
    ``runs``."""

    matrix: torch.Tensor
    method: str
    rank: int
    smoothing: int = 0
    columns: int = 0
    runs: int = 0


def _check(matrix: torch.Tensor, rank: int) -> None:
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ConfigError(f"rank projection needs a square matrix, got shape {tuple(matrix.shape)}")
    if not 1 <= rank <= matrix.shape[0]:
        raise ConfigError(f"rank must be between 1 and {matrix.shape[0]} (got {rank})")


def _eigh(matrix: torch.Tensor, max_smoothing: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``torch.linalg.eigh`` of a symmetric matrix, retried on ``matrix + k·0.01·I``
    while it fails to converge; returns ascending eigenvalues, eigenvectors and k."""
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    for k in range(max_smoothing + 1):
        try:
            values, vectors = torch.linalg.eigh(matrix + k * SMOOTHING * eye)
        except RuntimeError:  # torch.linalg.LinAlgError subclasses RuntimeError
            continue
        return values, vectors, k
    raise ConfigError(
        f"the eigendecomposition did not converge after adding {SMOOTHING:g}·I "
        f"{max_smoothing} times: the matrix is not finite or badly conditioned; lower the "
        "learning rate of the LR layer"
    )


def _top_positive(
    values: torch.Tensor, vectors: torch.Tensor, rank: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rank`` largest eigenpairs whose eigenvalue exceeds ``tol``·λ_max (and 0)."""
    order = torch.argsort(values, descending=True)[:rank]
    top, basis = values[order], vectors[:, order]
    limit = max(float(values.max()) * tol, 0.0)
    keep = top > limit
    return top[keep], basis[:, keep]


def _symmetric64(matrix: torch.Tensor) -> torch.Tensor:
    m = matrix.detach().to(torch.float64)
    return (m + m.T) / 2


def exact_projection(
    matrix: torch.Tensor, rank: int, *, tol: float = 1e-12, max_smoothing: int = 100
) -> Projection:
    """The nearest SPSD matrix of rank ≤ ``rank`` to the symmetric part of ``matrix``
    (module docstring)."""
    _check(matrix, rank)
    values, vectors, k = _eigh(_symmetric64(matrix), max_smoothing)
    top, basis = _top_positive(values, vectors, rank, tol)
    out = (basis * top) @ basis.T
    return Projection(out.to(matrix.dtype), "svd", int(top.numel()), k)


def _nystrom_factor(
    sym: torch.Tensor,
    rank: int,
    columns: int,
    generator: torch.Generator | None,
    tol: float,
    max_smoothing: int,
) -> tuple[torch.Tensor, int]:
    """F (m×r') with F Fᵀ the Nyström approximation of ``sym`` from ``columns`` uniformly
    sampled columns, and the smoothing count."""
    m = sym.shape[0]
    index = torch.randperm(m, generator=generator)[:columns].to(sym.device)
    c = sym[:, index]
    values, vectors, k = _eigh(c[index], max_smoothing)
    top, basis = _top_positive(values, vectors, rank, tol)
    return c @ (basis / top.sqrt()), k


def nystrom(
    matrix: torch.Tensor,
    rank: int,
    columns: int | None = None,
    *,
    generator: torch.Generator | None = None,
    tol: float = 1e-10,
    max_smoothing: int = 100,
) -> Projection:
    """One Nyström rank-``rank`` approximation from ``columns`` sampled columns (default
    2·rank, the paper's l = 2r; at most m)."""
    return ensembled_nystrom(
        matrix,
        rank,
        columns,
        runs=1,
        generator=generator,
        tol=tol,
        max_smoothing=max_smoothing,
    )


def ensembled_nystrom(
    matrix: torch.Tensor,
    rank: int,
    columns: int | None = None,
    runs: int = 5,
    *,
    generator: torch.Generator | None = None,
    tol: float = 1e-10,
    max_smoothing: int = 100,
) -> Projection:
    """The uniform average of ``runs`` Nyström approximations, each from ``columns``
    sampled columns (default 2·rank), truncated to rank ≤ ``rank`` (module docstring)."""
    _check(matrix, rank)
    m = matrix.shape[0]
    columns = min(m, 2 * rank if columns is None else columns)
    if columns < 1 or runs < 1:
        raise ConfigError(f"Nyström needs ≥ 1 column and ≥ 1 run (got {columns}, {runs})")
    sym = _symmetric64(matrix)
    factors, smoothing = [], 0
    for _ in range(runs):
        factor, k = _nystrom_factor(sym, rank, columns, generator, tol, max_smoothing)
        factors.append(factor)
        smoothing = max(smoothing, k)
    stacked = torch.cat(factors, dim=1) / runs**0.5
    if stacked.shape[1] == 0:
        return Projection(torch.zeros_like(matrix), "nystrom", 0, smoothing, columns, runs)
    if runs == 1:
        out, kept = stacked @ stacked.T, stacked.shape[1]
    else:
        left, sigma, _ = torch.linalg.svd(stacked, full_matrices=False)
        sigma = sigma[:rank]
        keep = sigma > sigma[0] * tol**0.5
        basis, power = left[:, : sigma.numel()][:, keep], sigma[keep] ** 2
        out, kept = (basis * power) @ basis.T, int(keep.sum())
    return Projection(out.to(matrix.dtype), "nystrom", kept, smoothing, columns, runs)


def rank_projection(
    matrix: torch.Tensor,
    rank: int,
    method: str = "svd",
    *,
    columns: int | None = None,
    runs: int = 5,
    generator: torch.Generator | None = None,
) -> Projection:
    """Π_r of the LR layer by ``method``: ``svd`` (:func:`exact_projection`) or
    ``nystrom`` (:func:`ensembled_nystrom` with ``columns`` per run and ``runs``)."""
    if method == "svd":
        return exact_projection(matrix, rank)
    if method == "nystrom":
        return ensembled_nystrom(matrix, rank, columns, runs, generator=generator)
    raise ConfigError(f"unknown rank projection {method!r} (choose one of: {', '.join(METHODS)})")


__all__ = [
    "METHODS",
    "Projection",
    "ensembled_nystrom",
    "exact_projection",
    "nystrom",
    "rank_projection",
]

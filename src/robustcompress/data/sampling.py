"""Deterministic, class-stratified subsampling.

:func:`stratified_order` is a seeded permutation of the examples whose every
prefix is class-stratified (systematic sampling): within class ``c`` (``n_c`` of
``N`` examples) the examples are shuffled and the ``r``-th gets the key
``(r + ½) / n_c``; sorting all examples by key (ties broken at random) interleaves
the classes so that any prefix of length ``m`` holds
``m · n_c / N`` examples of class ``c`` up to a small rounding error
(at most ``C·n_c/(2N) + 1.5`` for ``C`` classes; in practice ±1).

So ``limit=m`` with one seed always picks the same examples, class proportions
match the full set, and the subset for ``m`` is contained in the subset for any
``m' > m``: growing a training set keeps the earlier examples.
"""

from __future__ import annotations

import numbers

import torch

from robustcompress.errors import ConfigError


def stratified_order(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A seeded permutation of ``0..N−1`` whose every prefix is class-stratified."""
    labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    n = labels.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    if int(labels.min()) < 0:
        raise ConfigError("stratified_order: labels must be non-negative integers")
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator)
    shuffled = labels[perm]
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    by_class = torch.sort(shuffled, stable=True).indices
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    key = (rank.to(torch.float64) + 0.5) / counts[shuffled].to(torch.float64)
    # stable sort on the already shuffled order: equal keys fall in random order
    return perm[torch.sort(key, stable=True).indices]


def subsample_indices(labels: torch.Tensor, limit: int | None, seed: int = 0) -> torch.Tensor:
    """Indices (ascending) of a seeded, class-stratified subset of ``limit`` examples.

    ``limit=None`` or ``limit ≥ N`` selects every example; ``limit`` must be positive.
    """
    n = torch.as_tensor(labels).numel()
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1
    ):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.sort(stratified_order(labels, seed)[: int(limit)]).values

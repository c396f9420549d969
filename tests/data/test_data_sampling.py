"""Stratified subsampling: deterministic, nested, and proportional to the class sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.data.sampling import stratified_order, subsample_indices
from robustcompress.errors import ConfigError

LABELS = torch.arange(1000) % 7


def test_order_is_a_seeded_permutation() -> None:
    order = stratified_order(LABELS, seed=3)
    assert torch.equal(torch.sort(order).values, torch.arange(1000))
    assert torch.equal(order, stratified_order(LABELS, seed=3))
    assert not torch.equal(order, stratified_order(LABELS, seed=4))


def test_subsets_are_sorted_and_nested() -> None:
    small = subsample_indices(LABELS, 50, seed=1)
    large = subsample_indices(LABELS, 300, seed=1)
    assert torch.equal(small, torch.sort(small).values)
    assert set(small.tolist()) <= set(large.tolist())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=8),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_prefix_is_stratified(sizes: list[int], fraction: float, seed: int) -> None:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
    total, classes = len(labels), len(sizes)
    m = round(fraction * total)
    picked = labels[stratified_order(labels, seed)[:m]]
    counts = torch.bincount(picked, minlength=classes)
    for c, n in enumerate(sizes):
        bound = classes * n / (2 * total) + 1.5
        assert abs(counts[c].item() - m * n / total) <= bound


def test_limit_at_least_n_keeps_everything() -> None:
    assert torch.equal(subsample_indices(LABELS, None), torch.arange(1000))
    assert torch.equal(subsample_indices(LABELS, 5000), torch.arange(1000))


@pytest.mark.parametrize("limit", [0, -3, 2.5, True, "10"])
def test_invalid_limit(limit) -> None:
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        subsample_indices(LABELS, limit)

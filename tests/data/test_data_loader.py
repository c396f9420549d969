"""make_loader: batch counts, order, seeded shuffling, re-iteration."""

from __future__ import annotations

import pytest
import torch

from robustcompress.data import ArrayDataset, make_loader
from robustcompress.errors import ConfigError


@pytest.fixture
def data() -> ArrayDataset:
    n = 10
    images = (torch.arange(n, dtype=torch.float32) / n).reshape(n, 1, 1, 1).expand(n, 1, 2, 2)
    return ArrayDataset(
        images.contiguous(), torch.arange(n), name="toy", split="train", classes=list("0123456789")
    )


def _labels(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_in_order_batches(data: ArrayDataset) -> None:
    loader = make_loader(data, 4, shuffle=False)
    assert len(loader) == 3
    assert _labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    images, labels = next(iter(loader))
    assert torch.equal(images, data.images[:4]) and labels.dtype == torch.int64


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_do_not_alias_the_data(data: ArrayDataset, shuffle: bool) -> None:
    before = data.images.clone()
    for images, labels in make_loader(data, 4, shuffle=shuffle, seed=0):
        images.add_(5.0)
        labels.zero_()
    assert torch.equal(data.images, before) and data.labels.tolist() == list(range(10))


def test_drop_last(data: ArrayDataset) -> None:
    loader = make_loader(data, 4, shuffle=True, seed=0, drop_last=True)
    assert len(loader) == 2 and [len(b) for b in _labels(loader)] == [4, 4]


def test_shuffled_epochs_are_seeded_permutations(data: ArrayDataset) -> None:
    loader = make_loader(data, 3, shuffle=True, seed=7)
    first, second = _labels(loader), _labels(loader)
    for epoch in (first, second):
        assert sorted(label for batch in epoch for label in batch) == list(range(10))
    assert first != second  # a new permutation each pass
    again = make_loader(data, 3, shuffle=True, seed=7)
    assert [_labels(again), _labels(again)] == [first, second]
    for images, labels in make_loader(data, 3, shuffle=True, seed=7):
        assert torch.equal(images, data.images[labels])  # images stay with their labels


def test_unseeded_shuffle_follows_the_global_generator(data: ArrayDataset) -> None:
    torch.manual_seed(0)
    first = _labels(make_loader(data, 5, shuffle=True))
    torch.manual_seed(0)
    assert _labels(make_loader(data, 5, shuffle=True)) == first


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_invalid_batch_size(data: ArrayDataset, batch_size) -> None:
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        make_loader(data, batch_size, shuffle=False)

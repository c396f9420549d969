"""load_dataset and ArrayDataset on the real MNIST / Fashion-MNIST files and tiny ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustcompress.data import ArrayDataset, load_dataset
from robustcompress.data.idx import read_idx
from robustcompress.data.locate import dataset_status, list_datasets
from robustcompress.errors import ConfigError, DataError

# Official per-class counts (shared data README; Fashion-MNIST is balanced).
COUNTS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion-mnist", "train"): [6000] * 10,
    ("fashion-mnist", "test"): [1000] * 10,
}


@pytest.mark.parametrize(("name", "split"), list(COUNTS))
def test_real_data_sets(real_data: Path, name: str, split: str) -> None:
    data = load_dataset(name, split, root=real_data, download=False)
    n = sum(COUNTS[name, split])
    assert data.images.shape == (n, 1, 28, 28) and data.images.dtype == torch.float32
    assert data.labels.shape == (n,) and data.labels.dtype == torch.int64
    assert data.images.min() == 0 and data.images.max() == 1
    assert data.class_counts().tolist() == COUNTS[name, split]
    assert (data.name, data.split, data.num_classes, len(data)) == (name, split, 10, n)


def test_pixels_are_the_bytes_over_255(real_data: Path) -> None:
    data = load_dataset("mnist", "test", root=real_data)
    raw = read_idx(real_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    expected = torch.from_numpy(raw.astype(np.float32) / np.float32(255)).unsqueeze(1)
    assert torch.equal(data.images, expected)
    image, label = data[0]
    assert image.shape == (1, 28, 28) and label.item() == 7  # the first MNIST test digit


def test_subsample_is_deterministic_and_stratified(real_data: Path) -> None:
    a = load_dataset("mnist", "train", root=real_data, limit=1000, seed=5)
    b = load_dataset("mnist", "train", root=real_data, limit=1000, seed=5)
    c = load_dataset("mnist", "train", root=real_data, limit=1000, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    proportional = torch.tensor(COUNTS["mnist", "train"]) * 1000 / 60000
    assert (a.class_counts() - proportional).abs().max() <= 1.5


def test_each_load_returns_fresh_tensors(real_data: Path) -> None:
    first = load_dataset("fashion-mnist", "test", root=real_data)
    first.images.zero_()
    second = load_dataset("fashion-mnist", "test", root=real_data)
    assert second.images.max() == 1


def test_tiny_files_load_with_the_same_pipeline(isolated: Path, tiny_idx) -> None:
    tiny_idx(isolated / "root" / "mnist", train=30, test=20)
    data = load_dataset("mnist", "test", root=isolated / "root", download=False)
    assert data.images.shape == (20, 1, 28, 28) and data.labels.tolist() == [
        i % 10 for i in range(20)
    ]
    assert len(load_dataset("mnist", root=isolated / "root", limit=10)) == 10


def test_a_replaced_file_is_read_again(isolated: Path, tiny_idx) -> None:
    root = isolated / "root"
    tiny_idx(root / "mnist", test=20)
    assert len(load_dataset("mnist", "test", root=root)) == 20
    tiny_idx(root / "mnist", test=12)
    assert len(load_dataset("mnist", "test", root=root)) == 12


def test_unknown_name_split_and_options(isolated: Path) -> None:
    with pytest.raises(ConfigError, match="unknown data set 'imagenet': choose one of cifar10"):
        load_dataset("imagenet")
    with pytest.raises(
        ConfigError, match="unknown split 'val' of 'mnist': choose one of train, test"
    ):
        load_dataset("mnist", "val")
    with pytest.raises(ConfigError, match="'mnist' takes no options, got k"):
        load_dataset("mnist", k=3)


def _dataset(n: int = 6) -> ArrayDataset:
    images = torch.linspace(0, 1, n * 4).reshape(n, 1, 2, 2)
    return ArrayDataset(images, torch.arange(n) % 3, name="toy", split="train", classes="abc")


def test_subset_keeps_order_and_metadata() -> None:
    data = _dataset()
    part = data.subset([4, 1])
    assert part.labels.tolist() == [1, 1] and torch.equal(part.images[0], data.images[4])
    assert (part.name, part.split, part.classes) == ("toy", "train", ("a", "b", "c"))
    mask = torch.tensor([True, False, True, False, False, False])
    assert data.subset(mask).labels.tolist() == [0, 2]
    assert len(data.subset([])) == 0
    with pytest.raises(DataError, match=r"indices must lie in 0\.\.5"):
        data.subset([6])


def test_dataset_invariants_are_enforced() -> None:
    good = torch.zeros(2, 1, 2, 2)
    labels = torch.zeros(2, dtype=torch.int64)
    meta = {"name": "toy", "split": "train", "classes": ("a", "b")}
    with pytest.raises(DataError, match=r"must be a float32 tensor, got torch\.float64"):
        ArrayDataset(good.double(), labels, **meta)
    with pytest.raises(DataError, match=r"must be N×C×H×W, got shape \(2, 4\)"):
        ArrayDataset(good.reshape(2, 4), labels, **meta)
    with pytest.raises(DataError, match=r"pixel values must lie in \[0, 1\], got \[0, 2\]"):
        ArrayDataset(good + torch.tensor([0.0, 2.0]).reshape(2, 1, 1, 1), labels, **meta)
    with pytest.raises(DataError, match="pixel values"):
        ArrayDataset(good.clone().fill_(float("nan")), labels, **meta)
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.1"):
        ArrayDataset(good, labels + 2, **meta)
    with pytest.raises(DataError, match="2 images but labels of shape"):
        ArrayDataset(good, labels[:1], **meta)


def test_works_with_torch_dataloader() -> None:
    loader = torch.utils.data.DataLoader(_dataset(), batch_size=4)
    images, labels = next(iter(loader))
    assert images.shape == (4, 1, 2, 2) and labels.tolist() == [0, 1, 2, 0]


def test_a_class_subset_keeps_and_relabels_its_classes(isolated: Path, tiny_idx) -> None:
    root = isolated / "root"
    tiny_idx(root / "mnist", train=40, test=30)  # labels cycle 0..9
    full = load_dataset("mnist", "test", root=root)
    binary = load_dataset("mnist-1v7", "test", root=root)
    ones, sevens = full.labels == 1, full.labels == 7
    assert len(binary) == int((ones | sevens).sum()) == 6
    assert binary.labels.tolist() == [0, 1, 0, 1, 0, 1]  # 1 → 0 and 7 → 1, in file order
    assert torch.equal(binary.images, full.images[ones | sevens])
    assert binary.classes == ("1", "7") and binary.num_classes == 2 and binary.name == "mnist-1v7"
    limited = load_dataset("mnist-1v7", "train", root=root, limit=4, seed=0)
    assert len(limited) == 4 and limited.labels.bincount().tolist() == [2, 2]
    assert dataset_status("mnist-1v7", root).found and "mnist-1v7" in list_datasets()

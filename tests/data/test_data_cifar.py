"""CIFAR-10 binary reader on tiny archives whose pixel values are known in closed form."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robustcompress.data import load_dataset
from robustcompress.data.catalog import CIFAR10_TEST_BATCHES, CIFAR10_TRAIN_BATCHES
from robustcompress.data.cifar import parse_cifar10_batch, read_cifar10
from robustcompress.errors import DataError

PER_BATCH = 4


def _batch(batch: int) -> bytes:
    """Record i of batch b: label (b + i) % 10, red = 10·b + i, green = 100, blue = pixel index."""
    records = []
    for i in range(PER_BATCH):
        red = np.full(1024, 10 * batch + i, np.uint8)
        green = np.full(1024, 100, np.uint8)
        blue = (np.arange(1024) % 256).astype(np.uint8)
        records.append(
            bytes([(batch + i) % 10]) + (red.tobytes() + green.tobytes() + blue.tobytes())
        )
    return b"".join(records)


BATCHES = {name: _batch(b) for b, name in enumerate(CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES)}


def _archive(path: Path, skip: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in BATCHES.items():
            if name not in skip:
                info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_record_layout_is_label_then_red_green_blue_planes() -> None:
    images, labels = parse_cifar10_batch(BATCHES["data_batch_2.bin"])
    assert images.shape == (PER_BATCH, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [(1 + i) % 10 for i in range(PER_BATCH)])
    assert (images[3, 0] == 13).all() and (images[:, 1] == 100).all()
    assert images[0, 2, 0, 5] == 5 and images[0, 2, 1, 0] == 32  # row-major 32×32


def test_archive_and_extracted_batches_agree(tmp_path: Path) -> None:
    from_archive = read_cifar10(
        {"cifar-10-binary.tar.gz": _archive(tmp_path / "a.tar.gz")}, "train"
    )
    extracted = {}
    for name, data in BATCHES.items():
        (tmp_path / name).write_bytes(data)
        extracted[f"cifar-10-batches-bin/{name}"] = tmp_path / name
    from_files = read_cifar10(extracted, "train")
    assert from_archive[0].shape == (5 * PER_BATCH, 3, 32, 32)
    for a, b in zip(from_archive, from_files, strict=True):
        np.testing.assert_array_equal(a, b)
    test_images, _ = read_cifar10(extracted, "test")
    assert (test_images[:, 0, 0, 0] == np.arange(50, 50 + PER_BATCH)).all()


def test_truncated_batch() -> None:
    with pytest.raises(DataError, match=r"batch\.bin: 3072 bytes is not a whole number of 3073"):
        parse_cifar10_batch(BATCHES["test_batch.bin"][:3072], "batch.bin")


def test_label_out_of_range() -> None:
    data = bytearray(BATCHES["test_batch.bin"])
    data[0] = 17
    with pytest.raises(DataError, match=r"label 17 outside 0\.\.9"):
        parse_cifar10_batch(bytes(data))


def test_archive_without_test_batch(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", skip=("test_batch.bin",))
    with pytest.raises(DataError, match=r"archive lacks test_batch\.bin"):
        read_cifar10({"cifar-10-binary.tar.gz": archive}, "test")


def test_corrupt_archive(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz")
    archive.write_bytes(archive.read_bytes()[:500])
    with pytest.raises(DataError, match=r"a\.tar\.gz: cannot read the tar archive"):
        read_cifar10({"cifar-10-binary.tar.gz": archive}, "test")


def test_load_dataset_reads_the_archive(isolated: Path) -> None:
    (isolated / "root" / "cifar10").mkdir(parents=True)
    _archive(isolated / "root" / "cifar10" / "cifar-10-binary.tar.gz")
    train = load_dataset("cifar10", root=isolated / "root", download=False)
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32) and train.images.dtype == torch.float32
    assert train.classes[0] == "airplane" and train.num_classes == 10
    assert torch.equal(train.images[7, 1], torch.full((32, 32), 100 / 255))
    test = load_dataset("cifar10", "test", root=isolated / "root", download=False)
    assert test.labels.tolist() == [(5 + i) % 10 for i in range(PER_BATCH)]

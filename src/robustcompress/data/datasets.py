"""In-memory image data sets and :func:`load_dataset`.

Every data set is an :class:`ArrayDataset`: ``float32`` images in ``[0, 1]``
shaped ``N×C×H×W`` (pixels ``/255``; any normalisation lives in the models, so
attacks work in pixel space) and ``int64`` labels. The data sets of the papers
are small enough (MNIST train: 188 MB as float32) to hold whole, which makes
subsets, batches and attacks simple index operations.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robustcompress.data.catalog import KNOWN_DATASETS, SPLITS
from robustcompress.data.cifar import read_cifar10
from robustcompress.data.download import download_dataset
from robustcompress.data.idx import read_idx_images_labels
from robustcompress.data.locate import CLASS_SUBSETS, FoundDataset, canonical_name, find_dataset
from robustcompress.data.sampling import subsample_indices
from robustcompress.errors import ConfigError, DataError


class ArrayDataset(Dataset):
    """Images and labels held as tensors, with the data set's name, split and classes.

    ``images`` is ``float32`` ``N×C×H×W`` in ``[0, 1]``; ``labels`` is ``int64``
    ``N`` in ``[0, num_classes)``. Indexing returns ``(image, label)``;
    :meth:`subset` returns another :class:`ArrayDataset` sharing the metadata.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        name: str,
        split: str,
        classes: Sequence[str],
    ) -> None:
        where = f"data set {name!r} ({split})"
        if not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
            raise DataError(f"{where}: images must be a float32 tensor, got {_describe(images)}")
        if images.ndim != 4:
            raise DataError(f"{where}: images must be N×C×H×W, got shape {tuple(images.shape)}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            raise DataError(f"{where}: labels must be an int64 tensor, got {_describe(labels)}")
        if labels.shape != (images.shape[0],):
            raise DataError(
                f"{where}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}"
            )
        if images.numel():
            low, high = torch.aminmax(images)
            if not (low >= 0 and high <= 1):  # also catches NaN
                raise DataError(
                    f"{where}: pixel values must lie in [0, 1], got [{low:.4g}, {high:.4g}]"
                )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"{where}: labels must lie in 0..{len(classes) - 1}")
        self.images = images
        self.labels = labels
        self.name = name
        self.split = split
        self.classes = tuple(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ArrayDataset:
        """The examples at ``indices`` (in that order), as a new data set of the same kind."""
        index = torch.as_tensor(indices)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise DataError(
                    f"subset of {self.name!r} ({self.split}): a boolean mask needs "
                    f"{len(self)} entries, got {tuple(index.shape)}"
                )
            index = index.nonzero().reshape(-1)
        elif index.numel() and (index.is_floating_point() or index.is_complex()):
            raise DataError(f"subset of {self.name!r}: indices must be integers, got {index.dtype}")
        index = index.to(torch.int64).reshape(-1)
        if index.numel() and (index.min() < 0 or index.max() >= len(self)):
            raise DataError(
                f"subset of {self.name!r} ({self.split}): indices must lie in 0..{len(self) - 1}"
            )
        part = copy.copy(self)
        part.images = self.images.index_select(0, index)
        part.labels = self.labels.index_select(0, index)
        return part

    def class_counts(self) -> torch.Tensor:
        """The number of examples of each class, ``num_classes`` long."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"n={len(self)}, image_shape={self.image_shape}, num_classes={self.num_classes})"
        )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor"
    return type(value).__name__


@lru_cache(maxsize=8)
def _read_split_cached(
    name: str, split: str, stamps: tuple[tuple[str, str, int, int], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Parsed ``uint8`` arrays of a split, cached per process.

    ``stamps`` holds each file's catalog name, path, modification time and size,
    so a replaced file is read again.
    """
    info = KNOWN_DATASETS[name]
    files = {file: Path(path) for file, path, _, _ in stamps}
    if info.format == "idx":
        images, labels = read_idx_images_labels(*files.values(), num_classes=info.num_classes)
    else:
        images, labels = read_cifar10(files, split)
    c, h, w = info.image_shape
    if images.shape[1:] not in ((h, w), (c, h, w)):
        raise DataError(
            f"{next(iter(files.values()))}: images are {'×'.join(map(str, images.shape[1:]))}, "
            f"expected {h}×{w} for {info.name}"
        )
    return images, labels


def read_split(found: FoundDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` images and labels of ``split`` from a located data set (cached per process)."""
    names = found.info.split_files[split] if found.specs == found.info.files else found.files
    stamps = []
    for name in names:
        stat = found.files[name].stat()
        stamps.append((name, os.fspath(found.files[name]), stat.st_mtime_ns, stat.st_size))
    return _read_split_cached(found.info.name, split, tuple(stamps))


def to_tensors(
    images: np.ndarray, labels: np.ndarray, image_shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``uint8`` arrays → ``float32`` images in ``[0, 1]`` (``/255``) and ``int64`` labels."""
    pixels = np.divide(images.reshape(-1, *image_shape), np.float32(255), dtype=np.float32)
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
    **options: Any,
) -> ArrayDataset:
    """Load ``split`` (``"train"`` or ``"test"``) of data set ``name`` as an :class:`ArrayDataset`.

    Names: ``mnist``, ``fashion-mnist``, ``cifar10`` (read from files, see
    :mod:`robustcompress.data.locate` for where they are looked for) and
    ``synthetic-subspace`` (generated; ``options`` go to
    :func:`~robustcompress.data.synthetic.make_subspace_dataset`, ``seed`` fixes
    its subspace and samples).

    ``limit`` keeps a seeded, class-stratified subset of that many examples
    (:func:`~robustcompress.data.sampling.subsample_indices`): the same ``seed``
    always gives the same subset, in the original order. When the files are
    missing and ``download`` is true, the official files are downloaded into the
    user cache and verified; otherwise, or if that fails, a :class:`DataError`
    says where it looked and how to fix it.
    """
    key = canonical_name(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} of {key!r}: choose one of {', '.join(SPLITS)}")
    if key == "synthetic-subspace":
        from robustcompress.data.synthetic import make_subspace_dataset  # imports this module

        dataset = make_subspace_dataset(split=split, seed=seed, **options)
        if limit is None:
            return dataset
        return dataset.subset(subsample_indices(dataset.labels, limit, seed))
    if options:
        raise ConfigError(f"data set {key!r} takes no options, got {', '.join(sorted(options))}")
    if key in CLASS_SUBSETS:
        return _class_subset(key, split, root, limit, seed, download)
    found = _find_or_download(key, root, download)
    pixels, targets = read_split(found, split)
    if limit is not None:  # subsample the bytes: only the kept images are converted
        keep = subsample_indices(torch.from_numpy(targets.astype(np.int64)), limit, seed).numpy()
        pixels, targets = pixels[keep], targets[keep]
    images, labels = to_tensors(pixels, targets, found.info.image_shape)
    return ArrayDataset(images, labels, name=key, split=split, classes=found.info.classes)


def _class_subset(
    key: str,
    split: str,
    root: str | os.PathLike[str] | None,
    limit: int | None,
    seed: int,
    download: bool,
) -> ArrayDataset:
    """The examples of the kept classes of :data:`CLASS_SUBSETS` ``[key]``, relabelled
    in the listed order, then (with ``limit``) a seeded class-stratified subset."""
    base, classes = CLASS_SUBSETS[key]
    full = load_dataset(base, split, root=root, seed=seed, download=download)
    relabel = torch.full((int(full.labels.max()) + 1,), -1, dtype=torch.long)
    relabel[list(classes)] = torch.arange(len(classes))
    kept = relabel[full.labels] >= 0
    names = tuple(full.classes[c] for c in classes)
    dataset = ArrayDataset(
        full.images[kept],
        relabel[full.labels[kept]],
        name=key,
        split=split,
        classes=names,
    )
    if limit is None:
        return dataset
    return dataset.subset(subsample_indices(dataset.labels, limit, seed))


def _find_or_download(
    name: str, root: str | os.PathLike[str] | None, download: bool
) -> FoundDataset:
    try:
        return find_dataset(name, root)
    except DataError as missing:
        if not download:
            raise DataError(f"{missing} Downloading was off (download=False).") from None
        try:
            download_dataset(name)
        except DataError as failed:
            raise DataError(f"{missing} The download failed: {failed}") from None
        return find_dataset(name, root)


@functools.cache
def dataset_classes(name: str) -> int | None:
    """How many classes data set ``name`` has: from the catalogue for file-based sets,
    else (a generated set) from its test labels; ``None`` when neither works. Looked up
    once per name and process."""
    from robustcompress.data.locate import dataset_info

    try:
        return dataset_info(name).num_classes
    except Exception:  # a generated data set: count its labels
        try:
            return int(load_dataset(name, "test").labels.max()) + 1
        except Exception:
            return None

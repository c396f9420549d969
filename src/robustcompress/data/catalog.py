"""What the project knows about each data set: files, mirrors, checksums, classes.

``KNOWN_DATASETS`` maps a data set's name to a :class:`DatasetInfo`. Under a data
root the layout is ``<root>/<name>/<files>``, with the files named exactly as the
official distribution names them, so a folder filled by hand from the official
site, by ``apt-get install dataset-fashion-mnist`` or by our downloader is read
unchanged. Any ``.gz`` file may also be stored decompressed (the name without
``.gz``).

Checksums (:class:`Digest`) and where each comes from:

* **MNIST.** The files in the project's shared data folder were re-gzipped
  (``gzip -9 -n``), so their SHA-256 differs from the archives served by the
  official mirrors. We accept either SHA-256 *or* the MD5 of the uncompressed IDX
  content (the same for both, given in the shared data README), so official
  downloads and the re-gzipped copies both verify.
* **Fashion-MNIST.** The SHA-256 sums are those of Debian's
  ``dataset-fashion-mnist`` files (the shared folder's ``SHA256SUMS``). Debian's
  archives are 23–24 bytes shorter than Zalando's (no file name in the gzip
  header), so we also accept Zalando's published MD5 of each ``.gz`` and the MD5
  of the uncompressed content computed from the verified Debian files.
* **CIFAR-10** (binary version). Only the MD5 of ``cifar-10-binary.tar.gz``
  published on the data set's home page; we have not verified a SHA-256 of it.
  Extracted batch files carry no published checksum; only their size is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Digest:
    """One accepted checksum of a file.

    ``of="file"`` hashes the bytes as stored (e.g. the ``.gz`` archive);
    ``of="content"`` hashes the decompressed bytes, so a re-compressed or
    decompressed copy of the same data still verifies.
    """

    algorithm: Literal["sha256", "md5"]
    hexdigest: str
    of: Literal["file", "content"] = "file"
    source: str = ""


@dataclass(frozen=True)
class FileSpec:
    """A file of a data set: its name under ``<root>/<name>/``, mirrors and checksums."""

    name: str
    urls: tuple[str, ...] = ()
    digests: tuple[Digest, ...] = ()
    size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a file-based data set.

    ``files`` is the official distribution (what the downloader fetches);
    ``split_files`` names the files each split reads; ``alternative_files`` is
    another accepted on-disk layout (CIFAR-10's extracted batches).
    """

    name: str
    title: str
    citation: str
    homepage: str
    format: Literal["idx", "cifar10-binary"]
    image_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    split_sizes: Mapping[str, int]
    files: tuple[FileSpec, ...]
    split_files: Mapping[str, tuple[str, ...]]
    alternative_files: tuple[FileSpec, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _idx_files(
    mirrors: tuple[str, ...], sums: Mapping[str, tuple[Digest, ...]]
) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(name=name, urls=tuple(m + name for m in mirrors), digests=digests)
        for name, digests in sums.items()
    )


_IDX_SPLITS = MappingProxyType(
    {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
)

_SHARED = "robustcompress shared data (re-gzipped, gzip -9 -n)"
_MNIST_PUBLISHED = "official archive, as published by many independent loaders"
_MNIST_README = "uncompressed IDX, shared data README"

MNIST = DatasetInfo(
    name="mnist",
    title="MNIST handwritten digits",
    citation="LeCun, Bottou, Bengio & Haffner 1998; LeCun & Cortes, MNIST database",
    homepage="http://yann.lecun.com/exdb/mnist/",
    format="idx",
    image_shape=(1, 28, 28),
    classes=tuple(str(d) for d in range(10)),
    split_sizes=MappingProxyType({"train": 60_000, "test": 10_000}),
    # The official site often refuses downloads; the mirrors serve identical files.
    files=_idx_files(
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        {
            "train-images-idx3-ubyte.gz": (
                Digest(
                    "sha256",
                    "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
                    source=_SHARED,
                ),
                Digest(
                    "sha256",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    source=_MNIST_PUBLISHED,
                ),
                Digest("md5", "6bbc9ace898e44ae57da46a324031adb", "content", _MNIST_README),
            ),
            "train-labels-idx1-ubyte.gz": (
                Digest(
                    "sha256",
                    "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
                    source=_SHARED,
                ),
                Digest(
                    "sha256",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    source=_MNIST_PUBLISHED,
                ),
                Digest("md5", "a25bea736e30d166cdddb491f175f624", "content", _MNIST_README),
            ),
            "t10k-images-idx3-ubyte.gz": (
                Digest(
                    "sha256",
                    "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
                    source=_SHARED,
                ),
                Digest(
                    "sha256",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    source=_MNIST_PUBLISHED,
                ),
                Digest("md5", "2646ac647ad5339dbf082846283269ea", "content", _MNIST_README),
            ),
            "t10k-labels-idx1-ubyte.gz": (
                Digest(
                    "sha256",
                    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
                    source=_SHARED,
                ),
                Digest(
                    "sha256",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    source=_MNIST_PUBLISHED,
                ),
                Digest("md5", "27ae3e4e09519cfbb04c329615203637", "content", _MNIST_README),
            ),
        },
    ),
    split_files=_IDX_SPLITS,
)

_DEBIAN = "Debian dataset-fashion-mnist"
_ZALANDO = "official archive, zalandoresearch/fashion-mnist README"
_CONTENT = "uncompressed IDX, computed from the Debian files"

FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    title="Fashion-MNIST",
    citation="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    format="idx",
    image_shape=(1, 28, 28),
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    split_sizes=MappingProxyType({"train": 60_000, "test": 10_000}),
    files=_idx_files(
        (
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        {
            "train-images-idx3-ubyte.gz": (
                Digest(
                    "sha256",
                    "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                    source=_DEBIAN,
                ),
                Digest("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", source=_ZALANDO),
                Digest("md5", "f4a8712d7a061bf5bd6d2ca38dc4d50a", "content", _CONTENT),
            ),
            "train-labels-idx1-ubyte.gz": (
                Digest(
                    "sha256",
                    "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                    source=_DEBIAN,
                ),
                Digest("md5", "25c81989df183df01b3e8a0aad5dffbe", source=_ZALANDO),
                Digest("md5", "9018921c3c673c538a1fc5bad174d6f9", "content", _CONTENT),
            ),
            "t10k-images-idx3-ubyte.gz": (
                Digest(
                    "sha256",
                    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                    source=_DEBIAN,
                ),
                Digest("md5", "bef4ecab320f06d8554ea6380940ec79", source=_ZALANDO),
                Digest("md5", "8181f5470baa50b63fa0f6fddb340f0a", "content", _CONTENT),
            ),
            "t10k-labels-idx1-ubyte.gz": (
                Digest(
                    "sha256",
                    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                    source=_DEBIAN,
                ),
                Digest("md5", "bb300cfdad3c16e7a12a480ee83cd310", source=_ZALANDO),
                Digest("md5", "15d484375f8d13e6eb1aabb0c3f46965", "content", _CONTENT),
            ),
        },
    ),
    split_files=_IDX_SPLITS,
)

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
"""One record of the binary version: a label byte, then 1024 R, 1024 G, 1024 B bytes."""
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_BATCHES = ("test_batch.bin",)

CIFAR10 = DatasetInfo(
    name="cifar10",
    title="CIFAR-10 (binary version)",
    citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    format="cifar10-binary",
    image_shape=(3, 32, 32),
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    split_sizes=MappingProxyType({"train": 50_000, "test": 10_000}),
    files=(
        FileSpec(
            name=CIFAR10_ARCHIVE,
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            digests=(
                Digest(
                    "md5",
                    "c32a1d4ab5d03f1284b67883e8d87530",
                    source="official MD5, CIFAR home page",
                ),
            ),
            size=170_052_171,
        ),
    ),
    split_files=MappingProxyType({"train": (CIFAR10_ARCHIVE,), "test": (CIFAR10_ARCHIVE,)}),
    # The archive extracted by hand: the six batches in cifar-10-batches-bin/.
    alternative_files=tuple(
        FileSpec(name=f"cifar-10-batches-bin/{batch}", size=10_000 * CIFAR10_RECORD_BYTES)
        for batch in CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES
    ),
)

KNOWN_DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    {info.name: info for info in (MNIST, FASHION_MNIST, CIFAR10)}
)
"""Every file-based data set, by name."""

ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "fashion_mnist": "fashion-mnist",
        "fashionmnist": "fashion-mnist",
        "fmnist": "fashion-mnist",
        "cifar-10": "cifar10",
        "cifar_10": "cifar10",
    }
)
"""Other spellings accepted for a data set's name."""

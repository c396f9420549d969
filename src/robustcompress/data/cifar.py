"""Reader of CIFAR-10's official *binary* distribution (never the pickled one).

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/data_batch_{1..5}.bin``
(training) and ``test_batch.bin``, each 10,000 records of 3,073 bytes: one label
byte (0–9), then the 32×32 red, green and blue planes, row-major
(Krizhevsky 2009; the format is described on the CIFAR home page). We read the
batches straight from the archive, or from the extracted files, with
:mod:`tarfile` and :mod:`numpy` only: nothing is unpickled or written to disk.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from robustcompress.data.catalog import (
    CIFAR10_ARCHIVE,
    CIFAR10_RECORD_BYTES,
    CIFAR10_TEST_BATCHES,
    CIFAR10_TRAIN_BATCHES,
)
from robustcompress.errors import DataError

CIFAR10_IMAGE_SHAPE = (3, 32, 32)


def parse_cifar10_batch(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Decode one binary batch into ``uint8`` images ``N×3×32×32`` and labels ``N``."""
    if not data or len(data) % CIFAR10_RECORD_BYTES:
        raise DataError(
            f"{source}: {len(data)} bytes is not a whole number of {CIFAR10_RECORD_BYTES}-byte "
            "CIFAR-10 records; the file is truncated or corrupt"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    if int(labels.max()) > 9:
        raise DataError(
            f"{source}: label {int(labels.max())} outside 0..9; this is not a CIFAR-10 batch "
            "(CIFAR-100's binary records have two label bytes)"
        )
    return records[:, 1:].reshape(-1, *CIFAR10_IMAGE_SHAPE), labels


def _batches_from_archive(archive: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if member.isfile() and base in wanted:
                    stream = tar.extractfile(member)
                    if stream is not None:
                        blobs[base] = stream.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{archive}: cannot read the tar archive ({exc}); delete it and download it again"
        ) from exc
    missing = [w for w in wanted if w not in blobs]
    if missing:
        raise DataError(
            f"{archive}: archive lacks {', '.join(missing)}; is it cifar-10-binary.tar.gz "
            "(not the python or matlab version)?"
        )
    return blobs


def read_cifar10(files: Mapping[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``uint8`` images ``N×3×32×32`` and labels of a CIFAR-10 ``split``.

    ``files`` maps catalog names to paths: either the archive
    (``cifar-10-binary.tar.gz``) or the extracted ``cifar-10-batches-bin/*.bin``.
    """
    wanted = CIFAR10_TRAIN_BATCHES if split == "train" else CIFAR10_TEST_BATCHES
    if CIFAR10_ARCHIVE in files:
        blobs = _batches_from_archive(files[CIFAR10_ARCHIVE], wanted)
        sources = {w: f"{files[CIFAR10_ARCHIVE]}:{w}" for w in wanted}
    else:
        paths = {PurePosixPath(name).name: path for name, path in files.items()}
        blobs, sources = {}, {}
        for w in wanted:
            if w not in paths:
                raise DataError(f"CIFAR-10 batch {w} is missing among {sorted(paths)}")
            try:
                blobs[w] = paths[w].read_bytes()
            except OSError as exc:
                raise DataError(f"cannot read {paths[w]}: {exc.strerror or exc}") from exc
            sources[w] = str(paths[w])
    parts = [parse_cifar10_batch(blobs[w], sources[w]) for w in wanted]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels

"""Reader and writer of the IDX format of MNIST and Fashion-MNIST, gzip'd or raw.

An IDX file is a 4-byte magic number ``0x00 0x00 TT DD`` (``TT`` the element
type, ``DD`` the number of dimensions), then ``DD`` big-endian ``uint32``
dimension sizes, then the elements in C order, big-endian
(LeCun & Cortes, "THE IDX FILE FORMAT", MNIST home page).

Every problem with a file (unreadable, bad gzip stream, bad magic number, unknown
type, truncated or overlong data, unexpected type or rank, image and label counts
that disagree) raises :class:`~robustcompress.errors.DataError` naming the file
and what is wrong; no bare ``struct``/``gzip``/``numpy`` error escapes.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from robustcompress.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX element-type codes and their (big-endian) numpy dtypes."""

_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes.

    Compression is detected from the content, not the file name, so a decompressed
    ``train-images-idx3-ubyte`` and its ``.gz`` are read alike.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise DataError(
            f"{path}: gzip stream is truncated; delete the file and download it again"
        ) from exc
    except (OSError, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt gzip stream ({exc}); delete the file and download it again"
        ) from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array of native byte order.

    ``source`` names the origin in error messages. The data must hold exactly the
    ``prod(dims) · itemsize`` bytes the header promises: fewer means a truncated
    file, more means a corrupt one.
    """
    if len(data) < 4:
        raise DataError(f"{source}: not an IDX file ({len(data)} bytes, shorter than the header)")
    if data[0] != 0 or data[1] != 0:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(
            f"{source}: bad IDX magic number 0x{magic:08x}: expected 0x0000TTDD "
            "(is this an IDX file, and was it decompressed correctly?)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        raise DataError(
            f"{source}: unknown IDX element type 0x{type_code:02x}: expected one of "
            + ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
        )
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{source}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header})"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual < expected:
        raise DataError(
            f"{source}: truncated IDX data: header {'×'.join(map(str, dims))} needs "
            f"{expected} bytes, file holds {actual}; download the file again"
        )
    if actual > expected:
        raise DataError(
            f"{source}: corrupt IDX file: {actual - expected} bytes beyond the "
            f"{'×'.join(map(str, dims))} elements the header declares"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx(
    path: str | os.PathLike[str],
    *,
    dtype: np.dtype | type | None = None,
    ndim: int | None = None,
) -> np.ndarray:
    """Read an IDX file (gzip'd or raw) and check its element type and rank.

    ``dtype``/``ndim``, when given, are required of the file (e.g. ``np.uint8`` and
    3 for MNIST images); a mismatch is a :class:`DataError`.
    """
    array = parse_idx(read_bytes(path), str(path))
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise DataError(f"{path}: IDX elements are {array.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and array.ndim != ndim:
        raise DataError(
            f"{path}: IDX array has {array.ndim} dimensions {array.shape}, expected {ndim}"
        )
    return array


def read_idx_images_labels(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair of IDX files: ``uint8`` images ``N×H×W`` and ``uint8`` labels ``N``.

    The image and label counts must agree and, when ``num_classes`` is given, every
    label must lie in ``[0, num_classes)``.
    """
    images = read_idx(images_path, dtype=np.uint8, ndim=3)
    labels = read_idx(labels_path, dtype=np.uint8, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels: the files belong to different splits or one is corrupt"
        )
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{labels_path}: label {int(labels.max())} outside 0..{num_classes - 1}: "
            "the file is corrupt or belongs to another data set"
        )
    return images, labels


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`parse_idx`)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _TYPE_CODES:
        raise DataError(
            f"cannot write {array.dtype} as IDX: use uint8, int8, int16, int32, float32 or float64"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write a {array.ndim}-dimensional array as IDX")
    code = _TYPE_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None
) -> Path:
    """Write ``array`` as an IDX file; gzip'd when ``compress`` (default: name ends ``.gz``)."""
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path

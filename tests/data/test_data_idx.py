"""IDX reader: round trips, the exact byte layout, and every corruption → DataError."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robustcompress.data.idx import (
    encode_idx,
    parse_idx,
    read_idx,
    read_idx_images_labels,
    write_idx,
)
from robustcompress.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def test_encoding_matches_the_published_layout() -> None:
    # magic 0x00000802 (uint8, 2 dims), dims 2 and 3 big-endian, then the elements
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    assert encode_idx(array) == expected
    np.testing.assert_array_equal(parse_idx(expected), array)


def test_multibyte_elements_are_big_endian() -> None:
    data = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(parse_idx(data), np.array([258, -2], dtype=np.int16))


@settings(max_examples=40, deadline=None)
@given(
    array=st.sampled_from(DTYPES).flatmap(
        lambda dtype: hnp.arrays(
            dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)
        )
    ),
    compress=st.booleans(),
)
def test_write_then_read_round_trips(array: np.ndarray, compress: bool, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def _pair(tmp_path: Path, n_images: int = 5, n_labels: int = 5) -> tuple[Path, Path]:
    images = write_idx(tmp_path / "img.gz", np.zeros((n_images, 4, 4), np.uint8))
    labels = write_idx(tmp_path / "lab.gz", np.arange(n_labels, dtype=np.uint8))
    return images, labels


def test_reads_a_valid_pair(tmp_path: Path) -> None:
    images, labels = read_idx_images_labels(*_pair(tmp_path), num_classes=10)
    assert images.shape == (5, 4, 4) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(5))


def test_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match=r"bad\.idx: bad IDX magic number 0x12340801"):
        read_idx(path)


def test_unknown_element_type(tmp_path: Path) -> None:
    path = tmp_path / "type.idx"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match=r"type\.idx: unknown IDX element type 0x07"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data(tmp_path: Path, compress: bool) -> None:
    full = encode_idx(np.zeros((3, 4, 4), np.uint8))
    path = tmp_path / "short.idx"
    path.write_bytes(gzip.compress(full[:-5]) if compress else full[:-5])
    with pytest.raises(DataError, match=r"short\.idx: truncated IDX data: .* needs 48 bytes.* 43"):
        read_idx(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "head.idx"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long.idx"
    path.write_bytes(encode_idx(np.zeros(4, np.uint8)) + b"\x00\x00")
    with pytest.raises(DataError, match="2 bytes beyond"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    data = gzip.compress(encode_idx(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: gzip stream is truncated"):
        read_idx(path)


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(encode_idx(np.arange(1000, dtype=np.int32))))
    data[-8] ^= 0xFF  # the CRC-32 of the trailer no longer matches
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"crc\.gz: corrupt gzip stream"):
        read_idx(path)


def test_garbage_after_gzip_magic(tmp_path: Path) -> None:
    path = tmp_path / "junk.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    with pytest.raises(DataError, match=r"junk\.gz: corrupt gzip stream"):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read .*nothing\.gz"):
        read_idx(tmp_path / "nothing.gz")


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds 5 images but .*lab\.gz holds 4 labels"):
        read_idx_images_labels(*_pair(tmp_path, 5, 4))


def test_labels_must_fit_the_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label 4 outside 0\.\.3"):
        read_idx_images_labels(*_pair(tmp_path), num_classes=4)


def test_expected_dtype_and_rank(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "f.idx", np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="elements are float32, expected uint8"):
        read_idx(path, dtype=np.uint8)
    with pytest.raises(DataError, match="has 2 dimensions"):
        read_idx(path, ndim=3)


def test_cannot_write_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot write uint16"):
        write_idx(tmp_path / "x.idx", np.zeros(3, np.uint16))

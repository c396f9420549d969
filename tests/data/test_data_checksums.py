"""Checksum verification: file and content digests, sizes, and the real files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from robustcompress.data.catalog import KNOWN_DATASETS, Digest, FileSpec
from robustcompress.data.checksums import check_file, matching_digest

CONTENT = b"the uncompressed content" * 100


def _gz(tmp_path: Path) -> Path:
    path = tmp_path / "file.gz"
    path.write_bytes(gzip.compress(CONTENT, mtime=0))
    return path


def test_file_digest_matches_the_stored_bytes(tmp_path: Path) -> None:
    path = _gz(tmp_path)
    good = Digest("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    wrong = Digest("sha256", hashlib.sha256(CONTENT).hexdigest())  # content, declared as file
    assert matching_digest(path, (wrong, good)) == good
    assert matching_digest(path, (wrong,)) is None


def test_content_digest_matches_gzipped_and_decompressed_copies(tmp_path: Path) -> None:
    digest = Digest("md5", hashlib.md5(CONTENT).hexdigest(), of="content")
    spec = FileSpec("file.gz", digests=(digest,))
    plain = tmp_path / "file"
    plain.write_bytes(CONTENT)
    for path in (_gz(tmp_path), plain):
        check = check_file(path, spec)
        assert check.status == "ok" and check.detail.startswith("md5 of content")


def test_content_digest_of_concatenated_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(CONTENT[:1000]) + gzip.compress(CONTENT[1000:]))
    digest = Digest("sha256", hashlib.sha256(CONTENT).hexdigest(), of="content")
    assert matching_digest(path, (digest,)) == digest


def test_corrupt_gzip_matches_no_content_digest(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(CONTENT)[:40])
    spec = FileSpec("cut.gz", digests=(Digest("md5", hashlib.md5(CONTENT).hexdigest(), "content"),))
    assert check_file(path, spec).status == "mismatch"


def test_size_is_checked_when_there_is_no_digest(tmp_path: Path) -> None:
    path = tmp_path / "batch.bin"
    path.write_bytes(b"x" * 10)
    assert check_file(path, FileSpec("batch.bin", size=10)).status == "ok"
    check = check_file(path, FileSpec("batch.bin", size=11))
    assert check.status == "mismatch" and "10 bytes, expected 11" in check.detail
    assert check_file(path, FileSpec("batch.bin")).status == "unchecked"


def test_missing_and_decompressed_without_content_digest(tmp_path: Path) -> None:
    spec = FileSpec("a.tar.gz", digests=(Digest("md5", "0" * 32),))
    assert check_file(tmp_path / "a.tar.gz", spec).status == "missing"
    plain = tmp_path / "a.tar"
    plain.write_bytes(b"tar")
    assert check_file(plain, spec).status == "unchecked"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_files_verify(real_data: Path, name: str) -> None:
    for spec in KNOWN_DATASETS[name].files:
        check = check_file(real_data / name / spec.name, spec)
        assert check.status == "ok", (spec.name, check.detail)


def test_decompressed_mnist_verifies_by_its_content_md5(real_data: Path, tmp_path: Path) -> None:
    spec = next(s for s in KNOWN_DATASETS["mnist"].files if s.name.startswith("t10k-labels"))
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((real_data / "mnist" / spec.name).read_bytes()))
    check = check_file(plain, spec)
    assert check.status == "ok" and check.detail.startswith("md5 of content")

"""Downloading with a fake ``fetch``: checksum, atomic move, mirrors, failures. No network."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from robustcompress.data import download, load_dataset
from robustcompress.data.catalog import Digest, FileSpec
from robustcompress.data.download import download_dataset, download_file
from robustcompress.errors import DataError

PAYLOAD = b"official bytes" * 50
SPEC = FileSpec(
    "file.bin",
    urls=("https://mirror-a/file.bin", "https://mirror-b/file.bin"),
    digests=(Digest("sha256", hashlib.sha256(PAYLOAD).hexdigest()),),
)


class FakeFetch:
    """Serves bytes per URL (an exception instance is raised instead) and records calls."""

    def __init__(self, responses: dict[str, bytes | Exception]) -> None:
        self.responses = responses
        self.calls: list[str] = []

    def __call__(self, url: str, dest: Path) -> None:
        self.calls.append(url)
        response = self.responses[url]
        if isinstance(response, Exception):
            raise response
        dest.write_bytes(response)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_verified_download_is_moved_into_place(tmp_path: Path) -> None:
    fetch = FakeFetch({SPEC.urls[0]: PAYLOAD})
    path = download_file(SPEC, tmp_path / "d", fetch=fetch)
    assert path == tmp_path / "d" / "file.bin" and path.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "d") == ["file.bin"]
    assert fetch.calls == [SPEC.urls[0]]


def test_corrupt_download_leaves_nothing_behind(tmp_path: Path) -> None:
    fetch = FakeFetch({u: PAYLOAD[:-1] + b"!" for u in SPEC.urls})
    with pytest.raises(DataError, match=r"could not download file\.bin: .*mirror-a.*checksum"):
        download_file(SPEC, tmp_path, fetch=fetch)
    assert _leftovers(tmp_path) == []
    assert fetch.calls == list(SPEC.urls)


@pytest.mark.parametrize(
    "served",
    [b"not gzip at all", gzip.compress(b"wrong tar", mtime=0)],
    ids=["not-gzip", "gzip-not-tar"],
)
def test_corrupt_archive_download_is_rejected(tmp_path: Path, served: bytes) -> None:
    good = gzip.compress(b"the archive", mtime=0)
    spec = FileSpec(
        "archive.tar.gz",
        urls=("https://host/archive.tar.gz",),
        digests=(Digest("md5", hashlib.md5(good).hexdigest()),),
    )
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(spec, tmp_path, fetch=FakeFetch({spec.urls[0]: served}))
    assert _leftovers(tmp_path) == []
    assert download_file(spec, tmp_path, fetch=FakeFetch({spec.urls[0]: good})).read_bytes() == good


def test_next_mirror_after_a_network_error(tmp_path: Path) -> None:
    fetch = FakeFetch({SPEC.urls[0]: URLError("unreachable"), SPEC.urls[1]: PAYLOAD})
    assert download_file(SPEC, tmp_path, fetch=fetch).read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["file.bin"]


def test_every_failure_is_reported(tmp_path: Path) -> None:
    fetch = FakeFetch({SPEC.urls[0]: URLError("no route"), SPEC.urls[1]: OSError("disk full")})
    with pytest.raises(
        DataError, match=r"mirror-a/file\.bin: .*no route.*; .*mirror-b/file\.bin: disk full"
    ):
        download_file(SPEC, tmp_path, fetch=fetch)
    assert _leftovers(tmp_path) == []


def test_verified_file_in_place_is_not_fetched_again(tmp_path: Path) -> None:
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    fetch = FakeFetch({})
    download_file(SPEC, tmp_path, fetch=fetch)
    assert fetch.calls == []


def test_corrupt_file_in_place_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "file.bin").write_bytes(b"partial")
    download_file(SPEC, tmp_path, fetch=FakeFetch({SPEC.urls[0]: PAYLOAD}))
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def _serve_from(folder: Path) -> FakeFetch:
    """A fetch that serves the real files under ``folder`` by their base name."""

    class Local(FakeFetch):
        def __call__(self, url: str, dest: Path) -> None:
            self.calls.append(url)
            shutil.copyfile(folder / url.rsplit("/", 1)[1], dest)

    return Local({})


def test_download_then_load_from_the_cache(isolated: Path, real_data: Path, monkeypatch) -> None:
    fetch = _serve_from(real_data / "mnist")
    monkeypatch.setattr(download, "fetch_url", fetch)
    test = load_dataset("mnist", "test", limit=100)
    cache = isolated / "cache" / "robustcompress" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert len(fetch.calls) == 4 and len(test) == 100
    reference = load_dataset("mnist", "test", root=real_data, limit=100)
    assert torch.equal(test.images, reference.images)


def test_download_dataset_into_a_folder(real_data: Path, tmp_path: Path) -> None:
    folder = download_dataset(
        "fashion-mnist", directory=tmp_path, fetch=_serve_from(real_data / "fashion-mnist")
    )
    assert folder == tmp_path and len(list(tmp_path.iterdir())) == 4


def test_failed_download_says_where_it_looked(isolated: Path, monkeypatch) -> None:
    def offline(url: str, dest: Path) -> None:
        raise URLError("Name or service not known")

    monkeypatch.setattr(download, "fetch_url", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=isolated / "root")
    message = str(info.value)
    assert "looked in:" in message and str(isolated / "root" / "cifar10") in message
    assert "The download failed: could not download cifar-10-binary.tar.gz" in message
    assert "Name or service not known" in message
    assert not (
        isolated / "cache" / "robustcompress" / "cifar10" / "cifar-10-binary.tar.gz"
    ).exists()


def test_no_download_when_disabled(isolated: Path, monkeypatch) -> None:
    fetch = FakeFetch({})
    monkeypatch.setattr(download, "fetch_url", fetch)
    with pytest.raises(DataError, match=r"not found .*Downloading was off \(download=False\)"):
        load_dataset("mnist", download=False)
    assert fetch.calls == []

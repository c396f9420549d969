"""A failed download leaves nothing behind: no folder it created, no file it fetched."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from urllib.error import URLError

import pytest

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


def _offline(url: str, dest: Path) -> None:
    raise URLError("Name or service not known")


class Serve:
    """``fetch`` serving ``respond(n, url)`` for the n-th call (bytes, or raises)."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.calls: list[str] = []

    def __call__(self, url: str, dest: Path) -> None:
        self.calls.append(url)
        dest.write_bytes(self.respond(len(self.calls), url))


def test_failed_load_leaves_no_cache_folder(isolated: Path, monkeypatch) -> None:
    monkeypatch.setattr(download, "fetch_url", _offline)
    with pytest.raises(DataError, match="The download failed"):
        load_dataset("mnist", "test", limit=10)
    # neither <cache>/robustcompress/mnist nor <cache>/robustcompress nor <cache>
    assert not (isolated / "cache").exists()


def test_failed_download_file_removes_only_the_folders_it_created(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper"
    with pytest.raises(DataError):
        download_file(SPEC, target, fetch=_offline)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # an existing folder stays, with what was in it
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "other.txt").write_text("mine")
    with pytest.raises(DataError):
        download_file(SPEC, tmp_path / "kept", fetch=Serve(lambda n, url: b"bad"))
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["other.txt"]


def test_a_data_set_failing_half_way_removes_the_files_it_fetched(
    real_data: Path, tmp_path: Path
) -> None:
    source = real_data / "fashion-mnist"

    def first_only(n: int, url: str) -> bytes:
        if n > 1:
            raise URLError("connection reset")
        return (source / url.rsplit("/", 1)[1]).read_bytes()

    fetch = Serve(first_only)
    target = tmp_path / "cache" / "fashion-mnist"
    with pytest.raises(DataError, match="connection reset"):
        download_dataset("fashion-mnist", directory=target, fetch=fetch)
    assert len(fetch.calls) >= 2
    assert not (tmp_path / "cache").exists()
    # a file that was there before the call is left alone
    target.mkdir(parents=True)
    first = next(iter(sorted(source.glob("*.gz"))))
    shutil.copyfile(first, target / first.name)
    with pytest.raises(DataError):
        download_dataset("fashion-mnist", directory=target, fetch=_offline)
    assert [p.name for p in target.iterdir()] == [first.name]

"""Downloading the official files into the user cache, checked and moved atomically.

Each file is fetched from its mirrors in turn into a temporary file beside its
destination, verified against the catalog's checksums, and only then moved into
place with :func:`os.replace` (atomic on one file system), so an interrupted or
corrupt download never leaves a file where a loader would read it. A download that
fails leaves nothing behind: no temporary file, none of the data set's files fetched
by the failed call, and no folder it created (the cache folder included).

The network access is one function, ``fetch(url, dest)``; pass another (or
monkeypatch :func:`fetch_url`) to serve local bytes in tests.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from robustcompress.data.catalog import FileSpec
from robustcompress.data.checksums import check_file
from robustcompress.data.locate import dataset_info, user_cache_dir
from robustcompress.errors import DataError, RobustCompressError

Fetch = Callable[[str, Path], None]
"""``fetch(url, dest)`` writes the resource at ``url`` to the file ``dest``."""

DOWNLOAD_TIMEOUT = 60.0
"""Seconds to wait for a server to answer before trying the next mirror."""


def fetch_url(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` with :mod:`urllib` (the default ``fetch``)."""
    request = urllib.request.Request(url, headers={"User-Agent": "robustcompress"})
    with (
        urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response,
        Path(dest).open("wb") as out,
    ):
        shutil.copyfileobj(response, out, length=1 << 20)


def download_file(spec: FileSpec, directory: Path, *, fetch: Fetch | None = None) -> Path:
    """Fetch ``spec`` into ``directory / spec.name`` from the first mirror that verifies.

    A file already in place that verifies is kept. Each attempt goes to a temporary
    file that is deleted unless it verifies; a :class:`DataError` lists every
    mirror tried and why it failed.
    """
    fetch = fetch or fetch_url
    created = _missing_folders(directory)
    try:
        return _download_file(spec, directory, fetch)
    except BaseException:
        _remove_empty(created)
        raise


def _download_file(spec: FileSpec, directory: Path, fetch: Fetch) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / spec.name
    if final.is_file() and check_file(final, spec).ok:
        return final
    failures: list[str] = []
    for url in spec.urls:
        handle, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=directory)
        os.close(handle)
        tmp = Path(tmp_name)
        try:
            fetch(url, tmp)
            check = check_file(tmp, spec)
            if not check.ok and (spec.digests or spec.size is not None):
                failures.append(f"{url}: checksum mismatch ({check.detail})")
                continue
            os.replace(tmp, final)
            return final
        except (OSError, ValueError, http.client.HTTPException, RobustCompressError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    if not spec.urls:
        failures.append("no download address is known")
    raise DataError(f"could not download {spec.name}: " + "; ".join(failures))


def download_dataset(
    name: str, *, directory: str | os.PathLike[str] | None = None, fetch: Fetch | None = None
) -> Path:
    """Download every official file of data set ``name``; return the folder holding them.

    The folder is ``directory`` or ``<user cache>/<name>`` (the cache is searched by
    :func:`~robustcompress.data.locate.find_dataset`). If one file cannot be had, the
    files this call fetched and the folders it created are removed before the
    :class:`DataError` is raised.
    """
    info = dataset_info(name)
    target = Path(directory) if directory is not None else user_cache_dir() / info.name
    created = _missing_folders(target)
    fetched: list[Path] = []
    try:
        for spec in info.files:
            existed = (target / spec.name).exists()
            path = download_file(spec, target, fetch=fetch)
            if not existed:
                fetched.append(path)
    except BaseException:
        for path in fetched:
            path.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    return target


def _missing_folders(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing: list[Path] = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) while it is empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (another process put files there), or gone
            break

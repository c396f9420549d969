"""Checksum verification of data files against the digests in the catalog.

A file verifies when *any* accepted :class:`~robustcompress.data.catalog.Digest`
matches: a ``"file"`` digest is compared with the hash of the bytes as stored, a
``"content"`` digest with the hash of the gunzipped bytes (or of the bytes
themselves when the file is stored decompressed). So MNIST verifies whether it is
the official archive, a re-gzipped copy, or decompressed by hand.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from robustcompress.data.catalog import Digest, FileSpec
from robustcompress.data.idx import GZIP_MAGIC

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file.

    ``status`` is ``"ok"`` (a digest or, lacking digests, the size matched),
    ``"mismatch"`` (no accepted digest matched, or the size is wrong),
    ``"unchecked"`` (nothing to check against) or ``"missing"``.
    """

    name: str
    path: Path | None
    status: Literal["ok", "mismatch", "unchecked", "missing"]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _hashes(path: Path, algorithms: Collection[str], *, gunzip: bool) -> dict[str, str]:
    """Hex digests of the file's bytes (or its gunzipped bytes), streaming."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if decompressor is not None:
                chunk = decompressor.decompress(chunk)
                # concatenated gzip members: start a new decompressor on the leftover
                while decompressor.eof and decompressor.unused_data:
                    rest = decompressor.unused_data
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    chunk += decompressor.decompress(rest)
            for h in hashers.values():
                h.update(chunk)
    if decompressor is not None and not decompressor.eof:
        raise zlib.error("gzip stream is truncated")
    return {a: h.hexdigest() for a, h in hashers.items()}


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with Path(path).open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def matching_digest(path: str | os.PathLike[str], digests: tuple[Digest, ...]) -> Digest | None:
    """The first accepted digest that matches ``path``, or ``None``.

    For a gzip'd file, ``"file"`` digests are checked on the stored bytes and
    ``"content"`` digests on the decompressed bytes; for any other file both kinds
    are checked on the bytes as stored. A corrupt gzip stream matches no content
    digest.
    """
    path = Path(path)
    compressed = is_gzip(path)
    stored = {d.algorithm for d in digests if d.of == "file" or not compressed}
    content = {d.algorithm for d in digests if d.of == "content" and compressed}
    found = _hashes(path, stored, gunzip=False) if stored else {}
    for d in digests:
        if (d.of == "file" or not compressed) and found.get(d.algorithm) == d.hexdigest:
            return d
    if content:
        try:
            unpacked = _hashes(path, content, gunzip=True)
        except zlib.error:
            return None
        for d in digests:
            if d.of == "content" and unpacked.get(d.algorithm) == d.hexdigest:
                return d
    return None


def check_file(path: str | os.PathLike[str] | None, spec: FileSpec) -> FileCheck:
    """Check ``path`` (the local copy of ``spec``) against the catalog's digests or size."""
    if path is None or not Path(path).is_file():
        return FileCheck(spec.name, None if path is None else Path(path), "missing")
    path = Path(path)
    if spec.digests:
        decompressed = spec.name.endswith(".gz") and path.name == spec.name[: -len(".gz")]
        if decompressed and not any(d.of == "content" for d in spec.digests):
            return FileCheck(
                spec.name, path, "unchecked", "stored decompressed; the checksums are of the .gz"
            )
        try:
            match = matching_digest(path, spec.digests)
        except OSError as exc:
            return FileCheck(spec.name, path, "mismatch", f"unreadable: {exc.strerror or exc}")
        if match is None:
            accepted = ", ".join(f"{d.algorithm} of {d.of}" for d in spec.digests)
            return FileCheck(spec.name, path, "mismatch", f"no accepted checksum ({accepted})")
        detail = f"{match.algorithm} of {match.of}" + (f" ({match.source})" if match.source else "")
        return FileCheck(spec.name, path, "ok", detail)
    if spec.size is not None:
        size = path.stat().st_size
        if size != spec.size:
            return FileCheck(spec.name, path, "mismatch", f"{size} bytes, expected {spec.size}")
        return FileCheck(spec.name, path, "ok", f"size {size} bytes (no published checksum)")
    return FileCheck(spec.name, path, "unchecked", "no published checksum")

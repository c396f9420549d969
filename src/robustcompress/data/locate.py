"""Finding a data set's files on disk, and reporting where it was looked for.

Data roots are searched in this order; the first holding every file wins:

1. the explicit ``root`` argument (the CLI's ``--data-root``/``--root``);
2. the environment variable ``ROBUSTCOMPRESS_DATA`` (several roots may be joined
   with ``os.pathsep``);
3. the user cache ``$XDG_CACHE_HOME/robustcompress`` (default
   ``~/.cache/robustcompress``), where downloads go;
4. the system folders in :data:`SYSTEM_DATA_DIRS` (``/usr/share/datasets``, where
   Debian's ``dataset-fashion-mnist`` installs Fashion-MNIST).

Under a root the layout is ``<root>/<name>/<files>`` (see
:mod:`robustcompress.data.catalog`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from robustcompress.data.catalog import ALIASES, KNOWN_DATASETS, DatasetInfo, FileSpec
from robustcompress.data.checksums import FileCheck, check_file
from robustcompress.errors import ConfigError, DataError

ENV_VAR = "ROBUSTCOMPRESS_DATA"
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)
GENERATED_DATASETS = ("synthetic-subspace",)
"""Data sets made by a generator rather than read from files."""

CLASS_SUBSETS: dict[str, tuple[str, tuple[int, ...]]] = {"mnist-1v7": ("mnist", (1, 7))}
"""Data sets that keep some classes of a file-based one, relabelled ``0 … k−1`` in the
order given: ``name → (base data set, classes)``. ``mnist-1v7`` is Guo et al. 2018's
binary task (§4.1): digit 1 is class 0, digit 7 class 1."""


@dataclass(frozen=True)
class SearchRoot:
    """A data root and why it is searched (``"root argument"``, ``"$ROBUSTCOMPRESS_DATA"``, ...)."""

    path: Path
    origin: str


@dataclass(frozen=True)
class FoundDataset:
    """A data set's folder and its files, keyed by the catalog's file names."""

    info: DatasetInfo
    directory: Path
    origin: str
    files: dict[str, Path]
    specs: tuple[FileSpec, ...]


@dataclass(frozen=True)
class DatasetStatus:
    """Where a data set was found (or looked for) and how its files checked out.

    ``verified`` is ``None`` when checksums were not computed, else whether no
    file failed its check.
    """

    name: str
    title: str
    found: bool
    directory: Path | None = None
    origin: str = ""
    searched: tuple[Path, ...] = ()
    files: tuple[FileCheck, ...] = field(default=())
    verified: bool | None = None
    generated: bool = False


def list_datasets() -> list[str]:
    """Every name :func:`~robustcompress.data.load_dataset` accepts, sorted."""
    return sorted([*KNOWN_DATASETS, *GENERATED_DATASETS, *CLASS_SUBSETS])


def canonical_name(name: str) -> str:
    """The catalog's spelling of ``name`` (case-insensitive, aliases such as ``fmnist``)."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in KNOWN_DATASETS and key not in GENERATED_DATASETS and key not in CLASS_SUBSETS:
        raise ConfigError(f"unknown data set {name!r}: choose one of {', '.join(list_datasets())}")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """The catalog entry of a file-based data set."""
    key = canonical_name(name)
    if key in CLASS_SUBSETS:
        raise ConfigError(f"data set {key!r} is a class subset of {CLASS_SUBSETS[key][0]!r}")
    if key not in KNOWN_DATASETS:
        raise ConfigError(f"data set {key!r} is generated, it has no files")
    return KNOWN_DATASETS[key]


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/robustcompress``, or ``~/.cache/robustcompress``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "robustcompress"


def search_roots(root: str | os.PathLike[str] | None = None) -> list[SearchRoot]:
    """The data roots to search, in order, without duplicates."""
    roots: list[SearchRoot] = []
    if root is not None:
        roots.append(SearchRoot(Path(root).expanduser(), "root argument"))
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if entry.strip():
            roots.append(SearchRoot(Path(entry.strip()).expanduser(), f"${ENV_VAR}"))
    roots.append(SearchRoot(user_cache_dir(), "user cache"))
    roots.extend(SearchRoot(p, "system") for p in SYSTEM_DATA_DIRS)
    unique: list[SearchRoot] = []
    seen: set[Path] = set()
    for r in roots:
        key = r.path.resolve() if r.path.exists() else r.path.absolute()
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def _local_copy(directory: Path, spec: FileSpec) -> Path | None:
    """The file for ``spec`` in ``directory``: as named, or decompressed (without ``.gz``)."""
    candidate = directory / spec.name
    if candidate.is_file():
        return candidate
    if spec.name.endswith(".gz"):
        plain = directory / spec.name[: -len(".gz")]
        if plain.is_file():
            return plain
    return None


def find_files(info: DatasetInfo, directory: Path) -> tuple[dict[str, Path], tuple[FileSpec, ...]]:
    """Match ``directory`` against the data set's layouts.

    Returns the files found (by catalog name) and the layout they belong to: the
    official one if it is complete, else a complete alternative layout, else the
    most complete partial layout (so callers can say what is missing).
    """
    best: tuple[dict[str, Path], tuple[FileSpec, ...]] = ({}, info.files)
    for layout in (info.files, info.alternative_files):
        if not layout:
            continue
        found = {s.name: p for s in layout if (p := _local_copy(directory, s)) is not None}
        if len(found) == len(layout):
            return found, layout
        if len(found) > len(best[0]):
            best = (found, layout)
    return best


def _missing_message(info: DatasetInfo, roots: list[SearchRoot]) -> str:
    places = []
    for r in roots:
        directory = r.path / info.name
        note = ""
        if directory.is_dir():
            found, layout = find_files(info, directory)
            lacking = [s.name for s in layout if s.name not in found]
            note = f", lacks {', '.join(lacking)}"
        places.append(f"{directory} ({r.origin}{note})")
    names = ", ".join(s.name for s in info.files)
    fixes = [
        f"set {ENV_VAR}=DIR with the files in DIR/{info.name}/",
        "or pass --data-root DIR (root= in Python)",
        "or allow the download (download=True, needs network access)",
    ]
    if info.name == "fashion-mnist":
        fixes.append("or run: apt-get install dataset-fashion-mnist")
    return (
        f"data set {info.name!r} not found (needs {names}); looked in: "
        + "; ".join(places)
        + ". To fix: "
        + ", ".join(fixes)
        + "."
    )


def find_dataset(name: str, root: str | os.PathLike[str] | None = None) -> FoundDataset:
    """The first data root holding every file of ``name``; :class:`DataError` if none does.

    The error lists every folder looked in (and what each lacks) and how to fix it.
    """
    info = dataset_info(name)
    roots = search_roots(root)
    for r in roots:
        directory = r.path / info.name
        if not directory.is_dir():
            continue
        files, layout = find_files(info, directory)
        if len(files) == len(layout):
            return FoundDataset(info, directory, r.origin, files, layout)
    raise DataError(_missing_message(info, roots))


def locate_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``<root>/<name>`` holding data set ``name`` (see :func:`find_dataset`)."""
    return find_dataset(name, root).directory


def dataset_status(
    name: str, root: str | os.PathLike[str] | None = None, *, verify: bool = False
) -> DatasetStatus:
    """Where ``name`` is and, with ``verify``, whether its files' checksums match."""
    key = canonical_name(name)
    if key in GENERATED_DATASETS:
        return DatasetStatus(key, "synthetic (generated on demand)", True, generated=True)
    if key in CLASS_SUBSETS:
        base, classes = CLASS_SUBSETS[key]
        status = dataset_status(base, root, verify=verify)
        names = ", ".join(KNOWN_DATASETS[base].classes[c] for c in classes)
        title = f"{KNOWN_DATASETS[base].title}, classes {names} (relabelled 0…{len(classes) - 1})"
        return replace(status, name=key, title=title)
    info = KNOWN_DATASETS[key]
    searched = tuple(r.path / info.name for r in search_roots(root))
    try:
        found = find_dataset(key, root)
    except DataError:
        return DatasetStatus(key, info.title, False, searched=searched)
    if verify:
        checks = tuple(check_file(found.files[s.name], s) for s in found.specs)
        verified: bool | None = not any(c.status == "mismatch" for c in checks)
    else:
        checks = tuple(FileCheck(s.name, found.files[s.name], "unchecked") for s in found.specs)
        verified = None
    return DatasetStatus(
        key,
        info.title,
        True,
        directory=found.directory,
        origin=found.origin,
        searched=searched,
        files=checks,
        verified=verified,
    )


def dataset_statuses(
    root: str | os.PathLike[str] | None = None, *, verify: bool = False
) -> list[DatasetStatus]:
    """:func:`dataset_status` of every data set in :func:`list_datasets`."""
    return [dataset_status(name, root, verify=verify) for name in list_datasets()]

"""Fixtures of the data tests: an isolated search path, tiny IDX data sets, the real files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from robustcompress.data import locate
from robustcompress.data.idx import write_idx

REAL_DATA = Path(os.environ.get("ROBUSTCOMPRESS_DATA") or "").expanduser()
if not (REAL_DATA / "mnist").is_dir():
    REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data anywhere: ``$ROBUSTCOMPRESS_DATA`` unset, cache and system folder in ``tmp_path``."""
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    return tmp_path


def write_tiny_idx(
    directory: Path, *, train: int = 30, test: int = 20, seed: int = 0, gz: bool = True
) -> Path:
    """MNIST-like IDX files of random 28×28 images with labels cycling through 0..9."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


@pytest.fixture
def tiny_idx() -> Callable[..., Path]:
    """``tiny_idx(directory, train=30, test=20, seed=0, gz=True)`` writes a tiny IDX data set."""
    return write_tiny_idx


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared folder of real MNIST / Fashion-MNIST files; skips if they are absent."""
    names = ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for dataset in ("mnist", "fashion-mnist"):
        if not all((REAL_DATA / dataset / n).is_file() for n in names):
            pytest.skip(f"real {dataset} files not found under {REAL_DATA}")
    return REAL_DATA

"""Fixtures of the experiment tests: tiny run configs written as YAML files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress.experiments.recipes.methods import deep_merge

TINY: dict[str, Any] = {
    "data": {"dataset": "mnist", "limit": 256},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
    "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.05, "momentum": 0.9},
    "tracking": {
        "eval_size": 64,
        "attacks": {"fgsm": {"eps": 0.05}, "pgd": {"eps": 0.05, "steps": 2, "alpha": 0.02}},
    },
}
"""256 MNIST images, 4 steps of batch 64, 64 evaluation images, FGSM and 2-step PGD."""


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts (``overrides`` wins)."""
    return deep_merge(base, overrides)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(name, **overrides)`` writes ``<tmp>/<name>.yaml`` from :data:`TINY`."""

    def write(name: str, **overrides: Any) -> Path:
        return write_config_file(tmp_path, name, **overrides)

    return write


def write_config_file(directory: Path, name: str, **overrides: Any) -> Path:
    """Write ``<directory>/<name>.yaml`` from :data:`TINY` with ``overrides`` merged in."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"name": name, **overrides}), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for configs and runs shared by the tests of a session."""
    return tmp_path_factory.mktemp("shared-runs")


@pytest.fixture(scope="session")
def natural_run(shared_dir: Path) -> Any:
    """The tiny natural FCNN run (trained once per session) in ``shared_dir/runs``."""
    from robustcompress.experiments import run

    path = write_config_file(shared_dir, "natural")
    return run(path, runs_dir=shared_dir / "runs", progress=False, echo=False)


@pytest.fixture
def write_config_at() -> Callable[..., Path]:
    """``write_config_at(directory, name, **overrides)``: :func:`write_config_file`."""
    return write_config_file

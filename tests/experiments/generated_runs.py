"""A tiny run config on generated data, written as YAML (imported by name; not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from robustcompress.experiments import run
from robustcompress.experiments.recipes.methods import deep_merge

GENERATED: dict[str, Any] = {
    "data": {"dataset": "synthetic-subspace", "limit": 128},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"epochs": 2, "batch_size": 32, "lr": 0.1, "momentum": 0.9},
    "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
    "device": "cpu",
}
"""FCNN 784→16→10 on 128 generated examples: 4 steps per epoch, 2 epochs."""


def write_config(
    directory: Path, name: str, base: dict[str, Any] = GENERATED, **overrides: Any
) -> Path:
    """``<directory>/<name>.yaml``: ``base`` with ``overrides`` merged in, named ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(deep_merge(base, {"name": name, **overrides})))
    return path


def run_quietly(config: Any, runs: Path) -> Any:
    """``run`` without progress bars or echoed log lines."""
    return run(config, runs_dir=runs, progress=False, echo=False)

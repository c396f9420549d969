"""Fixtures of the training tests: small generated data sets and a trainer factory.

The training mechanics (steps, tracking, checkpoints, resume, extras) do not depend on
which images are trained on, so these tests use the generated ``synthetic-subspace``
data set (784-pixel images in a known 10-dimensional subspace, two classes) and need no
files on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from robustcompress.experiments.config import OptimizerConfig
from robustcompress.models import create_model
from robustcompress.training import CleanTracker, StructureTracker, Trainer, TrainingSettings


@pytest.fixture(scope="session")
def train_small() -> Any:
    """128 generated training images (seeded, class-stratified)."""
    from robustcompress.data import load_dataset

    return load_dataset("synthetic-subspace", "train", limit=128, seed=0)


@pytest.fixture(scope="session")
def eval_small() -> tuple[torch.Tensor, torch.Tensor]:
    """32 generated test images: the evaluation subset of the trainer tests."""
    from robustcompress.data import load_dataset

    test = load_dataset("synthetic-subspace", "test", limit=32, seed=0)
    return test.images, test.labels


@pytest.fixture
def make_trainer(
    tmp_path: Path, train_small: Any, eval_small: tuple[torch.Tensor, torch.Tensor]
) -> Callable[..., Trainer]:
    """``make_trainer(run_dir=..., model_kwargs=..., **settings/trainer kwargs)``.

    Defaults: FCNN 784→16→16→10, 2 epochs of batch 32 (4 steps each), SGD lr 0.1 with
    momentum 0.9, clean + structure trackers. Optimiser keys (``lr``, ``momentum``,
    ``name``, ...) build an :class:`OptimizerConfig`, unless ``optimizer`` is given.
    """

    def build(
        run_dir: Path | None = None, model_kwargs: dict[str, Any] | None = None, **kw: Any
    ) -> Trainer:
        fields = set(TrainingSettings.__dataclass_fields__)
        optimizer_keys = set(OptimizerConfig.model_fields) - fields
        settings = {"epochs": 2, "batch_size": 32}
        settings.update({k: v for k, v in kw.items() if k in fields})
        optimizer = {"lr": 0.1, "momentum": 0.9}
        optimizer.update({k: v for k, v in kw.items() if k in optimizer_keys})
        options = {k: v for k, v in kw.items() if k not in fields | optimizer_keys}
        options.setdefault("trackers", [CleanTracker(), StructureTracker()])
        options.setdefault("optimizer", OptimizerConfig(**optimizer).build)
        torch.manual_seed(0)
        model = create_model("fcnn", **({"hidden": (16, 16)} | (model_kwargs or {})))
        return Trainer(
            model,
            train_small,
            TrainingSettings(**settings),
            run_dir=run_dir or tmp_path / "run",
            eval_data=eval_small,
            **options,
        )

    return build

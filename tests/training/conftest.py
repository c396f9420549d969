"""Fixtures of the training tests: small real MNIST subsets and a trainer factory."""

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
def mnist_small() -> Any:
    """128 MNIST training images (seeded, class-stratified)."""
    from robustcompress.data import load_dataset

    return load_dataset("mnist", "train", limit=128, seed=0)


@pytest.fixture(scope="session")
def mnist_eval() -> tuple[torch.Tensor, torch.Tensor]:
    """32 MNIST test images: the evaluation subset of the trainer tests."""
    from robustcompress.data import load_dataset

    test = load_dataset("mnist", "test", limit=32, seed=0)
    return test.images, test.labels


@pytest.fixture
def make_trainer(
    tmp_path: Path, mnist_small: Any, mnist_eval: tuple[torch.Tensor, torch.Tensor]
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
            mnist_small,
            TrainingSettings(**settings),
            run_dir=run_dir or tmp_path / "run",
            eval_data=mnist_eval,
            **options,
        )

    return build

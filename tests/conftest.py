"""Shared fixtures: the data location and small, briefly trained models.

Tests read real MNIST / Fashion-MNIST. When ``ROBUSTCOMPRESS_DATA`` is unset and the
shared data folder sits beside the checkout (as in CI), point the project at it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "ROBUSTCOMPRESS_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["ROBUSTCOMPRESS_DATA"] = str(_SHARED)


def _train(model: nn.Module, dataset: str, limit: int, epochs: int, seed: int) -> nn.Module:
    """A few epochs of Adam on a seeded training subset: enough for meaningful attacks."""
    from robustcompress.data import load_dataset, make_loader

    torch.manual_seed(seed)
    train = load_dataset(dataset, "train", limit=limit, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for x, y in make_loader(train, 64, shuffle=True, seed=seed):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def _batch(dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from robustcompress.data import load_dataset

    test = load_dataset(dataset, "test", limit=n, seed=0)
    return test.images.clone(), test.labels.clone()


@pytest.fixture(scope="session")
def trained_fcnn() -> nn.Module:
    """The paper's FCNN after 3 epochs on 4,000 MNIST training images (eval mode)."""
    from robustcompress.models import create_model

    torch.manual_seed(0)
    return _train(create_model("fcnn"), "mnist", limit=4000, epochs=3, seed=0)


@pytest.fixture(scope="session")
def trained_cnn() -> nn.Module:
    """The paper's CNN after 2 epochs on 4,000 Fashion-MNIST training images (eval mode)."""
    from robustcompress.models import create_model

    torch.manual_seed(0)
    return _train(create_model("cnn"), "fashion-mnist", limit=4000, epochs=2, seed=0)


@pytest.fixture(scope="session")
def trained_lenet5() -> nn.Module:
    """LeNet-5 (Guo et al. 2018) after 2 epochs on 4,000 MNIST training images (eval mode)."""
    from robustcompress.models import create_model

    torch.manual_seed(0)
    return _train(create_model("lenet5"), "mnist", limit=4000, epochs=2, seed=0)


@pytest.fixture(scope="session")
def mnist_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """200 MNIST test images and labels (seeded subsample)."""
    return _batch("mnist", 200)


@pytest.fixture(scope="session")
def fashion_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """200 Fashion-MNIST test images and labels (seeded subsample)."""
    return _batch("fashion-mnist", 200)

"""Fixtures for the attack tests: tiny models, affine problems, one thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from attack_helpers import affine_problem as _affine_problem
from torch import nn

from robustcompress.models import create_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Run the attack tests single-threaded, restored after each module.

    The models are tiny; on a shared 2-core machine intra-op threads only contend
    (measured under load: 124 s for this folder with 2 threads, 16 s with one).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model() -> nn.Module:
    """An untrained tanh FCNN 64 → 16 → 16 → 10 on 1×8×8 inputs (seeded)."""
    torch.manual_seed(0)
    return create_model("fcnn", hidden=(16, 16), in_features=64)


@pytest.fixture
def tiny_batch(tiny_model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight random 1×8×8 images in [0, 1] labelled with the tiny model's predictions."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = tiny_model(x).argmax(dim=1)
    return x, y


@pytest.fixture
def affine_problem() -> Callable[..., tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """The factory :func:`attack_helpers.affine_problem` (affine model with known answers)."""
    return _affine_problem

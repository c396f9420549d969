"""Forward hooks that capture hidden representations t_i (Langenberg et al. eq. 1).

A hidden representation is the output of the activation module that follows a
weight matrix. Mutual-information estimators, activation-sparsity measures and
low-rank representation layers read them through :func:`capture_representations`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from robustcompress.errors import ModelError
from robustcompress.models.layers import ACTIVATIONS

_ACTIVATION_TYPES = tuple(ACTIVATIONS.values())


def hidden_layer_names(model: nn.Module) -> list[str]:
    """Module paths of the activation modules (hidden representations), in forward order."""
    return [n for n, m in model.named_modules() if isinstance(m, _ACTIVATION_TYPES)]


@contextmanager
def capture_representations(
    model: nn.Module, names: Sequence[str] | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named modules during forward passes.

    Yields a dict ``{module_name: output}`` that is filled (overwritten) on every
    forward pass inside the ``with`` block; outputs are flattened to ``N × d`` and
    detached. ``names`` defaults to :func:`hidden_layer_names`.
    """
    modules = dict(model.named_modules())
    names = list(names) if names is not None else hidden_layer_names(model)
    missing = [n for n in names if n not in modules]
    if missing:
        raise ModelError(
            f"no module(s) {', '.join(missing)} in the model: choose from {', '.join(modules)}"
        )
    store: dict[str, torch.Tensor] = {}
    handles = []
    for n in names:

        def hook(_m: nn.Module, _inp: object, out: torch.Tensor, key: str = n) -> None:
            store[key] = out.detach().flatten(1)

        handles.append(modules[n].register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()

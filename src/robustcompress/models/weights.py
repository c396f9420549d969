"""The one handle on a model's weight matrices W_1 … W_m.

Regularizers, structure measures, trackers and plots all go through
:func:`weight_matrices`. A linear layer contributes its weight ``W`` (out × in).
A convolution with kernel ``K`` of shape ``c_out × c_in × k_h × k_w`` contributes
the reshaped kernel ``W̃ = c_out × (c_in·k_h·k_w)`` (Langenberg et al. 2019,
Appendix B); the view shares storage with the parameter, so gradients flow
through it.

Matrices are listed in module-registration order, which is forward order for every
built-in model, and named ``W1`` … ``Wm`` as in the paper (1-based).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.errors import ModelError

WEIGHT_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class WeightMatrix:
    """One weight matrix W_i of a model.

    Attributes:
        index: 1-based position i in forward order (paper notation W_i).
        name: stable name ``"W{index}"``.
        module_name: qualified module path inside the model (e.g. ``"features.0"``).
        module: the :class:`nn.Linear` or :class:`nn.Conv2d` holding the weight.
        kind: ``"linear"`` or ``"conv"``.
    """

    index: int
    name: str
    module_name: str
    module: nn.Module
    kind: str

    @property
    def parameter(self) -> nn.Parameter:
        """The underlying weight parameter (its native shape)."""
        return self.module.weight  # type: ignore[return-value]

    @property
    def matrix(self) -> torch.Tensor:
        """The matrix view: W (out × in) or W̃ = out × (in·kh·kw); shares storage."""
        w = self.parameter
        return w if w.dim() == 2 else w.reshape(w.shape[0], -1)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the matrix view."""
        m = self.matrix
        return (int(m.shape[0]), int(m.shape[1]))

    @property
    def kernel_size(self) -> tuple[int, int] | None:
        """``(k_h, k_w)`` for a convolution, ``None`` for a linear layer."""
        return tuple(self.parameter.shape[2:]) if self.kind == "conv" else None  # type: ignore[return-value]


def weight_matrices(model: nn.Module) -> list[WeightMatrix]:
    """All weight matrices W_1 … W_m of ``model`` in forward (registration) order."""
    out: list[WeightMatrix] = []
    for module_name, module in model.named_modules():
        if isinstance(module, WEIGHT_MODULES):
            i = len(out) + 1
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            out.append(WeightMatrix(i, f"W{i}", module_name, module, kind))
    return out


def resolve_weight_matrix(
    matrices: Sequence[WeightMatrix], key: str | int, *, what: str = "weight matrix"
) -> WeightMatrix:
    """Find a weight matrix by name (``"W2"``), module path, or 1-based index.

    Raises :class:`ModelError` naming the valid choices when ``key`` matches none.
    """
    for wm in matrices:
        if key in (wm.name, wm.module_name) or (
            isinstance(key, int) and not isinstance(key, bool) and key == wm.index
        ):
            return wm
    choices = ", ".join(f"{wm.name} ({wm.module_name})" for wm in matrices)
    raise ModelError(
        f"unknown {what} {key!r}: the model has {choices or 'no weight matrices'} "
        "(use a name W1…Wm, a module path, or a 1-based index)"
    )

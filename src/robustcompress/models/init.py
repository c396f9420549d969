"""Weight initialisation schemes: ``initialize(model, scheme)`` after ``create_model``.

``torch_default`` keeps what the layers drew when they were built (PyTorch's
``reset_parameters``: Kaiming-uniform weights with ``a = √5`` and uniform biases). The
other schemes redraw the weight of every :class:`~torch.nn.Linear` and
:class:`~torch.nn.Conv2d` and set its bias to zero, as Keras does by default
(``bias_initializer='zeros'``); other layers (batch norm: γ = 1, β = 0 in both
libraries) are left as built. Fans follow Keras: for a linear layer ``fan_in`` = inputs
and ``fan_out`` = outputs; for a convolution kernel ``c_out × c_in × k_h × k_w``,
``fan_in = c_in·k_h·k_w`` and ``fan_out = c_out·k_h·k_w``.

* ``glorot_uniform``: ``U(−a, a)`` with ``a = √(6 / (fan_in + fan_out))``, variance
  ``2 / (fan_in + fan_out)`` (Glorot & Bengio 2010, eq. 16; the Keras default);
* ``glorot_normal``: a normal truncated at ±2σ with variance ``2 / (fan_in + fan_out)``;
* ``he_normal``: a normal truncated at ±2σ with variance ``2 / fan_in`` (He et al. 2015, §2.2);
* ``caffe_xavier``: ``U(−a, a)`` with ``a = √(3 / fan_in)``, variance ``1 / fan_in``: Caffe's
  ``xavier`` weight filler at its default ``variance_norm: FAN_IN`` (Caffe's fan-in of a
  kernel is ``c_in·k_h·k_w``, as here), with the ``constant`` bias filler's zeros: what
  Caffe's LeNet examples use.

The truncated normals are those of current Keras (``VarianceScaling`` with
``truncated_normal``: σ = √(scale/n) / 0.87962566103423978, so that the truncated
draw has variance scale/n). See docs/algorithms.md, Weight initialisation.

Draws come from ``generator`` when given, else from the global torch generator, in
module-registration order; the runner seeds the global generator before building the
model, so a run's initial weights follow from its seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustcompress.errors import ModelError

#: The initialisation schemes :func:`initialize` knows, the default first.
INIT_SCHEMES = ("torch_default", "glorot_uniform", "glorot_normal", "he_normal", "caffe_xavier")

#: Standard deviation of a unit normal truncated to [−2, 2]: Keras divides σ by it.
TRUNCATED_STD = 0.87962566103423978


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a linear weight ``out × in`` or a kernel ``c_out × c_in × …``,
    as Keras computes them: the receptive field ``k_h·k_w`` multiplies both."""
    if weight.dim() < 2:
        shape = tuple(weight.shape)
        raise ModelError(f"fans need a weight with at least 2 dimensions, got {shape}")
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def check_scheme(scheme: object) -> str:
    """``scheme`` if it is one of :data:`INIT_SCHEMES`; else a one-line :class:`ModelError`."""
    if not isinstance(scheme, str) or scheme not in INIT_SCHEMES:
        raise ModelError(
            f"unknown initialisation {scheme!r}: choose one of {', '.join(INIT_SCHEMES)}"
        )
    return scheme


def initialize(
    model: nn.Module, scheme: str = "torch_default", *, generator: torch.Generator | None = None
) -> nn.Module:
    """Re-initialise ``model`` in place with ``scheme`` (see the module docstring); returns it.

    ``torch_default`` changes nothing and draws nothing. Unknown schemes raise
    :class:`ModelError` listing :data:`INIT_SCHEMES`.
    """
    check_scheme(scheme)
    if scheme == "torch_default":
        return model
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                continue
            weight, bias = module.weight, module.bias
            fan_in, fan_out = fans(weight)
            if scheme in ("glorot_uniform", "caffe_xavier"):
                spread = 6.0 / (fan_in + fan_out) if scheme == "glorot_uniform" else 3.0 / fan_in
                bound = math.sqrt(spread)
                weight.uniform_(-bound, bound, generator=generator)
            else:
                n = fan_in if scheme == "he_normal" else (fan_in + fan_out) / 2
                scale = 2.0 if scheme == "he_normal" else 1.0
                std = math.sqrt(scale / n) / TRUNCATED_STD
                nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)
            if bias is not None:
                bias.zero_()
    return model

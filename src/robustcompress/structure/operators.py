"""Singular values of every layer's linear operator, for a convolution in one of three views.

A linear layer's operator is its weight matrix W. A convolution has three candidates,
offered side by side because papers differ in which one they mean by "the singular
values of a layer":

* ``reshaped``: the kernel reshaped to W̃ = c_out × (c_in·k_h·k_w), the matrix
  :func:`robustcompress.models.weight_matrices` gives every structure measure
  (Langenberg et al. 2019 regularize this one). It does not depend on the input size.
* ``circular``: the stride-1 convolution with circular padding on the layer's input
  grid, whose singular values the 2-D FFT gives exactly (Sedghi, Gupta & Long 2019,
  :func:`robustcompress.structure.conv.conv_operator_singular_values`; the spectral
  normalisation the ICLR 2020 submission on AR as regularization uses, its Appendix A,
  clips these). For a zero-padded layer the grid is n + 2p (the zero-embedded input),
  as for the operator norm in :func:`~robustcompress.structure.conv.conv_layer_spectral_norm`:
  the spectrum is then that of the circular extension, not of the layer, and
  :attr:`LayerSpectrum.exact` is ``False``; so it is for a stride > 1.
* ``dense``: the layer's own linear map on its input size, built column by column as an
  explicit (c_out·m_h·m_w) × (c_in·n_h·n_w) matrix (bias excluded) and decomposed by SVD:
  exact for any padding, stride, dilation and groups, affordable only for small inputs
  (at most ``max_dense`` input coordinates).

Values are float64 on the CPU, sorted in descending order; a linear layer gives the same
σ(W) in every view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import weight_matrices
from robustcompress.structure.conv import conv_layer_grid, conv_operator_singular_values
from robustcompress.structure.spectrum import _singular_value_std, singular_values

#: The operator views of a convolution, the default first.
OPERATORS = ("reshaped", "circular", "dense")

MAX_DENSE = 4096
"""Most input coordinates c_in·n_h·n_w a ``dense`` operator is built for by default."""


@dataclass(frozen=True)
class LayerSpectrum:
    """The singular values of one weight layer's operator."""

    name: str
    """``W1`` … ``Wm``, as :func:`~robustcompress.models.weight_matrices` names them."""
    module_name: str
    kind: str
    """``linear`` or ``conv``."""
    operator: str
    """The view the values are of (one of :data:`OPERATORS`; ``reshaped`` for a linear layer)."""
    sigma: torch.Tensor
    exact: bool
    """Whether ``sigma`` is the spectrum of the layer's own map on its input size
    (always for a linear layer and the ``dense`` view; the ``reshaped`` view is the
    kernel matrix, a different map, and counts as exact for what it is)."""

    @property
    def std(self) -> float:
        """Population standard deviation of the singular values (the submission's Fig. 1a)."""
        return _singular_value_std(self.sigma)


def check_operator(operator: object) -> str:
    """``operator`` if it is one of :data:`OPERATORS`; else a one-line :class:`ConfigError`."""
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise ConfigError(
            f"unknown operator {operator!r} for a convolution's singular values: choose one "
            f"of {', '.join(OPERATORS)}"
        )
    return operator


def conv_dense_operator(conv: nn.Conv2d, input_size: Sequence[int]) -> torch.Tensor:
    """The linear part of ``conv`` on a ``c_in × n_h × n_w`` input as an explicit float64
    matrix of shape (c_out·m_h·m_w) × (c_in·n_h·n_w): column j is the flattened output for
    the j-th unit input (bias excluded). Exact for every padding, stride, dilation and
    groups the layer has."""
    if not isinstance(conv, nn.Conv2d):
        raise ModelError(f"expected an nn.Conv2d, got {type(conv).__name__}")
    n_h, n_w = (int(s) for s in input_size)
    basis = torch.eye(conv.in_channels * n_h * n_w, dtype=torch.float64)
    basis = basis.reshape(-1, conv.in_channels, n_h, n_w)
    weight = conv.weight.detach().to(device="cpu", dtype=torch.float64)
    if conv.padding_mode != "zeros":
        padding = conv._reversed_padding_repeated_twice
        basis = F.pad(basis, padding, mode=conv.padding_mode)
        pad: int | tuple[int, ...] | str = 0
    else:
        pad = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    with torch.no_grad():
        out = F.conv2d(basis, weight, None, conv.stride, pad, conv.dilation, conv.groups)
    return out.flatten(1).T.contiguous()


def layer_spectra(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    operator: str = "reshaped",
    *,
    max_dense: int = MAX_DENSE,
) -> list[LayerSpectrum]:
    """The singular values of every weight layer of ``model`` (forward order), a
    convolution's in the view ``operator`` (module docstring). ``input_shape`` (C, H, W)
    gives the convolutions' input sizes for ``circular`` and ``dense`` (default: the
    registry's input shape of a model built by
    :func:`~robustcompress.models.create_model`)."""
    from robustcompress.structure.report import _resolve_input_shape, conv_input_sizes

    check_operator(operator)
    matrices = weight_matrices(model)
    sizes: dict[str, tuple[int, int]] = {}
    if operator != "reshaped" and any(wm.kind == "conv" for wm in matrices):
        sizes = conv_input_sizes(model, _resolve_input_shape(model, input_shape))
    out = []
    for wm in matrices:
        if wm.kind != "conv" or operator == "reshaped":
            view = "reshaped" if wm.kind == "linear" else operator
            out.append(
                LayerSpectrum(
                    wm.name, wm.module_name, wm.kind, view, singular_values(wm.matrix), True
                )
            )
            continue
        conv = wm.module
        assert isinstance(conv, nn.Conv2d)
        size = sizes.get(wm.module_name)
        if size is None:
            raise ModelError(
                f"{wm.name} ({wm.module_name}) is not reached by a forward pass on "
                f"{tuple(input_shape or ())}: its input size, and so its operator, is unknown"
            )
        if operator == "dense":
            inputs = conv.in_channels * size[0] * size[1]
            if inputs > max_dense:
                raise ConfigError(
                    f"{wm.name} ({wm.module_name}) has {inputs} input coordinates, over "
                    f"max_dense = {max_dense}: its dense operator would be too large; use "
                    "operator='circular' or raise max_dense"
                )
            sigma = torch.linalg.svdvals(conv_dense_operator(conv, size))
            out.append(LayerSpectrum(wm.name, wm.module_name, "conv", operator, sigma, True))
            continue
        kernels, grid, exact = conv_layer_grid(conv, size)
        parts = [conv_operator_singular_values(g, grid) for g in kernels]
        sigma = torch.sort(torch.cat(parts), descending=True).values
        out.append(LayerSpectrum(wm.name, wm.module_name, "conv", operator, sigma, exact))
    return out


def fold_batchnorm(model: nn.Module, input_shape: Sequence[int]) -> nn.Module:
    """A copy of ``model`` in eval mode whose every ``Linear`` / ``Conv2d`` that feeds a
    batch norm directly has the norm's scale folded in: W ← diag(γ / √(σ² + ε)) W, the
    linear operator the layer and its norm apply together at test time (the norm's shift
    is not part of the operator and is left where it is). Pairs are found on one
    forward pass of a zero input of ``input_shape`` (C, H, W or features): the norm's
    input must be the layer's output tensor itself. Layers without a norm are unchanged;
    ``model`` is not touched. With batch norm a raw kernel's scale is free (the norm
    undoes it), so spectra of such networks are read on this copy."""
    import copy

    folded = copy.deepcopy(model).eval()
    # the outputs are kept alive so that no later tensor can reuse their ids
    outputs: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    pairs: list[tuple[nn.Module, nn.modules.batchnorm._BatchNorm]] = []

    def record(module: nn.Module, _: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        outputs[id(out)] = (module, out)

    def match(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        found = outputs.get(id(inputs[0]))
        if found is not None and found[1] is inputs[0]:
            assert isinstance(module, nn.modules.batchnorm._BatchNorm)
            pairs.append((found[0], module))

    hooks = []
    for module in folded.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            hooks.append(module.register_forward_hook(record))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            hooks.append(module.register_forward_pre_hook(match))
    try:
        with torch.no_grad():
            param = next(folded.parameters())
            folded(torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device))
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for layer, norm in pairs:
            assert norm.running_var is not None
            scale = torch.ones_like(norm.running_var) if norm.weight is None else norm.weight
            factor = scale / torch.sqrt(norm.running_var + norm.eps)
            weight = layer.weight
            assert isinstance(weight, torch.Tensor)
            weight.mul_(factor.reshape(-1, *([1] * (weight.dim() - 1))))
    return folded


def layer_map(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The linear part of a ``Linear`` or ``Conv2d`` layer as a function of its input
    (the layer's own weight, no bias; a convolution keeps its padding mode, stride,
    dilation and groups)."""
    if isinstance(module, nn.Linear):
        return lambda x: F.linear(x, module.weight)
    if isinstance(module, nn.Conv2d):
        return lambda x: module._conv_forward(x, module.weight, None)
    raise ModelError(f"expected an nn.Linear or nn.Conv2d, got {type(module).__name__}")


def input_shape_of(module: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    """The shape of one input to ``module``: ``(in_features,)`` for a linear layer,
    ``(c_in, n_h, n_w)`` for a convolution on an ``input_size`` grid."""
    if isinstance(module, nn.Linear):
        return (module.in_features,)
    if isinstance(module, nn.Conv2d):
        if input_size is None:
            raise ModelError("a convolution's operator needs its input size (n_h, n_w)")
        return (module.in_channels, *(int(s) for s in input_size))
    raise ModelError(f"expected an nn.Linear or nn.Conv2d, got {type(module).__name__}")


def power_iteration(
    module: nn.Module,
    input_size: Sequence[int] | None = None,
    iterations: int = 1,
    u: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[float, torch.Tensor]:
    """Estimate the operator norm ‖A‖₂ of a layer's linear map A by power iteration on
    AᵀA (Miyato et al. 2018, Algorithm 1; for a convolution on the real operator of its
    input size, Aᵀ applied by autograd, so any padding and stride work).

    ``u`` is the right singular vector estimate to start from (an input-shaped tensor;
    default a seeded Gaussian draw from ``generator``), so one iteration per call with
    a persistent ``u`` converges over calls, as in the paper. Returns ``(σ̂, u)``: the
    estimate ``‖A u‖`` for the final unit ``u``, never more than ‖A‖₂, and ``u``.
    """
    if iterations < 1:
        raise ConfigError(f"power iteration needs at least 1 iteration, got {iterations}")
    apply = layer_map(module)
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    shape = (1, *input_shape_of(module, input_size))
    if u is None:
        u = torch.randn(shape, generator=generator, dtype=torch.float64).to(weight)
    u = u.detach().to(weight).reshape(shape)
    with torch.enable_grad():
        for _ in range(iterations):
            x = (u / u.norm().clamp_min(1e-30)).requires_grad_(True)
            out = apply(x)
            v = (out / out.norm().clamp_min(1e-30)).detach()
            (u,) = torch.autograd.grad((out * v).sum(), x)
    with torch.no_grad():
        unit = u / u.norm().clamp_min(1e-30)
        sigma = float(apply(unit).norm())
    return sigma, unit.detach()

"""Exact singular values of a convolution operator via the 2-D FFT (Sedghi et al. 2019).

A 2-D convolution layer is a linear map on whole feature maps, R^{c_in·n_h·n_w} →
R^{c_out·n_h·n_w}; the reshaped kernel W̃ = c_out × (c_in·k_h·k_w) used by the
paper and by :func:`robustcompress.models.weight_matrices` is not that map. For a
stride-1 convolution with *circular* padding on an n_h × n_w input the operator
is block doubly-circulant, and the 2-D DFT block-diagonalises it (Sedghi, Gupta,
Long, "The singular values of convolutional layers", ICLR 2019, Thm. 6):

    P(u, v) = Σ_{a,b} K[:, :, a, b] · exp(−2πi (u·a/n_h + v·b/n_w)),   a c_out × c_in matrix,

for every frequency (u, v) ∈ {0..n_h−1} × {0..n_w−1}, and the operator's singular
values are the multiset union of svd(P(u, v)): n_h·n_w·min(c_in, c_out) values.
Its spectral norm is max_{u,v} σ_max(P(u, v)). PyTorch's ``conv2d`` is a
cross-correlation, whose transfer matrices are the complex conjugates of these;
conjugation does not change singular values, so the formula serves both.

Conventions (``kernel`` has shape c_out × c_in × k_h × k_w, stride 1, circular
padding, ``input_size`` the n_h × n_w grid, which must be at least the kernel
size). Real layers differ:

* zero padding p and any stride: the layer's output is a sub-sampled crop of the
  circular convolution on an (n + 2p)-grid applied to the zero-embedded input, so
  the circular norm on that grid is an *upper bound* on the layer's norm
  (p = (k−1)/2, "same" padding, gives the n + k − 1 grid of docs/algorithms.md, Convolution
  operator norms via FFT);
* circular padding with output size n and stride 1: exact on the n-grid.

:func:`conv_layer_spectral_norm` applies these rules to an ``nn.Conv2d``. Values
are computed in float64 (complex128) on the CPU; kernels may require grad.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError


def conv_operator_singular_values(
    kernel: torch.Tensor, input_size: int | Sequence[int]
) -> torch.Tensor:
    """All singular values of the stride-1 circular convolution with ``kernel`` on n_h × n_w.

    Returns a 1-D float64 CPU tensor of length n_h·n_w·min(c_in, c_out), sorted in
    descending order (Sedghi et al. 2019, Thm. 6). ``input_size`` is n (square) or
    (n_h, n_w). Cost: n_h·n_w SVDs of c_out × c_in complex matrices.
    """
    transfer = _transfer_matrices(kernel, input_size, half=False)
    sigma = torch.linalg.svdvals(transfer).flatten()
    return torch.sort(sigma, descending=True).values


def conv_spectral_norm(kernel: torch.Tensor, input_size: int | Sequence[int]) -> float:
    """Operator norm max_{u,v} σ_max(P(u, v)) of the stride-1 circular convolution on n_h × n_w.

    Equals ``conv_operator_singular_values(kernel, input_size)[0]`` but only
    visits half the frequencies: for a real kernel P(−u, −v) is the complex
    conjugate of P(u, v), so ``rfft2`` suffices. Related to the reshaped-kernel
    norm by ‖W̃‖₂ ≤ σ_conv ≤ √(k_h·k_w)·‖W̃‖₂ (docs/algorithms.md, Convolution operator norms via
    FFT).
    """
    transfer = _transfer_matrices(kernel, input_size, half=True)
    return float(torch.linalg.matrix_norm(transfer, ord=2).max())


class ConvOperatorNorm(NamedTuple):
    """Spectral norm of a convolution layer and the convention it was computed under."""

    value: float
    """The circular-convolution operator norm on ``grid``."""
    grid: tuple[int, int]
    """The (N_h, N_w) grid of the circular convolution used."""
    exact: bool
    """True if ``value`` is the layer's norm; False if it is an upper bound."""


def conv_layer_spectral_norm(conv: nn.Conv2d, input_size: int | Sequence[int]) -> ConvOperatorNorm:
    """Spectral norm (or an upper bound on it) of ``conv`` acting on an n_h × n_w feature map.

    ``input_size`` is the spatial size of the layer's input (the report tracks it
    with a forward hook). The grid and exactness follow the module conventions:

    * ``padding_mode='zeros'`` with padding p (ints, ``'valid'`` or ``'same'``):
      grid n + 2p (total padding per axis), any stride → upper bound;
    * ``padding_mode='circular'`` with total padding ≤ the effective kernel size − 1:
      grid n; exact iff stride 1 and the output is n × n, else an upper bound.

    Dilation d is handled by spreading the taps (effective size d·(k−1)+1); groups
    by taking the largest norm over the block-diagonal groups. The bias is ignored
    (the operator is the linear part). Other padding modes raise :class:`ModelError`.
    """
    kernels, grid, exact = conv_layer_grid(conv, input_size)
    value = max(conv_spectral_norm(g, grid) for g in kernels)
    return ConvOperatorNorm(value=value, grid=grid, exact=exact)


def conv_layer_grid(
    conv: nn.Conv2d, input_size: int | Sequence[int]
) -> tuple[list[torch.Tensor], tuple[int, int], bool]:
    """The rules of :func:`conv_layer_spectral_norm` without the FFT: the per-group kernels
    (dilation spread into the taps), the circular grid that stands for ``conv`` on an
    ``input_size`` input, and whether the circular operator on it is the layer's own."""
    if not isinstance(conv, nn.Conv2d):
        raise ModelError(f"expected an nn.Conv2d, got {type(conv).__name__}")
    n = _grid_size(input_size, "input_size")
    kernel = _dilate(conv.weight.detach(), tuple(conv.dilation))
    k = (int(kernel.shape[2]), int(kernel.shape[3]))
    if isinstance(conv.padding, str):
        pad_total = (0, 0) if conv.padding == "valid" else (k[0] - 1, k[1] - 1)
    else:
        pad_total = (2 * int(conv.padding[0]), 2 * int(conv.padding[1]))
    if conv.padding_mode == "zeros":
        grid = (n[0] + pad_total[0], n[1] + pad_total[1])
        exact = False
    elif conv.padding_mode == "circular":
        if any(pad_total[i] > k[i] - 1 for i in range(2)):
            raise ModelError(
                f"circular padding {conv.padding} exceeds (effective kernel size − 1)/2 for "
                f"kernel {k}: the FFT bound does not cover it; use padding ≤ (k−1)/2"
            )
        grid = n
        exact = tuple(conv.stride) == (1, 1) and pad_total == (k[0] - 1, k[1] - 1)
    else:
        raise ModelError(
            f"padding_mode {conv.padding_mode!r} is not supported by the FFT operator norm "
            "(supported: 'zeros', 'circular')"
        )
    return list(kernel.chunk(conv.groups, dim=0)), grid, exact


def _transfer_matrices(
    kernel: torch.Tensor, input_size: int | Sequence[int], *, half: bool
) -> torch.Tensor:
    """Transfer matrices P(u, v), shape N_h × N_w' × c_out × c_in (rfft half if ``half``)."""
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 4:
        shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
        raise ConfigError(
            f"kernel must be a 4-D tensor c_out × c_in × k_h × k_w (nn.Conv2d.weight), got {shape}"
        )
    if kernel.numel() == 0:
        raise ConfigError(f"kernel is empty (shape {tuple(kernel.shape)})")
    grid = _grid_size(input_size, "input_size")
    k = (int(kernel.shape[2]), int(kernel.shape[3]))
    if grid[0] < k[0] or grid[1] < k[1]:
        raise ConfigError(
            f"input_size {grid} is smaller than the kernel {k}: a circular convolution would "
            "wrap the kernel onto itself; use an input of at least the kernel size"
        )
    k64 = kernel.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(k64).all()):
        raise ConfigError("kernel has NaN or infinite entries: measure a finite checkpoint")
    fft = torch.fft.rfft2 if half else torch.fft.fft2
    return fft(k64, s=grid).permute(2, 3, 0, 1)


def _grid_size(size: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair: tuple[int, ...] = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2:
        pair = tuple(int(s) for s in size)
    else:
        raise ConfigError(f"{what} must be an int n or a pair (n_h, n_w), got {size!r}")
    if min(pair) < 1:
        raise ConfigError(f"{what} must be positive, got {size!r}")
    return (pair[0], pair[1])


def _dilate(kernel: torch.Tensor, dilation: tuple[int, ...]) -> torch.Tensor:
    """Kernel with d−1 zeros between taps: the equivalent undilated kernel."""
    dh, dw = int(dilation[0]), int(dilation[1])
    if (dh, dw) == (1, 1):
        return kernel
    c_out, c_in, kh, kw = kernel.shape
    out = kernel.new_zeros(c_out, c_in, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[:, :, ::dh, ::dw] = kernel
    return out

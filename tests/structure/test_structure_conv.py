"""FFT singular values of convolution operators against the explicit operator matrix."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.structure import (
    conv_layer_spectral_norm,
    conv_operator_singular_values,
    conv_spectral_norm,
    singular_values,
    spectral_norm,
)


def circular_operator(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stride-1 circular cross-correlation as a matrix: conv2d of each basis image, as columns."""
    _, c_in, kh, kw = kernel.shape
    n = c_in * size[0] * size[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, c_in, *size)
    # pad (k−1) in total per axis, split left/right, so the output is size[0] × size[1]
    padded = F.pad(basis, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="circular")
    return F.conv2d(padded, kernel.double()).reshape(n, -1).T


def module_operator(conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """Matrix of the linear part of ``conv`` (bias removed) on c_in × size inputs."""
    n = conv.in_channels * size[0] * size[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, conv.in_channels, *size)
    conv = conv.double()
    with torch.no_grad():
        out = conv(basis) - (conv(torch.zeros_like(basis[:1])) if conv.bias is not None else 0)
    return out.reshape(n, -1).T


def kernel(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CASES = [
    ((2, 3, 3, 3), (5, 5)),
    ((3, 2, 2, 2), (4, 4)),  # even kernel
    ((2, 2, 3, 2), (4, 5)),  # non-square kernel and input
    ((4, 1, 3, 3), (3, 3)),  # kernel as large as the input
    ((1, 4, 1, 1), (3, 2)),
]


@pytest.mark.parametrize(("shape", "size"), CASES)
def test_fft_singular_values_equal_explicit_operator(
    shape: tuple[int, ...], size: tuple[int, int]
) -> None:
    k = kernel(sum(shape), shape)
    expected = torch.linalg.svdvals(circular_operator(k, size))
    got = conv_operator_singular_values(k, size)
    c_out, c_in = shape[:2]
    assert got.shape == (size[0] * size[1] * min(c_out, c_in),)
    # the operator has max(c_in, c_out)·n² − (that) extra zero singular values
    torch.testing.assert_close(got, expected[: len(got)], rtol=1e-10, atol=1e-10)
    assert torch.all(expected[len(got) :] < 1e-10)
    assert conv_spectral_norm(k, size) == pytest.approx(float(expected[0]), rel=1e-10)


def test_square_input_size_as_int() -> None:
    k = kernel(0, (2, 2, 3, 3))
    torch.testing.assert_close(
        conv_operator_singular_values(k, 6), conv_operator_singular_values(k, (6, 6))
    )


def test_one_by_one_kernel_repeats_the_matrix_spectrum() -> None:
    k = kernel(1, (3, 5, 1, 1))
    sigma = singular_values(k.reshape(3, 5))
    expected = torch.sort(sigma.repeat(4 * 4), descending=True).values
    torch.testing.assert_close(conv_operator_singular_values(k, 4), expected)


@settings(max_examples=25, deadline=None)
@given(
    c_out=st.integers(1, 4),
    c_in=st.integers(1, 4),
    k=st.integers(1, 3),
    extra=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_operator_norm_is_bracketed_by_reshaped_kernel_norm(
    c_out: int, c_in: int, k: int, extra: int, seed: int
) -> None:
    """‖W̃‖₂ ≤ σ_conv ≤ √(k_h·k_w)·‖W̃‖₂ (docs/algorithms.md, Convolution operator norms via FFT),
    and equals the explicit operator."""
    w = kernel(seed, (c_out, c_in, k, k))
    n = k + extra
    sigma = conv_spectral_norm(w, n)
    w_tilde = spectral_norm(w.reshape(c_out, -1))
    assert w_tilde * (1 - 1e-10) <= sigma <= math.sqrt(k * k) * w_tilde * (1 + 1e-10)
    assert sigma == pytest.approx(float(torch.linalg.matrix_norm(circular_operator(w, (n, n)), 2)))


def test_layer_with_circular_padding_is_exact() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular")
    norm = conv_layer_spectral_norm(conv, 5)
    assert norm.exact and norm.grid == (5, 5)
    true = float(torch.linalg.matrix_norm(module_operator(conv, (5, 5)), 2))
    assert norm.value == pytest.approx(true, rel=1e-10)


def test_dilated_circular_layer_is_exact() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 2, 3, padding=2, dilation=2, padding_mode="circular", bias=False)
    norm = conv_layer_spectral_norm(conv, 6)
    assert norm.exact
    true = float(torch.linalg.matrix_norm(module_operator(conv, (6, 6)), 2))
    assert norm.value == pytest.approx(true, rel=1e-10)


def test_grouped_circular_layer_is_exact() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="circular", bias=False)
    norm = conv_layer_spectral_norm(conv, 4)
    true = float(torch.linalg.matrix_norm(module_operator(conv, (4, 4)), 2))
    assert norm.value == pytest.approx(true, rel=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "grid"),
    [
        ({"padding": 1}, (7, 7)),
        ({"padding": 0}, (5, 5)),
        ({"padding": 1, "stride": 2}, (7, 7)),
        ({"padding": "same"}, (7, 7)),
        ({"padding": (2, 0)}, (9, 5)),
    ],
)
def test_zero_padded_layer_gets_an_upper_bound(kwargs: dict, grid: tuple[int, int]) -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, **kwargs)
    norm = conv_layer_spectral_norm(conv, 5)
    assert not norm.exact and norm.grid == grid
    true = float(torch.linalg.matrix_norm(module_operator(conv, (5, 5)), 2))
    assert true <= norm.value * (1 + 1e-10)
    assert norm.value == pytest.approx(conv_spectral_norm(conv.weight, grid))


def test_unsupported_padding_mode_raises_model_error() -> None:
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ModelError, match="reflect"):
        conv_layer_spectral_norm(conv, 5)
    with pytest.raises(ModelError, match="Conv2d"):
        conv_layer_spectral_norm(nn.Linear(2, 2), 5)  # type: ignore[arg-type]


def test_invalid_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="smaller than the kernel"):
        conv_spectral_norm(kernel(0, (1, 1, 3, 3)), 2)
    with pytest.raises(ConfigError, match="4-D"):
        conv_spectral_norm(kernel(0, (3, 3)), 4)
    with pytest.raises(ConfigError, match="input_size"):
        conv_operator_singular_values(kernel(0, (1, 1, 3, 3)), (4, 4, 4))
    with pytest.raises(ConfigError, match="NaN"):
        conv_spectral_norm(torch.full((1, 1, 2, 2), float("nan")), 3)


def test_kernel_requiring_grad_is_detached() -> None:
    conv = nn.Conv2d(2, 2, 3)
    value = conv_spectral_norm(conv.weight, 5)
    assert isinstance(value, float)
    assert conv.weight.grad is None

"""Per-layer singular values in the three operator views, against explicit matrices."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.structure.operators import (
    OPERATORS,
    conv_dense_operator,
    layer_spectra,
)
from robustcompress.structure.spectrum import singular_value_std


def jacobian_matrix(conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """The conv's linear part on c_in × size as a matrix, by autograd (independent of
    the basis construction under test)."""
    layer = copy.deepcopy(conv).double()
    weight = layer.weight.detach()

    def apply(x: torch.Tensor) -> torch.Tensor:
        return layer._conv_forward(x.view(1, conv.in_channels, *size), weight, None).flatten()

    x = torch.randn(conv.in_channels * size[0] * size[1], dtype=torch.float64)
    return torch.autograd.functional.jacobian(apply, x)


def net(conv: nn.Conv2d, channels: int, size: int) -> nn.Module:
    model = nn.Sequential(conv, nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, channels, size, size))  # materialise the lazy layer
    return model


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1, groups=2),
        nn.Conv2d(3, 2, 3, padding=2, dilation=2),
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
    ],
)
def test_dense_operator_is_the_layers_own_linear_map(conv: nn.Conv2d) -> None:
    torch.manual_seed(0)
    matrix = conv_dense_operator(conv, (6, 6))
    assert torch.allclose(matrix, jacobian_matrix(conv, (6, 6)), atol=1e-12)


def test_circular_view_is_exact_for_a_circular_convolution() -> None:
    torch.manual_seed(1)
    model = net(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), 2, 5)
    circular = layer_spectra(model, (2, 5, 5), "circular")[0]
    dense = layer_spectra(model, (2, 5, 5), "dense")[0]
    explicit = torch.linalg.svdvals(jacobian_matrix(model[0], (5, 5)))
    assert circular.exact and dense.exact
    assert len(circular.sigma) == len(explicit) == 5 * 5 * 2
    assert torch.allclose(circular.sigma, explicit, atol=1e-10)
    assert torch.allclose(dense.sigma, explicit, atol=1e-10)


def test_zero_padding_circular_view_is_marked_inexact_and_bounds_the_norm() -> None:
    torch.manual_seed(2)
    model = net(nn.Conv2d(2, 3, 3, padding=1), 2, 6)
    circular = layer_spectra(model, (2, 6, 6), "circular")[0]
    dense = layer_spectra(model, (2, 6, 6), "dense")[0]
    assert not circular.exact and dense.exact
    assert circular.sigma[0] >= dense.sigma[0] - 1e-12  # the (n + 2p)-grid bound


def test_linear_layers_and_the_reshaped_view() -> None:
    torch.manual_seed(3)
    model = net(nn.Conv2d(2, 3, 3), 2, 5)
    reshaped = layer_spectra(model, (2, 5, 5), "reshaped")
    kernel = model[0].weight.detach().double().reshape(3, -1)
    assert torch.allclose(reshaped[0].sigma, torch.linalg.svdvals(kernel))
    assert len(reshaped[0].sigma) == 3
    for operator in OPERATORS:
        spectra = layer_spectra(model, (2, 5, 5), operator)
        assert [s.name for s in spectra] == ["W1", "W2"]
        last = spectra[1]
        assert last.kind == "linear" and last.operator == "reshaped" and last.exact
        assert torch.allclose(last.sigma, torch.linalg.svdvals(model[2].weight.double()))
        assert last.std == pytest.approx(singular_value_std(model[2].weight))


def test_bad_operator_and_an_oversized_dense_operator_are_one_line_errors() -> None:
    model = net(nn.Conv2d(2, 3, 3), 2, 5)
    with pytest.raises(ConfigError, match=r"unknown operator 'fft'.*reshaped, circular, dense"):
        layer_spectra(model, (2, 5, 5), "fft")
    with pytest.raises(ConfigError, match=r"50 input coordinates, over max_dense = 10.*circular"):
        layer_spectra(model, (2, 5, 5), "dense", max_dense=10)


def test_fold_batchnorm_gives_the_operator_a_layer_and_its_norm_apply() -> None:
    from robustcompress.models.resnet import resnet20
    from robustcompress.structure.operators import fold_batchnorm, layer_map

    torch.manual_seed(0)
    model = resnet20(width=4)
    for module in model.modules():  # running statistics and affine terms far from 1, 0
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3.0)
            module.weight.data.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-1, 1)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model, (1, 28, 28))
    for key, value in model.state_dict().items():  # the model itself is untouched
        assert torch.equal(value, before[key])
    pairs = [
        (model.conv1, model.bn1, folded.conv1),
        (model.layers[3].conv2, model.layers[3].bn2, folded.layers[3].conv2),
        (model.layers[3].shortcut[0], model.layers[3].shortcut[1], folded.layers[3].shortcut[0]),
    ]
    for conv, norm, conv_folded in pairs:
        x = torch.randn(2, conv.in_channels, 14, 14)
        zero = torch.zeros_like(x)
        with torch.no_grad():
            want = norm(conv(x)) - norm(conv(zero))  # the norm's linear part after the conv
            got = layer_map(conv_folded)(x)
        assert torch.allclose(got, want, atol=1e-5)
        assert not torch.allclose(conv_folded.weight, conv.weight)
    # the classifier feeds no norm: unchanged
    assert torch.equal(folded.fc.weight, model.fc.weight)


def test_the_batch_norm_free_resnet_starts_as_fixup() -> None:
    from robustcompress.models.resnet import resnet20

    model = resnet20(width=4, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(int(torch.count_nonzero(b.conv2.weight)) == 0 for b in model.layers)
    assert int(torch.count_nonzero(model.fc.weight)) == 0
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), model.fc.bias.expand(3, -1))  # zero classifier at start
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        resnet20(norm="layer")

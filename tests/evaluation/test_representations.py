"""Representation measures (Sanyal et al. §3) against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.evaluation.representations import (
    layer_cushions,
    operator_frobenius_norm,
    perturbation_ratios,
    representations,
    variance_ratios,
)
from robustcompress.structure.operators import conv_dense_operator


@pytest.mark.parametrize("shape", [(50, 7), (6, 40)])
def test_variance_ratios_match_the_singular_values(shape: tuple[int, int]) -> None:
    a = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.linalg.svdvals(a.double())
    want = torch.cumsum(sigma**2, 0) / (sigma**2).sum()
    got = variance_ratios(a, chunk=4)  # several chunks each way
    assert torch.allclose(got[: len(want)], want, atol=1e-12)
    assert float(got[-1]) == pytest.approx(1.0)


def test_a_rank_two_matrix_has_all_its_variance_in_two_directions() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(100, 2, generator=g) @ torch.randn(2, 30, generator=g)
    ratios = variance_ratios(a)
    assert float(ratios[0]) < 1.0 and float(ratios[1]) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ConfigError, match="all-zero"):
        variance_ratios(torch.zeros(3, 3))


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    )


def test_the_convolution_frobenius_norm_is_the_dense_operators() -> None:
    conv = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)).double()
    dense = conv_dense_operator(conv, (7, 6))
    assert operator_frobenius_norm(conv, (7, 6)) == pytest.approx(
        float(torch.linalg.matrix_norm(dense)), rel=1e-12
    )


def test_layer_cushions_against_a_direct_computation() -> None:
    model = _cnn()
    x = torch.rand(9, 2, 8, 8)
    linear = model[3]
    phi = torch.relu(model[0](x)).flatten(1)
    want = (phi @ linear.weight.T).norm(dim=1) / (
        torch.linalg.matrix_norm(linear.weight) * phi.norm(dim=1)
    )
    assert torch.allclose(layer_cushions(model, "3", x, batch_size=4), want.detach(), rtol=1e-5)
    conv = model[0]
    dense = conv_dense_operator(conv, (8, 8)).float()
    flat = x.flatten(1)
    want = (flat @ dense.T).norm(dim=1) / (torch.linalg.matrix_norm(dense) * flat.norm(dim=1))
    assert torch.allclose(layer_cushions(model, "0", x), want, rtol=1e-4)
    with pytest.raises(ConfigError, match="Linear or Conv2d"):
        layer_cushions(model, "1", x)


def test_representations_and_perturbation_ratios() -> None:
    model = _cnn().train()
    x = torch.rand(7, 2, 8, 8)
    x_adv = x + 0.1 * torch.randn(7, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    reps = representations(model, "2", x, batch_size=3)
    assert reps.shape == (7, 48) and model.training  # its mode is restored
    rho_in, rho_rep = perturbation_ratios(model, "2", x, x_adv)
    adv = representations(model, "2", x_adv)
    assert torch.allclose(rho_in, (x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1))
    assert torch.allclose(rho_rep, (adv - reps).norm(dim=1) / reps.norm(dim=1))
    with pytest.raises(ConfigError, match="no module 'nope'"):
        representations(model, "nope", x)

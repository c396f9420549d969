"""Weight initialisation schemes (robustcompress.models.init) against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustcompress.errors import ModelError
from robustcompress.models import INIT_SCHEMES, create_model, initialize
from robustcompress.models.init import TRUNCATED_STD, fans


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_fans_are_computed_as_keras_does() -> None:
    assert fans(nn.Linear(300, 200).weight) == (300, 200)
    # kernel c_out × c_in × k_h × k_w: the receptive field k_h·k_w multiplies both fans
    assert fans(nn.Conv2d(16, 32, (5, 3)).weight) == (16 * 15, 32 * 15)


@pytest.mark.parametrize(
    ("layer", "fan_in", "fan_out", "rel"),
    [
        (nn.Linear(300, 200), 300, 200, 0.03),  # 60,000 weights
        (nn.Conv2d(16, 32, 5), 16 * 25, 32 * 25, 0.05),  # 12,800 weights
    ],
)
@pytest.mark.parametrize(
    ("scheme", "variance"),
    [("glorot_uniform", lambda i, o: 2.0 / (i + o)), ("caffe_xavier", lambda i, o: 1.0 / i)],
)
def test_uniform_schemes_bounds_and_variance(
    layer: nn.Module, fan_in, fan_out, rel, scheme: str, variance
) -> None:
    initialize(layer, scheme, generator=seeded(0))
    w = layer.weight.detach().double()
    target = variance(fan_in, fan_out)
    bound = math.sqrt(3.0 * target)  # U(−a, a) has variance a²/3
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound  # fills U(−a, a), not a narrower interval
    assert w.var().item() == pytest.approx(target, rel=rel)
    assert abs(w.mean().item()) < 0.05 * bound
    assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


@pytest.mark.parametrize(
    ("scheme", "variance"),
    [("glorot_normal", lambda i, o: 2.0 / (i + o)), ("he_normal", lambda i, o: 2.0 / i)],
)
def test_truncated_normal_schemes_have_the_keras_variance(scheme: str, variance) -> None:
    layer = nn.Linear(300, 200)
    initialize(layer, scheme, generator=seeded(0))
    w = layer.weight.detach().double()
    target = variance(300, 200)
    std = math.sqrt(target) / TRUNCATED_STD  # σ before truncation at ±2σ
    assert w.abs().max() <= 2 * std * (1 + 1e-6)
    assert w.var().item() == pytest.approx(target, rel=0.03)
    assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


@pytest.mark.parametrize("scheme", INIT_SCHEMES[1:])
def test_same_seed_same_weights_and_every_weight_layer_is_redrawn(scheme: str) -> None:
    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)  # the global generator, as the runner seeds it
        return initialize(create_model("cnn"), scheme)

    a, b, c = build(0), build(0), build(1)
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if name.endswith("weight"):
            assert not torch.equal(pa, pc), name
    torch.manual_seed(0)
    default = create_model("cnn")
    for module, before in zip(a.modules(), default.modules(), strict=True):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            assert not torch.equal(module.weight, before.weight)
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    # the explicit generator gives the same draws as the same seed on the global one
    layer, other = nn.Linear(20, 10), nn.Linear(20, 10)
    torch.manual_seed(5)
    on_global = initialize(layer, scheme).weight
    assert torch.equal(initialize(other, scheme, generator=seeded(5)).weight, on_global)


def test_batch_norm_is_left_as_built() -> None:
    torch.manual_seed(0)
    model = initialize(create_model("resnet18"), "glorot_uniform")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    for m in norms:
        assert torch.equal(m.weight, torch.ones_like(m.weight))
        assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_torch_default_changes_and_draws_nothing() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn", hidden=[16])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    assert initialize(model, "torch_default") is model
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("scheme", ["xavier", "Glorot_Uniform", None, 3])
def test_unknown_scheme_is_a_one_line_error_listing_the_schemes(scheme: object) -> None:
    with pytest.raises(ModelError) as info:
        initialize(nn.Linear(2, 2), scheme)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert f"unknown initialisation {scheme!r}" in message
    assert "torch_default, glorot_uniform, glorot_normal, he_normal, caffe_xavier" in message

"""Contract test over every registered model (timm-style) and registry behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.errors import ModelError
from robustcompress.models import (
    capture_representations,
    create_model,
    hidden_layer_names,
    list_models,
    model_spec,
    resolve_weight_matrix,
    weight_matrices,
)

ALL_MODELS = list_models()


def test_registry_lists_the_papers_models() -> None:
    assert {"fcnn", "cnn", "lenet300100", "lenet5", "resnet18"} <= set(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    spec = model_spec(name)
    model = create_model(name)
    model.train()
    x = torch.rand(3, *spec.input_shape)
    out = model(x)
    assert out.shape == (3, spec.num_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_weight_matrix_views(name: str) -> None:
    model = create_model(name)
    mats = weight_matrices(model)
    assert mats, f"{name} exposes no weight matrices"
    assert [m.name for m in mats] == [f"W{i}" for i in range(1, len(mats) + 1)]
    for m in mats:
        w = m.parameter
        if m.kind == "linear":
            assert m.shape == (w.shape[0], w.shape[1])
            assert m.kernel_size is None
        else:
            c_out, c_in, kh, kw = w.shape
            assert m.shape == (c_out, c_in * kh * kw)
            assert m.kernel_size == (kh, kw)
        assert m.matrix.data_ptr() == w.data_ptr(), "the view must share storage"


def test_fcnn_is_the_papers_network() -> None:
    mats = weight_matrices(create_model("fcnn"))
    assert [m.shape for m in mats] == [(20, 784)] + [(20, 20)] * 4 + [(10, 20)]
    assert all(isinstance(m.module, nn.Linear) for m in mats)


def test_cnn_is_the_papers_network() -> None:
    model = create_model("cnn")
    assert [m.shape for m in weight_matrices(model)] == [(32, 9), (32, 288), (128, 800), (10, 128)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 1
    tanh_cnn = create_model("cnn", conv_activation="tanh")
    assert sum(isinstance(m, nn.Tanh) for m in tanh_cnn.modules()) == 3


def test_resnet18_size() -> None:
    n = sum(p.numel() for p in create_model("resnet18").parameters())
    assert 11_000_000 < n < 11_200_000


def test_gradient_flows_through_matrix_view() -> None:
    model = create_model("cnn")
    w1 = weight_matrices(model)[0]
    w1.matrix.abs().sum().backward()
    assert torch.equal(w1.parameter.grad, torch.sign(w1.parameter.detach()))


def test_resolve_weight_matrix_by_name_path_and_index() -> None:
    mats = weight_matrices(create_model("fcnn"))
    assert resolve_weight_matrix(mats, "W2") is mats[1]
    assert resolve_weight_matrix(mats, 2) is mats[1]
    assert resolve_weight_matrix(mats, mats[1].module_name) is mats[1]
    with pytest.raises(ModelError, match=r"unknown weight matrix 'W9'.*W1"):
        resolve_weight_matrix(mats, "W9")


def test_unknown_model_and_option_errors() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'vgg'.*fcnn"):
        create_model("vgg")
    with pytest.raises(ModelError, match=r"no option.*widht.*allowed"):
        create_model("fcnn", widht=3)


def test_normalisation_lives_inside_the_model() -> None:
    torch.manual_seed(0)
    plain = create_model("fcnn")
    normed = create_model("fcnn", mean=(0.5,), std=(0.25,))
    normed.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(normed(x), plain((x - 0.5) / 0.25))


def test_capture_representations_gives_hidden_layers() -> None:
    model = create_model("fcnn")
    names = hidden_layer_names(model)
    assert len(names) == 5
    with capture_representations(model) as reps:
        model(torch.rand(7, 1, 28, 28))
    assert [reps[n].shape for n in names] == [(7, 20)] * 5
    assert all((reps[n].abs() <= 1).all() for n in names)  # tanh outputs
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("name", "convs", "linears"),
    [("resnet20", 21, 1), ("resnet32", 33, 1), ("resnet56", 57, 1), ("vgg_like", 12, 2)],
)
def test_cifar_style_models_have_the_papers_layer_counts(
    name: str, convs: int, linears: int
) -> None:
    model = create_model(name)
    kinds = [type(m) for m in model.modules()]
    # ResNet-6n+2: 6n + 1 convolutions as He et al. count them, plus two 1×1 projection
    # shortcuts (ResNet-32: 31 + 2)
    assert (kinds.count(nn.Conv2d), kinds.count(nn.Linear)) == (convs, linears)
    assert len(weight_matrices(model)) == convs + linears

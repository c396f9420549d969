"""Joint regularization, eq. (7): λ‖W_m ⋯ W_1‖₁ on chains of linear layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import create_model, weight_matrices
from robustcompress.regularizers import Joint, end_to_end_product, linear_chain


def test_end_to_end_product_order() -> None:
    g = torch.Generator().manual_seed(0)
    W1, W2, W3 = (torch.randn(s, generator=g).double() for s in [(4, 6), (3, 4), (2, 3)])
    torch.testing.assert_close(end_to_end_product([W1, W2, W3]), W3 @ W2 @ W1)
    assert torch.equal(end_to_end_product([W1]), W1)


def test_product_is_the_jacobian_of_the_linear_network() -> None:
    """Without activations and biases the network is x ↦ W_m ⋯ W_1 x."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 4, bias=False), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)
    ).double()
    jacobian = torch.func.jacrev(net)(torch.zeros(6, dtype=torch.float64))
    product = end_to_end_product([m.matrix for m in weight_matrices(net)])
    torch.testing.assert_close(product, jacobian)


def test_joint_on_fcnn_equals_the_hand_computed_product() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn")
    W = [m.parameter for m in weight_matrices(model)]
    by_hand = W[5] @ W[4] @ W[3] @ W[2] @ W[1] @ W[0]  # 10 × 784
    assert by_hand.shape == (10, 784)
    penalty = Joint(0.001).penalty(model)
    torch.testing.assert_close(penalty, 0.001 * by_hand.abs().sum())
    # the paper's transposed convention W^1 ⋯ W^m with W^i = W_iᵀ gives the same value
    paper = W[0].T @ W[1].T @ W[2].T @ W[3].T @ W[4].T @ W[5].T
    torch.testing.assert_close(penalty, 0.001 * paper.abs().sum())


def test_lambdas_cover_the_whole_chain() -> None:
    assert Joint(0.2).lambdas(create_model("lenet300100")) == {"W1": 0.2, "W2": 0.2, "W3": 0.2}


@pytest.mark.parametrize("name", ["cnn", "lenet5"])
def test_joint_on_a_convolutional_model_raises(name: str) -> None:
    model = create_model(name)
    reg = Joint(0.01)
    with pytest.raises(ModelError, match=r"only for networks of linear layers.*W1 \("):
        reg.check(model)
    with pytest.raises(ModelError, match="linear layers"):
        reg.penalty(model)
    with pytest.raises(ModelError, match="linear layers"):
        Joint(0.0).penalty(model)


def test_layers_that_do_not_chain_raise() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))
    with pytest.raises(ModelError, match=r"W2 .* takes 5 inputs but W1 .* gives 3 outputs"):
        linear_chain(model)


def test_model_without_weights_raises() -> None:
    with pytest.raises(ModelError, match="no weight matrices"):
        Joint(0.1).check(nn.Sequential(nn.ReLU()))


def test_zero_lambda_gives_exact_zero() -> None:
    penalty = Joint(0.0).penalty(create_model("fcnn"))
    assert penalty.item() == 0.0 and not penalty.requires_grad


def test_validation_and_no_prox() -> None:
    with pytest.raises(ConfigError, match=r"joint: λ is -1\.0"):
        Joint(-1.0)
    with pytest.raises(ConfigError, match="one number"):
        Joint({"W1": 0.1})  # type: ignore[arg-type]
    reg = Joint(0.1)
    assert not reg.has_prox and repr(reg) == "Joint(lam=0.1)"
    with pytest.raises(ConfigError, match="no closed-form proximal operator"):
        reg.prox(create_model("fcnn"), lr=0.1)

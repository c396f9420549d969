"""ℓ1 regularization, eq. (5): values, λ resolution, validation, and the proximal step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import create_model, weight_matrices
from robustcompress.regularizers import L1, l1_norm, soft_threshold


def test_l1_norm_closed_form() -> None:
    W = torch.tensor([[1.0, -2.0], [0.0, 3.5]])
    assert float(l1_norm(W)) == 6.5


def test_penalty_with_one_lambda_sums_every_weight_matrix() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn")
    by_hand = sum(0.01 * m.parameter.abs().sum() for m in weight_matrices(model))
    torch.testing.assert_close(L1(0.01).penalty(model), by_hand)


def test_penalty_with_a_mapping_uses_only_the_named_matrices() -> None:
    torch.manual_seed(0)
    model = create_model("cnn")
    mats = weight_matrices(model)
    reg = L1({"W1": 0.01, 2: 0.02})
    expected = 0.01 * mats[0].parameter.abs().sum() + 0.02 * mats[1].parameter.abs().sum()
    torch.testing.assert_close(reg.penalty(model), expected)
    assert reg.lambdas(model) == {"W1": 0.01, "W2": 0.02, "W3": 0.0, "W4": 0.0}


def test_module_path_keys_resolve() -> None:
    model = create_model("lenet300100")
    mats = weight_matrices(model)
    reg = L1({mats[1].module_name: 0.3})
    assert reg.lambdas(model) == {"W1": 0.0, "W2": 0.3, "W3": 0.0}


def test_zero_lambda_gives_exact_zero_and_leaves_gradients_unchanged() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn")
    x = torch.rand(4, 1, 28, 28)
    penalty = L1(0.0).penalty(model)
    assert penalty.item() == 0.0 and not penalty.requires_grad
    (model(x).sum() + penalty).backward()
    with_penalty = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model(x).sum().backward()
    without = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(with_penalty) == len(without) == len(list(model.parameters()))
    for a, b in zip(with_penalty, without, strict=True):
        assert torch.equal(a, b)


def test_unknown_weight_name_is_a_model_error() -> None:
    model = create_model("fcnn")
    with pytest.raises(ModelError, match=r"'W9'.*W1 \("):
        L1({"W9": 0.1}).check(model)
    with pytest.raises(ModelError, match="W9"):
        L1({"W9": 0.1}).penalty(model)


@pytest.mark.parametrize(
    ("lam", "pattern"),
    [
        (-0.1, r"l1: λ is -0.1"),
        ({"W2": -0.5}, r"l1: λ for weight matrix 'W2' is -0.5"),
        ({"W1": float("nan")}, r"'W1' is nan"),
        ({"W1": "0.1"}, r"'W1' must be a number"),
        ({1.5: 0.1}, r"key 1.5"),
        (True, r"must be a number"),
    ],
)
def test_invalid_lambdas_are_config_errors(lam: object, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        L1(lam)  # type: ignore[arg-type]


def test_the_same_matrix_named_twice_is_a_config_error() -> None:
    model = create_model("fcnn")
    with pytest.raises(ConfigError, match="W1 is given twice"):
        L1({"W1": 0.1, 1: 0.2}).check(model)


def test_repr_and_equality() -> None:
    assert repr(L1({"W1": 0.01})) == "L1(lam={'W1': 0.01})"
    assert repr(L1(0.5)) == "L1(lam=0.5)"
    assert L1({"W1": 0.01}) == L1({"W1": 0.01}) and L1(0.1) != L1(0.2)


def test_prox_soft_thresholds_only_regularized_matrices() -> None:
    torch.manual_seed(0)
    model = create_model("cnn")
    before = [m.parameter.detach().clone() for m in weight_matrices(model)]
    L1({"W2": 0.5}).prox(model, lr=0.1)
    after = [m.parameter.detach() for m in weight_matrices(model)]
    assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
    assert torch.equal(after[1], soft_threshold(before[1], 0.05))
    assert after[1].shape == before[1].shape  # conv kernel keeps its 4-D shape
    assert (after[1] == 0).any()


def test_prox_rejects_a_negative_learning_rate() -> None:
    with pytest.raises(ConfigError, match="learning rate"):
        L1(0.1).prox(create_model("fcnn"), lr=-1.0)


def test_sgd_with_prox_converges_to_the_exact_sparse_solution() -> None:
    """Proximal gradient on ½‖W − A‖_F² + λ‖W‖₁ reaches soft_threshold(A, λ), zeros exact."""
    torch.manual_seed(0)
    layer = nn.Linear(5, 4, bias=False).double()
    A = torch.randn(4, 5, dtype=torch.float64)
    lam = 0.6
    reg = L1(lam)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    eye = torch.eye(5, dtype=torch.float64)
    for _ in range(80):
        opt.zero_grad()
        loss = 0.5 * ((layer(eye) - A.T) ** 2).sum()  # layer(I) = Wᵀ
        loss.backward()
        opt.step()
        reg.prox(layer, lr=0.5)
    target = soft_threshold(A, lam)
    torch.testing.assert_close(layer.weight.detach(), target, atol=1e-12, rtol=0)
    assert torch.equal(layer.weight.detach() == 0, target == 0)
    assert int((target == 0).sum()) > 0

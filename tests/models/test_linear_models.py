"""Guo et al. 2018's linear classifiers: the binary one's loss is the paper's softplus loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcompress import attacks
from robustcompress.models import create_model, weight_matrices


def test_logistic_regression_cross_entropy_is_the_softplus_loss() -> None:
    torch.manual_seed(0)
    model = create_model("logistic_regression")
    x = torch.rand(16, 1, 28, 28)
    labels = torch.randint(0, 2, (16,))
    layer = weight_matrices(model)[0].module
    z = (x.flatten(1) @ layer.weight.T + layer.bias).squeeze(1)
    y = 2.0 * labels - 1.0  # class 1 → +1, class 0 → −1
    softplus = torch.log1p(torch.exp(-y * z)).mean()
    torch.testing.assert_close(F.cross_entropy(model(x), labels), softplus)
    assert torch.equal(model(x).argmax(1), (z > 0).long())
    assert [m.shape for m in weight_matrices(model)] == [(1, 784)]


def test_softmax_regression_is_one_affine_map() -> None:
    torch.manual_seed(0)
    model = create_model("softmax_regression")
    (w1,) = weight_matrices(model)
    assert w1.shape == (10, 784)
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(model(x), x.flatten(1) @ w1.parameter.T + w1.module.bias)


def test_deepfool_reaches_the_binary_decision_boundary_in_one_step() -> None:
    """For an affine binary classifier DeepFool's first step lands on the hyperplane
    z = 0 (plus its 10⁻⁴ slack, then the overshoot):
    ‖r‖₂ = (1 + overshoot)·(|z(x)| + 10⁻⁴) / ‖w‖₂ (docs/algorithms.md, DeepFool)."""
    torch.manual_seed(0)
    model = create_model("logistic_regression")
    x = torch.rand(8, 1, 28, 28) * 0.1 + 0.45  # far from the box's faces
    with torch.no_grad():
        labels = model(x).argmax(1)
    layer = weight_matrices(model)[0].module
    z = (x.flatten(1) @ layer.weight.T + layer.bias).squeeze(1)
    deepfool = attacks.get("deepfool", overshoot=0.02, max_iter=50)
    r = (deepfool(model, x, labels) - x).flatten(1).norm(dim=1)
    expected = 1.02 * (z.abs() + 1e-4) / layer.weight.norm()
    torch.testing.assert_close(r, expected.detach(), rtol=1e-4, atol=1e-6)

"""Margins, estimated probabilities, losses and GE gaps on a model with known outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.evaluation.generalization import (
    generalization_gap,
    margins,
    prediction_stats,
)


class Given(nn.Module):
    """Outputs its input as the logits: the inputs *are* the known outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


LOGITS = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0], [1.0, 1.0, -1.0], [0.0, 0.0, 4.0]])
LABELS = torch.tensor([0, 0, 1, 2])


def test_margins_by_hand() -> None:
    # 2 − 1; 0 − 3; a tie 1 − 1; 4 − 0
    assert margins(LOGITS, LABELS).tolist() == [1.0, -3.0, 0.0, 4.0]


def test_prediction_stats_against_the_softmax_in_numpy() -> None:
    model = Given().train()
    stats = prediction_stats(model, LOGITS, LABELS, batch_size=3)  # two batches
    assert model.training  # mode restored
    z = LOGITS.double().numpy()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p_true = p[np.arange(4), LABELS.numpy()]
    np.testing.assert_allclose(stats.probabilities, p_true, rtol=1e-12)
    np.testing.assert_allclose(stats.losses, -np.log(p_true), rtol=1e-12)
    np.testing.assert_array_equal(stats.margins, [1.0, -3.0, 0.0, 4.0])
    # argmax takes the first of a tie: row 3 predicts class 0, not its label 1
    assert stats.correct.tolist() == [True, False, False, True]
    assert stats.error == 0.5
    assert stats.loss == pytest.approx(float(-np.log(p_true).mean()), rel=1e-12)


def test_generalization_gap_is_test_minus_train() -> None:
    train = (torch.tensor([[9.0, 0.0], [0.0, 9.0]]), torch.tensor([0, 1]))
    test = (torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    gap = generalization_gap(Given(), train, test)
    train_loss = math.log1p(math.exp(-9.0))
    test_loss = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2
    assert gap.train_loss == pytest.approx(train_loss, rel=1e-12)
    assert gap.test_loss == pytest.approx(test_loss, rel=1e-12)
    assert (gap.train_error, gap.test_error) == (0.0, 0.5)
    assert gap.loss_gap == pytest.approx(test_loss - train_loss, rel=1e-12)
    assert gap.error_gap == 0.5


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), r"N × K with K ≥ 2"),
        (torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), r"one class per row"),
        (torch.zeros(2, 2), torch.tensor([0, 2]), r"labels must lie in \[0, 2\)"),
    ],
)
def test_bad_shapes_and_labels_are_one_line_errors(logits, labels, message) -> None:
    with pytest.raises(ConfigError, match=message):
        margins(logits, labels)


def test_mismatched_set_is_an_error() -> None:
    with pytest.raises(ConfigError, match="3 images but 2 labels"):
        prediction_stats(Given(), torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


class Affine(nn.Module):
    """Logits (0, wᵀx + b): a binary linear classifier with known boundary distances."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w), b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_instance_space_margins_are_boundary_distances_of_correct_inputs() -> None:
    from robustcompress.evaluation.generalization import instance_space_margins

    torch.manual_seed(0)
    w = torch.randn(64, dtype=torch.float64) * 0.1
    model = Affine(w, 0.0)
    x = torch.full((4, 1, 8, 8), 0.5, dtype=torch.float64)
    z = torch.tensor([0.3, -0.2, 0.5, -0.4], dtype=torch.float64)
    x = x + ((z - x.flatten(1) @ w)[:, None] * w / w.dot(w)).reshape(4, 1, 8, 8)
    assert bool(((x >= 0) & (x <= 1)).all())
    y = torch.tensor([1, 0, 1, 1])  # the last is misclassified (z < 0, label 1)
    v = instance_space_margins(model, x, y)
    # the true distance is |z|/‖w‖; DeepFool's one step overshoots it by its settings
    exact = (z.abs() / w.norm()).numpy()
    deepfool = ((z.abs() + 1e-4) / w.norm() * 1.02).numpy()
    np.testing.assert_allclose(v[:3], deepfool[:3], rtol=1e-6)
    assert np.all(v[:3] >= exact[:3]) and math.isnan(v[3])

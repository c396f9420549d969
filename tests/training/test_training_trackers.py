"""Trackers and the metrics file (robustcompress.training.trackers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.models import create_model, weight_matrices
from robustcompress.regularizers import L1
from robustcompress.structure import effective_rank, effective_sparsity
from robustcompress.training.trackers import (
    CleanTracker,
    EvaluationContext,
    MetricRecord,
    MetricsWriter,
    StructureTracker,
    latest_values,
    read_metrics,
    truncate_metrics,
)


class Constant(nn.Module):
    """Predicts class 3 for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 10)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            self.linear.bias[3] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)[:, :4])


def test_clean_tracker_accuracy_and_loss_terms() -> None:
    model = Constant().eval()
    labels = torch.tensor([3, 3, 1, 0])
    ctx = EvaluationContext(
        model, torch.rand(4, 1, 2, 2), labels, step=5, epoch=1, regularizers=[L1(2.0)]
    )
    rows = {m.metric: m.value for m in CleanTracker().measure(ctx)}
    assert rows["accuracy"] == pytest.approx(0.5)
    # logits are 1 at class 3 and 0 elsewhere: p(3) = e/(e+9), p(other) = 1/(e+9)
    expected_ce = 0.5 * -math.log(math.e / (math.e + 9)) + 0.5 * -math.log(1 / (math.e + 9))
    assert rows["loss/ce"] == pytest.approx(expected_ce, rel=1e-6)
    assert rows["loss/l1"] == 0.0  # all weights are zero
    assert rows["loss/total"] == pytest.approx(rows["loss/ce"])


def test_structure_tracker_measures_every_weight_matrix() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn", hidden=(6, 5))
    ctx = EvaluationContext(
        model, torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), step=0, epoch=0
    )
    rows = StructureTracker().measure(ctx)
    matrices = weight_matrices(model)
    assert [(m.metric, m.layer) for m in rows] == [
        (name, wm.name) for wm in matrices for name in ("effective_rank", "effective_sparsity")
    ]
    assert rows[0].value == pytest.approx(effective_rank(matrices[0].matrix))
    assert rows[1].value == pytest.approx(effective_sparsity(matrices[0].matrix))


def test_unknown_structure_measure() -> None:
    with pytest.raises(ConfigError, match="unknown structure measure"):
        StructureTracker(["efective_rank"])


def test_representations_are_captured() -> None:
    torch.manual_seed(0)
    model = create_model("fcnn", hidden=(6, 5)).eval()
    ctx = EvaluationContext(
        model, torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.long), step=0, epoch=0
    )
    reps = ctx.representations()
    assert [tuple(t.shape) for t in reps.values()] == [(3, 6), (3, 5)]


def test_metrics_writer_truncate_and_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write([MetricRecord(0, 0, "accuracy", 0.1)])
    offset = writer.offset()
    writer.write(
        [
            MetricRecord(4, 1, "effective_rank", 2.5, "W1"),
            MetricRecord(4, 1, "loss/ce", float("nan")),
        ]
    )
    writer.close()
    rows = read_metrics(path)
    assert rows[1] == {
        "step": 4,
        "epoch": 1,
        "metric": "effective_rank",
        "layer": "W1",
        "value": 2.5,
    }
    assert rows[2]["value"] is None  # NaN is written as null (valid JSON)
    assert latest_values(rows) == {"effective_rank/W1": 2.5, "loss/ce": None}
    with open(path, "a") as handle:
        handle.write('{"step": 5, "epo')  # a run killed mid-line
    assert len(read_metrics(path)) == 3
    truncate_metrics(path, offset)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0]

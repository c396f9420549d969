"""The mutual-information tracker: its rows equal the KDE bounds on a fixed sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from robustcompress.errors import ConfigError
from robustcompress.models import create_model, hidden_layer_names
from robustcompress.structure import layer_mutual_information
from robustcompress.training import EvaluationContext, MutualInformationTracker
from robustcompress.training.trackers import MUTUAL_INFORMATION_METRICS


def _model_and_sample(n: int = 40) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("fcnn", hidden=(12, 8)).eval()
    x = torch.rand(n, 1, 28, 28)
    y = torch.arange(n) % 10
    return model, x, y


def test_rows_are_the_kde_bounds_of_every_hidden_layer() -> None:
    model, x, y = _model_and_sample()
    context = EvaluationContext(model, x[:5], y[:5], step=3, epoch=1)
    rows = MutualInformationTracker((x, y), noise_variance=0.1).measure(context)
    assert len(hidden_layer_names(model)) == 2
    layers = ["t1", "t2"]
    assert [(r.layer, r.metric) for r in rows] == [
        (layer, metric) for layer in layers for metric in MUTUAL_INFORMATION_METRICS
    ]
    # the tracker's own fixed sample (N = 40) is used, not the context's 5 images
    expected = layer_mutual_information(model, x, y, noise_variance=0.1, unit="bits")
    values = {(r.layer, r.metric): r.value for r in rows}
    for record in expected:
        for metric in MUTUAL_INFORMATION_METRICS:
            layer = f"t{record['index']}"
            assert values[layer, metric] == pytest.approx(record[metric], abs=1e-12)
    for layer in layers:
        lower, upper = values[layer, "mi_input_lower"], values[layer, "mi_input_upper"]
        assert 0 <= lower <= upper <= math.log2(40) + 1e-9


def test_falls_back_to_the_evaluation_subset() -> None:
    model, x, y = _model_and_sample(20)
    context = EvaluationContext(model, x, y, step=0, epoch=0)
    rows = MutualInformationTracker().measure(context)
    upper = {r.layer: r.value for r in rows if r.metric == "mi_input_upper"}
    assert all(v <= math.log2(20) + 1e-9 for v in upper.values())
    # tiny noise: distinct tanh activations are all resolved, I_up = log2 N exactly
    sharp = MutualInformationTracker(noise_variance=1e-9).measure(context)
    assert all(
        r.value == pytest.approx(math.log2(20), abs=1e-6)
        for r in sharp
        if r.metric == "mi_input_upper"
    )


def test_invalid_settings() -> None:
    with pytest.raises(ConfigError, match="noise_variance must be > 0"):
        MutualInformationTracker(noise_variance=0)
    with pytest.raises(ConfigError, match="3 images but 2 labels"):
        MutualInformationTracker((torch.zeros(3, 1, 28, 28), torch.zeros(2)))


def test_trainer_writes_mi_rows_to_metrics_jsonl(make_trainer, tmp_path: Path) -> None:
    _, x, y = _model_and_sample(16)
    trainer = make_trainer(run_dir=tmp_path / "run", trackers=[MutualInformationTracker((x, y))])
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    mi = [r for r in rows if r["metric"] in MUTUAL_INFORMATION_METRICS]
    steps = sorted({r["step"] for r in mi})
    assert steps == [0, 4, 8]  # before the first step and at both epoch ends
    assert len(mi) == len(steps) * 2 * 4  # 2 hidden layers × 4 bounds
    assert {r["layer"] for r in mi} == {"t1", "t2"}

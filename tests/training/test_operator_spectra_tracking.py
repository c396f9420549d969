"""Per-layer operator spectra tracked by a tracker and by a run's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.experiments import parse_config, run
from robustcompress.structure.operators import layer_spectra
from robustcompress.training import OperatorSpectrumTracker, load_model, read_metrics
from robustcompress.training.trackers import EvaluationContext


def test_tracker_rows_are_the_layer_spectra_of_the_batchs_input_size() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * 36, 4))
    images = torch.rand(5, 1, 6, 6)
    context = EvaluationContext(model, images, torch.zeros(5, dtype=torch.long), 0, 0)
    for operator in ("reshaped", "circular", "dense"):
        rows = OperatorSpectrumTracker(operator).measure(context)
        expected = layer_spectra(model, (1, 6, 6), operator)
        got = {(r.metric, r.layer): r.value for r in rows}
        for s in expected:
            assert got["operator_sv_std", s.name] == pytest.approx(s.std, rel=1e-12)
            assert got["operator_norm", s.name] == pytest.approx(float(s.sigma[0]), rel=1e-12)
        assert len(rows) == 4
    # the views differ on the convolution: 3 values of W̃ (3 × 9) against 8·8·1 of the
    # circular extension on the zero-padded (6 + 2)-grid
    reshaped, circular = (layer_spectra(model, (1, 6, 6), o)[0] for o in ("reshaped", "circular"))
    assert len(reshaped.sigma) == 3 and len(circular.sigma) == 64


def test_a_run_config_tracks_them_and_rejects_an_unknown_view(tmp_path: Path) -> None:
    base = {
        "name": "spectra",
        "data": {"dataset": "synthetic-subspace", "limit": 64},
        "model": {"name": "fcnn", "kwargs": {"hidden": [8]}},
        "optimizer": {"epochs": 1, "batch_size": 32},
        "tracking": {"eval_size": 16, "attacks": {}},
    }
    config = parse_config(
        {**base, "tracking": {**base["tracking"], "operator_spectra": {"enabled": True}}}, "c"
    )
    record = run(config, runs_dir=tmp_path, echo=False)
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    final = {(r["metric"], r.get("layer")): r["value"] for r in rows if r["epoch"] == 1}
    model = load_model(record.run_dir)
    for s in layer_spectra(model, (1, 1, 784), "circular"):
        assert final["operator_sv_std", s.name] == pytest.approx(s.std, rel=1e-9)
    with pytest.raises(ConfigError, match="unknown operator 'fft'"):
        parse_config(
            {
                **base,
                "tracking": {
                    **base["tracking"],
                    "operator_spectra": {"enabled": True, "operator": "fft"},
                },
            },
            "c",
        )

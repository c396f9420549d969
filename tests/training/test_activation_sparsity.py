"""Activation sparsity (Guo et al. 2018, Table 1): the tracked share of zero activations
feeding the last linear layer, and the ℓ1 penalty on activations that induces it.

Runs on the synthetic subspace data: no data set needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robustcompress.data import make_subspace_dataset
from robustcompress.experiments.config import OptimizerConfig
from robustcompress.models import create_model
from robustcompress.training import (
    ActivationL1,
    ActivationSparsityTracker,
    CleanTracker,
    SettingError,
    Trainer,
    TrainingSettings,
    build_extra,
    read_metrics,
)
from robustcompress.training.trackers import last_linear_input_sparsity

N = 32


def _relu_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(N, 16), nn.ReLU(), nn.Linear(16, 2))


def test_sparsity_is_the_share_of_zeros_entering_the_last_linear_layer() -> None:
    model = _relu_net()
    x = torch.randn(50, 1, 1, N)
    with torch.no_grad():
        hidden = torch.relu(model[1](x.flatten(1)))
    assert last_linear_input_sparsity(model, x) == pytest.approx(
        float((hidden == 0).float().mean())
    )
    with torch.no_grad():
        model[1].bias.fill_(-100.0)  # every unit off
    assert last_linear_input_sparsity(model, x) == 1.0
    with pytest.raises(Exception, match="no linear layer"):
        last_linear_input_sparsity(nn.Sequential(nn.Flatten()), x)


def test_penalty_is_lam_times_the_batch_mean_l1_norm_and_its_gradient() -> None:
    model = _relu_net()
    extra = ActivationL1(lam=0.3)
    extra.setup(model)
    x = torch.randn(8, 1, 1, N)
    model.train()
    model(x)
    term = extra.loss_term(trainer=None)  # type: ignore[arg-type]
    assert term is not None
    hidden = torch.relu(model[1](x.flatten(1)))
    expected = 0.3 * hidden.abs().sum(dim=1).mean()
    assert torch.allclose(term, expected)
    (got,) = torch.autograd.grad(term, model[1].weight)
    (want,) = torch.autograd.grad(expected, model[1].weight)
    assert torch.allclose(got, want) and got.abs().sum() > 0
    # evaluation passes are not penalised
    model.eval()
    model(x)
    assert extra.loss_term(trainer=None) is None  # type: ignore[arg-type]


def _train(run_dir: Path, callbacks: list) -> list[dict]:
    train = make_subspace_dataset(n=N, k=4, num_samples=256, seed=0)
    test = make_subspace_dataset(n=N, k=4, num_samples=64, seed=0, split="test")
    torch.manual_seed(0)
    model = create_model("fcnn", in_features=N, hidden=(16,), num_classes=2, activation_name="relu")
    trainer = Trainer(
        model,
        train,
        TrainingSettings(epochs=3, batch_size=32),
        optimizer=OptimizerConfig(lr=0.05, momentum=0.9).build,
        run_dir=run_dir,
        eval_data=(test.images, test.labels),
        trackers=[CleanTracker(), ActivationSparsityTracker()],
        callbacks=callbacks,
    )
    trainer.fit()
    return read_metrics(trainer.metrics_path)


def test_the_penalty_makes_activations_sparser(tmp_path: Path) -> None:
    def final(rows: list[dict], metric: str) -> float:
        return [r["value"] for r in rows if r["metric"] == metric][-1]

    plain = _train(tmp_path / "plain", [])
    penalised = _train(tmp_path / "l1", [build_extra("activation_l1", lam=0.01)])
    # measured: 0.570 without the penalty, 0.667 with it, both at accuracy 0.969
    assert final(penalised, "activation_sparsity") > final(plain, "activation_sparsity") + 0.05
    assert final(penalised, "accuracy") >= 0.9 and final(plain, "accuracy") >= 0.9


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(SettingError, match="lam: must be ≥ 0"):
        build_extra("activation_l1", lam=-1.0)
    extra = build_extra("activation_l1", lam=1.0, layers=["nope"])
    with pytest.raises(SettingError, match="no module"):
        extra.setup(_relu_net())


def test_a_run_config_tracks_activation_sparsity(tmp_path: Path) -> None:
    from robustcompress.experiments import parse_config, run

    config = parse_config(
        {
            "name": "act",
            "data": {"dataset": "synthetic-subspace", "limit": 128},
            "model": {"name": "fcnn", "kwargs": {"hidden": [8], "activation_name": "relu"}},
            "optimizer": {"epochs": 1, "lr": 0.05},
            "tracking": {"eval_size": 32, "attacks": {}, "activation_sparsity": True},
            "extras": [{"name": "activation_l1", "lam": 0.01}],
        },
        "config.yaml",
    )
    record = run(config, runs_dir=tmp_path, echo=False)
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    values = [r["value"] for r in rows if r["metric"] == "activation_sparsity"]
    assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)

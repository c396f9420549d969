"""GE gaps and margin statistics tracked over a real run, against a recomputation."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustcompress.data import load_dataset
from robustcompress.data.sampling import subsample_indices
from robustcompress.evaluation.generalization import prediction_stats
from robustcompress.experiments import config_hash, parse_config, run
from robustcompress.training import load_model, read_metrics
from robustcompress.training.trackers import GENERALIZATION_TERMS, MARGIN_TERMS

BASE = {
    "name": "ge",
    "data": {"dataset": "synthetic-subspace", "limit": 128},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"epochs": 2, "batch_size": 32, "lr": 0.05},
    "tracking": {"eval_size": 32, "attacks": {}},
}


def test_a_run_tracks_ge_gaps_and_margins_that_a_recomputation_matches(tmp_path: Path) -> None:
    general = {"enabled": True, "train_size": 96, "test_size": 64, "seed": 3}
    config = parse_config(
        {**BASE, "tracking": {**BASE["tracking"], "generalization": general}}, "c.yaml"
    )
    record = run(config, runs_dir=tmp_path, echo=False)
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    keys = [f"generalization/{t}" for t in GENERALIZATION_TERMS] + [
        f"margin/{t}" for t in MARGIN_TERMS
    ]
    for key in keys:
        assert len([r for r in rows if r["metric"] == key]) == 3  # the start, both epoch ends
    last = {r["metric"]: r["value"] for r in rows if r["metric"] in keys and r["epoch"] == 2}
    model = load_model(record.run_dir)
    # the training side is a subset of the 128 examples the run trained on
    seen = load_dataset("synthetic-subspace", "train", limit=128, seed=0)
    seen = seen.subset(subsample_indices(seen.labels, 96, 3))
    sets = [seen, load_dataset("synthetic-subspace", "test", limit=64, seed=3)]
    train, test = (prediction_stats(model, s.images, s.labels) for s in sets)
    assert last["generalization/train_loss"] == pytest.approx(train.loss, rel=1e-9)
    assert last["generalization/test_error"] == pytest.approx(test.error, abs=1e-12)
    assert last["generalization/loss_gap"] == pytest.approx(test.loss - train.loss, rel=1e-9)
    assert last["generalization/error_gap"] == pytest.approx(test.error - train.error, abs=1e-12)
    assert last["margin/train_mean"] == pytest.approx(float(train.margins.mean()), rel=1e-9)
    assert last["margin/test_std"] == pytest.approx(float(test.margins.std()), rel=1e-9)


def test_the_switch_alone_changes_the_hash() -> None:
    plain = parse_config(BASE, "c.yaml")
    off = parse_config(
        {**BASE, "tracking": {**BASE["tracking"], "generalization": {"train_size": 10}}},
        "c.yaml",
    )
    on = parse_config(
        {**BASE, "tracking": {**BASE["tracking"], "generalization": {"enabled": True}}},
        "c.yaml",
    )
    assert config_hash(plain) == config_hash(off) != config_hash(on)


def test_without_a_size_the_training_side_is_all_the_run_trains_on(tmp_path: Path) -> None:
    config = parse_config(
        {**BASE, "tracking": {**BASE["tracking"], "generalization": {"enabled": True}}},
        "c.yaml",
    )
    record = run(config, runs_dir=tmp_path, echo=False)
    rows = read_metrics(record.run_dir / "metrics.jsonl")
    last = {r["metric"]: r["value"] for r in rows if r["epoch"] == 2}
    seen = load_dataset("synthetic-subspace", "train", limit=128, seed=0)
    train = prediction_stats(load_model(record.run_dir), seen.images, seen.labels)
    assert last["generalization/train_loss"] == pytest.approx(train.loss, rel=1e-9)
    whole = load_dataset("synthetic-subspace", "train")
    assert len(whole) > 128  # the whole split would be a different set

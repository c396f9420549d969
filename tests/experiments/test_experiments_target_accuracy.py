"""Training until a target accuracy is reached (the ``target_accuracy`` extra), with the
epochs as a cap: the run stops after the epoch that reaches it, also when resumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments import run
from robustcompress.experiments.config import check_against_model, parse_config

BASE: dict[str, Any] = {
    "data": {"dataset": "synthetic-subspace", "limit": 200},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"lr": 0.1, "momentum": 0.9, "epochs": 30, "batch_size": 20},
    "tracking": {"eval_size": 100, "attacks": {}},
    "device": "cpu",
}


def _accuracy_by_epoch(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["epoch"]: r["value"] for r in rows if r["metric"] == "accuracy"}


def test_a_run_stops_after_the_epoch_that_reaches_the_target(tmp_path: Path) -> None:
    config = {**BASE, "name": "target", "extras": [{"name": "target_accuracy", "accuracy": 0.8}]}
    record = run(parse_config(config), runs_dir=tmp_path / "runs")
    epochs = record.summary["epochs"]
    accuracy = _accuracy_by_epoch(record.run_dir)
    assert 1 <= epochs < 30  # the cap was not needed
    assert accuracy[epochs] >= 0.8 and all(accuracy[e] < 0.8 for e in range(1, epochs))
    assert record.summary["stopped_early"] == f"accuracy reached 0.8 at epoch {epochs}"
    assert record.summary["steps"] == epochs * 10  # 200 images / batch 20


def test_unreachable_target_trains_to_the_cap(tmp_path: Path) -> None:
    config = {
        **BASE,
        "name": "cap",
        "optimizer": {**BASE["optimizer"], "epochs": 2},
        "extras": [{"name": "target_accuracy", "accuracy": 1.0, "min_epochs": 3}],
    }
    record = run(parse_config(config), runs_dir=tmp_path / "runs")
    assert record.summary["epochs"] == 2 and record.summary["stopped_early"] is None


def test_resuming_after_the_decision_does_not_train_further(tmp_path: Path) -> None:
    config = {**BASE, "name": "resume", "extras": [{"name": "target_accuracy", "accuracy": 0.8}]}
    runs = tmp_path / "runs"
    first = run(parse_config(config), runs_dir=runs)
    # as if killed right after the stopping epoch's checkpoint: no summary yet
    (first.run_dir / "summary.json").unlink()
    again = run(parse_config(config), runs_dir=runs)
    assert again.summary["epochs"] == first.summary["epochs"]
    assert again.summary["steps"] == first.summary["steps"]
    assert again.summary["stopped_early"] == first.summary["stopped_early"]


def test_bad_target_is_a_one_line_error() -> None:
    config = parse_config(
        {**BASE, "name": "bad", "extras": [{"name": "target_accuracy", "accuracy": 1.5}]}
    )
    with pytest.raises(ConfigError, match=r"extras.0.accuracy: must be in \(0, 1\]"):
        check_against_model(config)

"""A finished model at chance accuracy is flagged wherever its fooling ratios are shown:
its ratio is over a handful of correct inputs, and 0 there is not robustness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from robustcompress.cli import main
from robustcompress.evaluation.masking import near_chance, run_near_chance

BASE = {
    "data": {"dataset": "synthetic-subspace", "limit": 200},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"momentum": 0.9, "epochs": 5, "batch_size": 20},
    "tracking": {"eval_size": 100, "attacks": {"fgsm": {"eps": 0.05}}},
    "device": "cpu",
}


def test_near_chance_rule() -> None:
    assert near_chance(0.15, 150, 10) and not near_chance(0.9, 900, 10)
    assert near_chance(0.9, 20, 10)  # too few correct inputs to take a ratio over
    assert near_chance(0.55, 55, 2) and not near_chance(0.75, 75, 2)  # chance 1/2 + 0.1
    config = {"data": {"dataset": "mnist"}, "tracking": {"eval_size": 200}}
    assert run_near_chance(config, {"accuracy": 0.12}) is True
    assert run_near_chance(config, {"accuracy": 0.95}) is False
    assert run_near_chance(config, {}) is None  # nothing tracked: not known


def test_sweep_and_runs_flag_a_model_at_chance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    sweep = {"name": "chance", "base": "base.yaml", "grid": {"optimizer.lr": [1e-12, 0.1]}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    runs = str(tmp_path / "runs")
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--runs-dir", runs, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    accuracy = [row["metrics"]["accuracy"]["mean"] for row in summary]
    assert accuracy[0] <= 0.6 < 0.8 <= accuracy[1]  # lr 1e-12 never learns; lr 0.1 does
    assert [row["near_chance"] for row in summary] == [1, 0]
    assert main(["runs", "--runs-dir", runs]) == 0
    table = capsys.readouterr().out
    assert table.count("near chance accuracy") == 1

"""``robustcompress structure``: model names, checkpoints, JSON, CSV and errors."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
import torch

from robustcompress.cli import structure as structure_cli
from robustcompress.errors import ModelError
from robustcompress.models import create_model, weight_matrices
from robustcompress.structure import REPORT_COLUMNS, effective_rank


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    structure_cli.register(parser.add_subparsers())
    args = parser.parse_args(["structure", *argv])
    return args.func(args)


def test_json_report_of_a_model_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("fcnn", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and list(rows[0]) == list(REPORT_COLUMNS)
    assert rows[0]["shape"] == [20, 784]
    torch.manual_seed(0)
    expected = effective_rank(weight_matrices(create_model("fcnn"))[0].matrix)
    assert rows[0]["effective_rank"] == pytest.approx(expected, rel=1e-12)


def test_seed_controls_the_untrained_weights(capsys: pytest.CaptureFixture[str]) -> None:
    def ranks(*argv: str) -> list[float]:
        run("lenet300100", "--json", *argv)
        return [r["effective_rank"] for r in json.loads(capsys.readouterr().out)]

    assert ranks("--seed", "3") == ranks("--seed", "3")
    assert ranks("--seed", "3") != ranks("--seed", "4")


def test_model_name_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run("fcnn", "--json")
    assert torch.equal(torch.rand(3), expected)


def test_table_says_untrained_and_csv_is_written(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lenet5.csv"
    assert run("lenet5", "--csv", str(path), "--energy", "0.9") == 0
    out = capsys.readouterr()
    assert "UNTRAINED, random initialisation with seed 0" in out.out and "rank@0.9" in out.out
    assert str(path) in out.err
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(REPORT_COLUMNS) and len(lines) == 5


def test_unknown_target_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="neither a registered model"):
        run("no-such-model")


def test_a_trained_run_directory_is_loaded_from_its_checkpoint(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from robustcompress.experiments import run as run_experiment
    from robustcompress.training.checkpoint import load_model

    config = {
        "name": "tiny",
        "data": {"limit": 128},
        "model": {"kwargs": {"hidden": [8]}},
        "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.05},
        "tracking": {"eval_size": 16, "attacks": {}},
    }
    record = run_experiment(config, runs_dir=tmp_path, progress=False, echo=False)
    assert run(str(record.run_dir), "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    trained = weight_matrices(load_model(record.run_dir))
    assert [r["shape"] for r in rows] == [[8, 784], [10, 8]]
    assert rows[0]["effective_rank"] == pytest.approx(effective_rank(trained[0].matrix))
    assert run(str(record.run_dir)) == 0
    assert "Structure of checkpoint" in capsys.readouterr().out

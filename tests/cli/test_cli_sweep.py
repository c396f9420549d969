"""``robustcompress sweep``: a small sweep end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from robustcompress import cli


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    return cli.main(argv)


def test_sweep_runs_and_summarises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {
        "data": {"limit": 64},
        "model": {"kwargs": {"hidden": [8]}},
        "optimizer": {"epochs": 1, "batch_size": 32, "lr": 0.05},
        "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
    }
    sweep = {"name": "s", "base": base, "grid": {"seed": [0, 1]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    runs = tmp_path / "runs"
    assert _main(["sweep", str(path), "--runs-dir", str(runs)], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert "[2/2] s-seed=1: finished" in err
    assert "accuracy" in out and "fooling_ratio/fgsm" in out and " ± " in out
    assert _main(["sweep", str(path), "--runs-dir", str(runs), "--json"], monkeypatch) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["summary"]
    assert row["runs"] == 2 and row["metrics"]["accuracy"]["n"] == 2
    assert Path(result["summary_file"]) == runs / "sweeps" / "s" / "sweep_summary.json"

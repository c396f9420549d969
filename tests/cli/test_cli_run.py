"""``robustcompress run``: output, exit status and one-line config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress import cli

TINY: dict[str, Any] = {
    "data": {"limit": 128},
    "model": {"kwargs": {"hidden": [8]}},
    "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
}


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The real CLI entry point."""
    return cli.main(argv)


def _write(path: Path, **data: Any) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **data}, sort_keys=False))
    return path


def test_run_prints_json_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path / "tiny.yaml")
    status = _main(
        ["run", str(config), "--runs-dir", str(tmp_path / "runs"), "--json"], monkeypatch
    )
    assert status == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "finished" and record["name"] == "tiny"
    assert (record["epochs_done"], record["epochs"]) == (1, 1)
    assert 0 <= record["final"]["accuracy"] <= 1
    assert Path(record["run_dir"]).parent == tmp_path / "runs"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"regularisers": {"l1": {"lam": 0.1}}}, "unknown key 'regularisers'"),
        (
            {"regularizers": {"nuclear": {"lam": {"W1": -0.5}}}},
            "regularizers.nuclear.lam: λ for W1 must be ≥ 0 (got -0.5)",
        ),
        (
            {"regularizers": {"l1": {"lam": {"W7": 0.1}}}},
            "regularizers.l1: unknown weight matrix in l1 λ 'W7'",
        ),
        (
            {"training": {"init_from": "no-such-run"}},
            "training.init_from: no starting run 'no-such-run'",
        ),
        ({"optimizer": {"lr": -1}}, "optimizer.lr: must be > 0 (got -1)"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    data: dict[str, Any],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _write(tmp_path / "bad.yaml", **data)
    status = _main(["run", str(config), "--runs-dir", str(tmp_path / "runs")], monkeypatch)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {config}: ")
    assert expected in err
    assert not (tmp_path / "runs").exists()  # nothing was started

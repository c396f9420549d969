"""``robustcompress runs``: listing with status, progress and headline metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustcompress import cli
from robustcompress.cli.runs import headline_metrics


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    return cli.main(argv)


def _fake_run(root: Path, name: str, summary: dict | None) -> None:
    run_dir = root / name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: n\noptimizer: {epochs: 4}\n")
    (run_dir / "checkpoints" / "ckpt-00000010-e001.safetensors").write_bytes(b"")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_runs_lists_status_progress_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    final = {"accuracy": 0.91, "fooling_ratio/pgd": 0.4, "effective_rank/W1": 3.0}
    _fake_run(tmp_path, "a-1111111111", {"status": "finished", "final": final})
    _fake_run(tmp_path, "b-2222222222", None)
    assert _main(["runs", "--runs-dir", str(tmp_path), "--json"], monkeypatch) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"], r["epochs_done"], r["epochs"]) for r in rows] == [
        ("n", "finished", 4, 4),
        ("n", "incomplete", 1, 4),
    ]
    assert _main(["runs", "--runs-dir", str(tmp_path), "--status", "incomplete"], monkeypatch) == 0
    table = capsys.readouterr().out
    assert "b-2222222222" in table and "a-1111111111" not in table and "1/4" in table


def test_empty_runs_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(["runs", "--runs-dir", str(tmp_path / "none")], monkeypatch) == 0
    assert "no runs in" in capsys.readouterr().out


def test_headline_metrics_order() -> None:
    finals = [
        {"effective_rank/W1": 1, "fooling_ratio/pgd": 0.1, "accuracy": 0.9},
        {"fooling_ratio/fgsm": 0.2},
    ]
    assert headline_metrics(finals) == ["accuracy", "fooling_ratio/pgd", "fooling_ratio/fgsm"]

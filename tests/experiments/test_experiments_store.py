"""Run directories and their status (robustcompress.experiments.store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments.store import (
    find_runs_by_name,
    list_runs,
    read_record,
    run_lock,
    run_status,
    runs_root,
    split_run_dir_name,
)


def _make_run(root: Path, name: str, summary: dict | None = None, epochs_done: int = 0) -> Path:
    run_dir = root / name
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: x\noptimizer: {epochs: 3}\n")
    for e in range(1, epochs_done + 1):
        (run_dir / "checkpoints" / f"ckpt-{4 * e:08d}-e{e:03d}.safetensors").write_bytes(b"")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_status_progress_and_listing(tmp_path: Path) -> None:
    done = _make_run(tmp_path, "x-aaaa", {"status": "finished", "final": {"accuracy": 0.9}})
    failed = _make_run(tmp_path, "x-bbbb", {"status": "failed", "error": "boom"})
    killed = _make_run(tmp_path, "y-cccc", epochs_done=2)
    (killed / "metrics.jsonl").write_text(
        '{"step": 8, "epoch": 2, "metric": "accuracy", "value": 0.5}\n'
    )
    assert [run_status(d) for d in (done, failed, killed)] == ["finished", "failed", "incomplete"]
    with run_lock(killed):
        assert run_status(killed) == "running"
    assert run_status(killed) == "incomplete"
    records = list_runs(tmp_path)
    assert [r.run_dir.name for r in records] == ["x-aaaa", "x-bbbb", "y-cccc"]
    assert [r.progress() for r in records] == [(3, 3), (0, 3), (2, 3)]
    assert records[2].final == {"accuracy": 0.5}  # an unfinished run shows its latest metrics
    assert records[1].to_dict()["error"] == "boom"
    assert find_runs_by_name("x", tmp_path) == [done, failed]
    assert split_run_dir_name(done) == ("x", "aaaa")


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a run directory"):
        read_record(tmp_path)


def test_runs_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTCOMPRESS_RUNS", raising=False)
    assert runs_root() == Path("runs")
    monkeypatch.setenv("ROBUSTCOMPRESS_RUNS", str(tmp_path))
    assert runs_root() == tmp_path
    assert runs_root(tmp_path / "explicit") == tmp_path / "explicit"

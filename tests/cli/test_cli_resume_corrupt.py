"""``robustcompress resume`` of a killed run whose newest checkpoint is corrupt: it falls
back to the newest good checkpoint by itself and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustcompress import cli
from robustcompress.experiments import read_record, run
from robustcompress.training.checkpoint import list_checkpoints

CONFIG = {
    "name": "corrupt",
    "data": {"dataset": "synthetic-subspace", "limit": 128},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"epochs": 2, "batch_size": 32, "lr": 0.1},
    "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
}


def test_resume_falls_back_to_the_newest_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = run(CONFIG, runs_dir=tmp_path / "runs", progress=False, echo=False)
    run_dir = reference.run_dir
    # as if killed just after its last checkpoint, which a disk error then damaged
    (run_dir / "summary.json").unlink()
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    data = bytearray(newest.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
    newest.write_bytes(bytes(data))
    assert read_record(run_dir).status == "incomplete"

    assert cli.main(["resume", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert f"{newest.name} is corrupt: its SHA-256 is" in err
    assert "falling back to the newest good checkpoint, ckpt-00000004-e001.safetensors" in err
    record = read_record(run_dir)
    assert record.status == "finished" and record.summary["resumed_from_step"] == 4
    assert record.final == reference.final and record.metrics() == reference.metrics()

"""Run records that survive accidents: failures recorded with their reason, corrupt
checkpoints of finished runs reported or repaired, no lock left behind, and a runs
root that can be moved or copied whole (robustcompress.experiments.runner/store).

All runs train on the generated ``synthetic-subspace`` data set (no files on disk),
except the bad-data run, which reads MNIST-named files written by the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from generated_runs import run_quietly, write_config

from robustcompress import cli
from robustcompress.data.idx import write_idx
from robustcompress.errors import CheckpointError, DataError
from robustcompress.experiments import config_hash, parse_config, read_record, resume
from robustcompress.experiments.store import run_status
from robustcompress.training import Trainer, read_checkpoint
from robustcompress.training.checkpoint import list_checkpoints

_config = write_config
_run = run_quietly


def flip_bytes(path: Path, count: int = 4) -> None:
    """Invert the last ``count`` bytes (tensor data) of ``path``: it still loads."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - count, len(data)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _never_train(monkeypatch: pytest.MonkeyPatch) -> None:
    def fit(self: Trainer) -> None:
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr(Trainer, "fit", fit)


# ------------------------------------------------------------------ failures on bad data


def _mnist_files(root: Path, *, good: bool) -> None:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            if good:
                write_idx(path, array)
            else:
                path.write_bytes(b"these are not IDX bytes")


def test_a_run_failing_on_bad_data_is_listed_failed_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _mnist_files(data, good=False)
    monkeypatch.setenv("ROBUSTCOMPRESS_DATA", str(data))
    runs = tmp_path / "runs"
    config = _config(
        tmp_path, "mnist-run", data={"dataset": "mnist", "limit": 64}, optimizer={"epochs": 1}
    )
    with pytest.raises(DataError):
        _run(config, runs)
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["retryable"] is True
    assert "\n" not in summary["reason"] and "mnist" in summary["reason"]
    assert read_record(run_dir).status == "failed"

    assert cli.main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["status"], row["epochs_done"], row["epochs"]) == ("failed", 0, 1)
    assert row["reason"] == summary["reason"]
    assert cli.main(["runs", "--runs-dir", str(runs)]) == 0
    table = capsys.readouterr().out
    assert "failed" in table and "reason" in table and "incomplete" not in table

    # the data fixed, the same config runs again (a failure in training would not)
    _mnist_files(data, good=True)
    record = _run(config, runs)
    assert record.run_dir == run_dir and record.status == "finished"
    assert record.reason is None


# ------------------------------------------------------- corrupt checkpoints of finished runs


@pytest.fixture
def finished(tmp_path: Path) -> Any:
    return _run(_config(tmp_path, "natural"), tmp_path / "runs")


def test_resume_of_a_finished_run_with_every_checkpoint_corrupt_says_so(
    finished: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _never_train(monkeypatch)
    files = list_checkpoints(finished.run_dir / "checkpoints")
    assert len(files) == 2
    for path in files:
        flip_bytes(path)
    with pytest.raises(CheckpointError, match="every checkpoint of it is corrupt"):
        resume(finished.run_dir, progress=False, echo=False)
    assert cli.main(["resume", str(finished.run_dir)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: run {finished.run_dir} finished, but every checkpoint of it")
    assert "ckpt-00000008-e002.safetensors: its SHA-256 is" in err and "1 older" in err
    assert f"delete {finished.run_dir / 'summary.json'} and" in err
    assert f"`robustcompress resume {finished.run_dir}`" in err
    assert list_checkpoints(finished.run_dir / "checkpoints") == files  # nothing moved


def test_resume_of_a_finished_run_with_a_corrupt_final_checkpoint_trains_it_again(
    finished: Any, tmp_path: Path
) -> None:
    final = list_checkpoints(finished.run_dir / "checkpoints")[-1]
    weights = read_checkpoint(final).model_state()
    flip_bytes(final)
    record = resume(finished.run_dir, progress=False, echo=False)
    assert record.status == "finished" and record.summary["resumed_from_step"] == 4
    assert record.final == finished.final
    assert record.metrics() == finished.metrics()
    repaired = read_checkpoint(final).model_state()
    assert all(torch.equal(repaired[k], weights[k]) for k in weights)
    assert (final.parent / (final.name + ".corrupt")).is_file()


def test_no_lock_file_is_left_behind(finished: Any) -> None:
    assert not (finished.run_dir / "run.lock").exists()
    assert run_status(finished.run_dir) == "finished"


# --------------------------------------------------------- a runs root moved or copied whole


def test_a_runs_root_moved_elsewhere_is_found_resumed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustcompress.reporting import make_report

    configs = tmp_path / "configs"
    _config(configs, "natural")
    finetune = _config(
        configs,
        "finetune",
        training={"mode": "adversarial", "init_from": "natural.yaml"},
        optimizer={"lr": 0.01},
    )
    a = tmp_path / "A" / "runs"
    tuned = _run(finetune, a)
    start = read_record(tuned.config["training"]["init_from"])
    assert start.status == "finished" and start.run_dir.parent == a
    stored = yaml.safe_load((tuned.run_dir / "config.yaml").read_text())
    assert stored["training"]["init_from"] == start.run_dir.name  # relative to the root
    # the hash takes the starting run's hash, not its path: named by path or by run
    # directory, the fine-tuning config hashes to the same directory name
    parsed = parse_config(stored)
    assert config_hash(parsed, start.config_hash) == tuned.config_hash
    assert not list(a.glob("*/run.lock"))

    b = tmp_path / "elsewhere" / "B"
    shutil.move(str(a), str(b))
    assert not a.exists()
    moved = read_record(b / tuned.run_dir.name)
    assert moved.config["training"]["init_from"] == str(b / start.run_dir.name)

    # looked up: the configs (and the stored resolved config) find the runs in B
    _never_train(monkeypatch)
    assert _run(finetune, b).run_dir == b / tuned.run_dir.name
    assert _run(parsed, b).run_dir == b / tuned.run_dir.name
    monkeypatch.undo()

    # resumed: a copy of the fine-tuning run killed after its first epoch
    killed = b / tuned.run_dir.name
    (killed / "summary.json").unlink()
    for path in (killed / "checkpoints").glob("ckpt-00000008-e002.*"):
        path.unlink()
    assert read_record(killed).status == "incomplete"
    record = resume(killed, progress=False, echo=False)
    assert record.status == "finished" and record.summary["resumed_from_step"] == 4
    assert record.final == tuned.final

    # reported: the settings table names the starting run of the fine-tuned one
    report = make_report(b, out=tmp_path / "report" / "index.html")
    assert {r.run_dir.name for r in report.source.runs} == {
        start.run_dir.name,
        tuned.run_dir.name,
    }
    (child,) = [r for r in report.source.runs if r.run_dir.name == tuned.run_dir.name]
    assert child.start is not None and child.start.run_dir == b / start.run_dir.name


def test_an_older_absolute_init_from_still_resolves_after_a_move(tmp_path: Path) -> None:
    """Runs written before paths were stored relative hold the starting run's absolute
    path; once the root is moved, the run directory of that name in the root is used."""
    configs = tmp_path / "configs"
    _config(configs, "natural")
    finetune = _config(configs, "finetune", training={"init_from": "natural.yaml"})
    a = tmp_path / "A"
    tuned = _run(finetune, a)
    start_name = Path(tuned.config["training"]["init_from"]).name
    config_file = tuned.run_dir / "config.yaml"
    stored = yaml.safe_load(config_file.read_text())
    stored["training"]["init_from"] = str((a / start_name).resolve())  # the old form
    config_file.write_text(yaml.safe_dump(stored, sort_keys=False))
    b = tmp_path / "B"
    shutil.copytree(a, b)
    shutil.rmtree(a)
    record = read_record(b / tuned.run_dir.name)
    assert record.config["training"]["init_from"] == str(b / start_name)
    assert resume(record.run_dir, progress=False, echo=False).status == "finished"
    assert _run(parse_config(stored), b).run_dir == record.run_dir

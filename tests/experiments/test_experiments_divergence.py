"""Diverged training never looks robust: real runs that blow up stop as ``diverged``.

A run with a huge learning rate used to end "finished" with every fooling ratio 0 (tanh
saturation kept the loss finite at 1e7). Now the divergence monitor stops it before the
bad model is checkpointed, the CLI exits non-zero, and `runs`, sweeps and reports show
the status.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress.cli import main
from robustcompress.errors import ConfigError, DivergedError
from robustcompress.experiments import run
from robustcompress.experiments.config import config_hash, parse_config
from robustcompress.experiments.store import read_record
from robustcompress.training.checkpoint import list_checkpoints
from robustcompress.training.divergence import DivergenceMonitor

SYNTHETIC: dict[str, Any] = {
    "data": {"dataset": "synthetic-subspace", "limit": 200},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "tracking": {"eval_size": 100, "attacks": {"fgsm": {"eps": 0.05}}},
    "device": "cpu",
}


def _mnist_available() -> bool:
    from robustcompress.errors import DataError

    try:
        from robustcompress.data.locate import find_dataset

        find_dataset("mnist")
    except DataError:
        return False
    return True


@pytest.mark.skipif(not _mnist_available(), reason="needs MNIST (set ROBUSTCOMPRESS_DATA)")
def test_a_real_run_at_a_huge_learning_rate_stops_as_diverged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "name": "lr-huge",
        "data": {"dataset": "mnist", "limit": 1024},
        "model": {"name": "fcnn"},
        "optimizer": {"lr": 1.0e6, "epochs": 3, "batch_size": 128},
        "tracking": {"eval_size": 200, "attacks": {"fgsm": {"eps": 0.05}}},
        "checkpoint": {"every": 1},
    }
    path = tmp_path / "lr-huge.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    code = main(["run", str(path), "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2  # non-zero: nothing to evaluate
    assert "training loss exploded" in err and "lower optimizer.lr" in err
    (run_dir,) = runs.iterdir()
    record = read_record(run_dir)
    assert record.status == "diverged"
    # only the model from before the blow-up is checkpointed (step 1: loss still ~2.3)
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == [
        "ckpt-00000001.safetensors"
    ]
    # `runs` lists it as diverged, never with robustness numbers
    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "diverged"
    # running it again refuses instead of training the same blow-up
    with pytest.raises(DivergedError, match="diverged before"):
        run(parse_config(config), runs_dir=runs)


def test_accuracy_collapsing_to_chance_stops_a_fine_tuning_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    natural = run(
        parse_config(
            {
                **SYNTHETIC,
                "name": "nat",
                "optimizer": {"lr": 0.1, "momentum": 0.9, "epochs": 5, "batch_size": 20},
            }
        ),
        runs_dir=runs,
    )
    assert natural.status == "finished" and natural.final["accuracy"] >= 0.8
    # an ℓ1 penalty this strong drives every weight to zero: one class for every input
    collapse = parse_config(
        {
            **SYNTHETIC,
            "name": "ft",
            "training": {"init_from": str(natural.run_dir)},
            "optimizer": {"lr": 0.5, "epochs": 3, "batch_size": 20},
            "regularizers": {"l1": {"lam": 5.0}},
        }
    )
    with pytest.raises(DivergedError, match=r"accuracy collapsed at step \d+: 0\.\d+"):
        run(collapse, runs_dir=runs)
    (run_dir,) = [d for d in runs.iterdir() if d.name.startswith("ft-")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "chance" in summary["error"]


def test_switched_off_the_same_blow_up_finishes_and_the_hash_records_it() -> None:
    default = parse_config({"name": "a"})
    off = parse_config({"name": "a", "training": {"divergence": {"enabled": False}}})
    strict = parse_config({"name": "a", "training": {"divergence": {"loss_factor": 10}}})
    assert config_hash(default) == "dcafa14c0a"  # the hash of runs stored before the monitor
    assert len({config_hash(default), config_hash(off), config_hash(strict)}) == 3
    with pytest.raises(ConfigError, match=r"training.divergence.loss_factor: must be > 1"):
        parse_config({"name": "a", "training": {"divergence": {"loss_factor": 0.5}}})


class _Trainer:
    """What the monitor reads from a trainer."""

    def __init__(self, labels: Any) -> None:
        self.eval_labels = labels
        self.last_checkpoint = None


def test_monitor_rules_and_state_round_trip() -> None:
    import torch

    trainer: Any = _Trainer(torch.arange(100) % 10)
    monitor = DivergenceMonitor()
    monitor.on_train_start(trainer)
    assert monitor.chance == pytest.approx(0.1) and monitor.chance_loss == pytest.approx(
        math.log(10)
    )
    for step, loss in enumerate([2.3, 1.0, 0.5, 0.4], start=1):
        monitor.on_step_end(trainer, step, {"total": loss})
    # a loss that grows 100-fold but stays below ln K is not divergence
    small = DivergenceMonitor()
    small.on_train_start(trainer)
    small.on_step_end(trainer, 1, {"total": 0.001})
    small.on_step_end(trainer, 2, {"total": 2.0})
    # the state restores exactly: the same next loss decides the same way in both
    copy = DivergenceMonitor()
    copy.on_train_start(trainer)
    copy.load_state_dict(json.loads(json.dumps(monitor.state_dict())))
    assert copy.state_dict() == monitor.state_dict()
    for m in (monitor, copy):
        with pytest.raises(DivergedError, match="exploded at step 5"):
            m.on_step_end(trainer, 5, {"total": 1e6})
    # too few evaluation inputs to tell a collapse from noise: the accuracy rule is off
    few: Any = _Trainer(torch.tensor([0, 1] * 8))
    noisy = DivergenceMonitor()
    noisy.on_train_start(few)
    noisy.on_track(few, 10, {"accuracy": 1.0})
    noisy.on_track(few, 20, {"accuracy": 0.5})
    # accuracy: no collapse before having learned, then a collapse to chance
    acc = DivergenceMonitor()
    acc.on_train_start(trainer)
    acc.on_track(trainer, 0, {"accuracy": 0.12})  # never learned: not a collapse
    acc.on_track(trainer, 10, {"accuracy": 0.9})
    acc.on_track(trainer, 20, {"accuracy": 0.4})  # above 0.1 + 0.25·0.8 = 0.3
    with pytest.raises(DivergedError, match=r"collapsed at step 30: 0\.250"):
        acc.on_track(trainer, 30, {"accuracy": 0.25})

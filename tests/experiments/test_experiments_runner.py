"""End-to-end runs for every training mode (robustcompress.experiments.runner).

Each run: 256 MNIST images, one epoch of 4 steps, tracking on 64 test images with
FGSM and 2-step PGD; a few seconds on two cores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from robustcompress.errors import ConfigError, DivergedError
from robustcompress.experiments import RunRecord, read_record, resume, run
from robustcompress.models import weight_matrices
from robustcompress.training import Trainer, load_model, read_checkpoint

WriteConfig = Callable[..., Path]


def _run(path: Path, runs_dir: Path, **kw: Any) -> RunRecord:
    return run(path, runs_dir=runs_dir, progress=False, echo=False, **kw)


def _w1(record: RunRecord) -> torch.Tensor:
    return weight_matrices(load_model(record.run_dir))[0].matrix.detach()


def test_natural_run_directory_and_record(natural_run: RunRecord) -> None:
    record = natural_run
    assert record.status == "finished"
    assert record.run_dir.name == f"natural-{record.config_hash}"
    assert len(record.config_hash) == 10
    files = {p.name for p in record.run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoints", "summary.json", "log.txt"} <= files
    assert sorted(p.name for p in (record.run_dir / "checkpoints").iterdir()) == [
        "ckpt-00000004-e001.safetensors",
        "ckpt-00000004-e001.safetensors.sha256",
    ]
    assert "run.lock" not in files  # removed when the run stopped
    final = record.final
    expected = {"accuracy", "loss/ce", "fooling_ratio/fgsm", "fooling_ratio/pgd", "train/loss"}
    assert expected <= set(final)
    assert {f"effective_rank/W{i}" for i in (1, 2, 3)} <= set(final)
    # the stored config is the resolved one: every default filled in
    stored = yaml.safe_load((record.run_dir / "config.yaml").read_text())
    assert stored["optimizer"]["schedule"] == {
        "name": "none",
        "step_size": 1,
        "gamma": 0.1,
        "power": 0.75,
        "milestones": [],
    }
    assert stored == record.config
    # load_model gives the trained model: its accuracy on the evaluation subset is the final one
    from robustcompress.data import load_dataset

    evaluation = load_dataset("mnist", "test", limit=64, seed=0)
    model = load_model(record.run_dir)
    accuracy = (model(evaluation.images).argmax(1) == evaluation.labels).double().mean().item()
    assert accuracy == pytest.approx(final["accuracy"])
    timing = record.summary["timing"]
    assert set(timing["per_tracker_s"]) == {
        "clean",
        "fooling_ratio/fgsm",
        "fooling_ratio/pgd",
        "structure",
    }
    assert "tracking" in (record.run_dir / "log.txt").read_text()


def test_rerun_of_a_finished_config_is_a_noop(
    natural_run: RunRecord, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(self: Trainer) -> None:
        raise AssertionError("a finished run must not be retrained")

    monkeypatch.setattr(Trainer, "fit", never)
    checkpoint = natural_run.run_dir / "checkpoints" / "ckpt-00000004-e001.safetensors"
    before = (checkpoint.stat().st_mtime_ns, natural_run.metrics_path.stat().st_mtime_ns)
    again = _run(shared_dir / "natural.yaml", shared_dir / "runs")
    assert again.run_dir == natural_run.run_dir and again.final == natural_run.final
    assert (checkpoint.stat().st_mtime_ns, natural_run.metrics_path.stat().st_mtime_ns) == before
    assert resume(natural_run.run_dir).status == "finished"


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("fgsm", {"training": {"mode": "adversarial"}}),
        (
            "pgd",
            {
                "training": {
                    "mode": "adversarial",
                    "adversarial": {
                        "attack": "pgd",
                        "steps": 2,
                        "alpha": 0.03,
                        "random_start": True,
                    },
                }
            },
        ),
    ],
)
def test_adversarial_training(
    name: str,
    overrides: dict[str, Any],
    natural_run: RunRecord,
    write_config: WriteConfig,
    runs_dir: Path,
) -> None:
    record = _run(write_config(name, **overrides), runs_dir)
    assert record.status == "finished"
    assert record.config["training"]["mode"] == "adversarial"
    # same seed, data order and initialisation as the natural run: only the inputs differ
    assert not torch.equal(_w1(record), _w1(natural_run))
    assert record.final["loss/ce"] > 0


@pytest.mark.parametrize("proximal", [False, True])
def test_l1_and_nuclear_regularized(
    proximal: bool, write_config: WriteConfig, runs_dir: Path
) -> None:
    regularizers = {"l1": {"lam": {"W1": 0.05}}, "nuclear": {"lam": {"W2": 0.05}}}
    path = write_config(f"l1-nuclear-{proximal}", regularizers=regularizers, proximal=proximal)
    record = _run(path, runs_dir)
    final = record.final
    assert final["loss/l1"] > 0 and final["loss/nuclear"] > 0
    assert final["loss/total"] == pytest.approx(
        final["loss/ce"] + final["loss/l1"] + final["loss/nuclear"], rel=1e-5
    )
    zeros = int((_w1(record) == 0).sum())
    assert (zeros > 500) if proximal else (zeros == 0)


def test_joint_regularized(write_config: WriteConfig, runs_dir: Path) -> None:
    record = _run(write_config("joint", regularizers={"joint": {"lam": 0.01}}), runs_dir)
    assert record.status == "finished" and record.final["loss/joint"] > 0


def test_fine_tune_from_natural_runs_dependency_and_starts_from_its_weights(
    natural_run: RunRecord, shared_dir: Path, write_config_at: Callable[..., Path]
) -> None:
    path = write_config_at(
        shared_dir,
        "finetune",
        training={"mode": "adversarial", "init_from": "natural.yaml"},
        optimizer={"lr": 0.01},
    )
    record = _run(path, shared_dir / "runs")
    assert record.config["training"]["init_from"] == str(natural_run.run_dir.resolve())
    start = {
        r["metric"]: r["value"] for r in record.metrics() if r["step"] == 0 and "layer" not in r
    }
    assert start["accuracy"] == natural_run.final["accuracy"]
    assert start["loss/ce"] == pytest.approx(natural_run.final["loss/ce"])
    assert start["fooling_ratio/fgsm"] == pytest.approx(natural_run.final["fooling_ratio/fgsm"])
    # the same starting run named by run name hashes the same
    by_name = write_config_at(
        shared_dir / "by-name",
        "finetune",
        training={"mode": "adversarial", "init_from": "natural"},
        optimizer={"lr": 0.01},
    )
    assert _run(by_name, shared_dir / "runs").run_dir == record.run_dir


def test_missing_starting_run_is_one_line(write_config: WriteConfig, runs_dir: Path) -> None:
    path = write_config("orphan", training={"init_from": "never-trained"})
    with pytest.raises(ConfigError) as info:
        _run(path, runs_dir)
    message = str(info.value)
    assert message.startswith(f"{path}: training.init_from: no starting run 'never-trained'")
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"starting run config .* does not exist"):
        _run(write_config("orphan2", training={"init_from": "nothere.yaml"}), runs_dir)


def test_non_finite_loss_stops_the_run_as_diverged_and_keeps_last_good_checkpoint(
    write_config: WriteConfig, runs_dir: Path
) -> None:
    # the loss rule of the divergence monitor is off, so the non-finite guard decides
    path = write_config(
        "diverge",
        model={"kwargs": {"activation_name": "relu"}},
        optimizer={"lr": 1.0e6, "epochs": 3},
        checkpoint={"every": 1},
        tracking={"attacks": {}},
        training={"divergence": {"enabled": False}},
    )
    with pytest.raises(DivergedError, match=r"non-finite (loss|weights) .*step \d+"):
        _run(path, runs_dir)
    (run_dir,) = runs_dir.iterdir()
    record = read_record(run_dir)
    assert record.status == "diverged"
    summary = json.loads((run_dir / "summary.json").read_text())
    checkpoint = run_dir / summary["checkpoint"]
    assert checkpoint.is_file()
    assert all(torch.isfinite(v).all() for v in read_checkpoint(checkpoint).model_state().values())
    with pytest.raises(DivergedError, match="diverged before"):
        _run(path, runs_dir)


def test_runs_dir_from_environment(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROBUSTCOMPRESS_RUNS", os.fspath(tmp_path / "env-runs"))
    path = write_config(
        "env", optimizer={"epochs": 1}, data={"limit": 64}, tracking={"attacks": {}}
    )
    record = run(path, progress=False, echo=False)
    assert record.run_dir.parent == tmp_path / "env-runs"

"""Runs stored by an older library version stay findable and resumable.

``tests/fixtures/runs_v1`` holds run directories written by commit 61b22bc, before
the config hash left out fields added later (see its README.md): two finished runs
(one tracking the mutual-information bounds) and one killed after its first epoch.
Whatever the schema has gained since, their configs must hash to their directory
names, rerunning a finished config must return the stored run, and the killed run
must resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from robustcompress.experiments import config_hash, list_runs, parse_config, resume, run
from robustcompress.experiments.store import split_run_dir_name
from robustcompress.training.checkpoint import read_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs_v1"

STORED = {"tiny": "7b62e2f751", "tiny-mi": "d52dda33a5", "tiny-killed": "61bbf2fc58"}
"""Run name → hash given by the old code (the directory ``<name>-<hash>``)."""

FINISHED = ("tiny", "tiny-mi")
KILLED = "tiny-killed"

USER_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {
        "name": "tiny",
        "data": {"dataset": "mnist", "limit": 256},
        "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
        "optimizer": {"epochs": 2, "batch_size": 64, "lr": 0.05},
        "tracking": {"every": 0, "eval_size": 64, "attacks": {"fgsm": {"eps": 0.05}}},
        "device": "cpu",
    },
}
"""The config of ``tiny`` as its user wrote it (``make_runs_v1.py``): defaults left out."""


def _run_dir(root: Path, name: str) -> Path:
    return root / f"{name}-{STORED[name]}"


def _stored_config(run_dir: Path) -> dict[str, Any]:
    data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A copy of the fixture's runs (tests may write into it)."""
    root = tmp_path / "runs"
    root.mkdir()
    for name in STORED:
        shutil.copytree(_run_dir(FIXTURE, name), _run_dir(root, name))
    return root


def _mnist_available() -> bool:
    from robustcompress.data import dataset_status

    return bool(dataset_status("mnist").found)


needs_mnist = pytest.mark.skipif(
    not _mnist_available(),
    reason="MNIST not found: set ROBUSTCOMPRESS_DATA to a folder holding mnist/ "
    "(resuming the stored run trains on it)",
)


def test_the_fixture_holds_the_runs_its_readme_names() -> None:
    dirs = sorted(d.name for d in FIXTURE.iterdir() if d.is_dir())
    assert dirs == sorted(f"{name}-{digest}" for name, digest in STORED.items())
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size < 500_000


@pytest.mark.parametrize("name", list(STORED))
def test_stored_configs_hash_to_their_directory_names(name: str) -> None:
    run_dir = _run_dir(FIXTURE, name)
    config = parse_config(_stored_config(run_dir), run_dir / "config.yaml")
    assert config_hash(config) == split_run_dir_name(run_dir)[1] == STORED[name]


def test_the_user_config_hashes_like_its_stored_resolution() -> None:
    assert config_hash(parse_config(USER_CONFIGS["tiny"])) == STORED["tiny"]


def test_stored_statuses_are_read() -> None:
    status = {r.name: r.status for r in list_runs(FIXTURE)}
    assert status == {"tiny": "finished", "tiny-mi": "finished", "tiny-killed": "incomplete"}


@pytest.mark.parametrize("name", FINISHED)
def test_rerunning_a_finished_stored_config_returns_the_stored_run(runs: Path, name: str) -> None:
    run_dir = _run_dir(runs, name)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    # the resolved config as stored, and (for tiny) the short form its user wrote
    configs = [parse_config(_stored_config(run_dir))]
    if name in USER_CONFIGS:
        configs.append(parse_config(USER_CONFIGS[name]))
    for config in configs:
        record = run(config, runs_dir=runs, progress=False, echo=False)
        assert record.run_dir == run_dir
        assert record.status == "finished"
        assert record.summary == _stored_summary(name)
    assert sorted(d.name for d in runs.iterdir()) == sorted(_run_dir(runs, n).name for n in STORED)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before  # nothing retrained


def _stored_summary(name: str) -> dict[str, Any]:
    path = _run_dir(FIXTURE, name) / "summary.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", FINISHED)
def test_resuming_a_finished_stored_run_is_a_no_op(runs: Path, name: str) -> None:
    record = resume(_run_dir(runs, name), progress=False, echo=False)
    assert record.status == "finished" and record.summary == _stored_summary(name)


@needs_mnist
def test_the_killed_stored_run_resumes_to_the_end_like_an_uninterrupted_run(
    runs: Path, tmp_path: Path
) -> None:
    run_dir = _run_dir(runs, KILLED)
    record = resume(run_dir, progress=False, echo=False)
    assert record.run_dir == run_dir
    assert record.status == "finished"
    assert record.summary["resumed_from_step"] == 4  # the epoch-1 checkpoint of the old run
    assert record.summary["epochs"] == 3 and record.summary["steps"] == 12
    assert record.progress() == (3, 3)

    fresh = run(
        parse_config(_stored_config(run_dir)),
        runs_dir=tmp_path / "fresh",
        progress=False,
        echo=False,
    )
    assert fresh.run_dir.name == run_dir.name
    assert fresh.summary["resumed_from_step"] is None
    # resuming is exact: the old run's epoch-1 state continued by the new code ends
    # where the new code ends uninterrupted (a tolerance only for another CPU's rounding)
    assert fresh.final.keys() == record.final.keys()
    assert fresh.final == pytest.approx(record.final, rel=1e-6, abs=1e-9)
    resumed_state, fresh_state = read_checkpoint(run_dir), read_checkpoint(fresh.run_dir)
    assert resumed_state.step == fresh_state.step == 12
    torch.testing.assert_close(resumed_state.model_state(), fresh_state.model_state())

"""Sweeps: expansion, dependency order, execution, summaries (robustcompress.experiments.sweep)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress.errors import ConfigError
from robustcompress.experiments import SequentialExecutor, load_sweep, run_sweep
from robustcompress.experiments.sweep import _levels, set_path

WriteConfig = Callable[..., Path]


def _sweep_file(directory: Path, **data: Any) -> Path:
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _executor(runs_dir: Path) -> SequentialExecutor:
    return SequentialExecutor(runs_dir=runs_dir, progress=False, echo=False)


def test_set_path_merges_and_replaces() -> None:
    data: dict[str, Any] = {"a": {"b": 1, "c": {"d": 2}}}
    set_path(data, "a.c.e", 3, "here")
    set_path(data, "a.c", {"d": 5}, "here")  # a mapping merges into a mapping
    set_path(data, "x.y", [1], "here")  # missing levels are created
    assert data == {"a": {"b": 1, "c": {"d": 5, "e": 3}}, "x": {"y": [1]}}
    with pytest.raises(ConfigError, match=r"here: cannot set 'a\.b\.z': 'a\.b' is 1"):
        set_path(data, "a.b.z", 0, "here")


def test_expansion_names_overrides_and_variant_dependencies(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    write_config("base")
    path = _sweep_file(
        tmp_path,
        name="sw",
        base="base.yaml",
        variants={
            "natural": {},
            "ft": {"training.mode": "adversarial", "training": {"init_from": "natural"}},
        },
        grid={"regularizers.nuclear.lam.W1": [0.0, 0.01], "seed": [0, 1]},
    )
    sweep = load_sweep(path)
    names = [p.config.name for p in sweep.points]
    assert names[:4] == [
        "sw-natural-W1=0.0-seed=0",
        "sw-natural-W1=0.0-seed=1",
        "sw-natural-W1=0.01-seed=0",
        "sw-natural-W1=0.01-seed=1",
    ]
    ft = sweep.points[6]
    assert ft.config.name == "sw-ft-W1=0.01-seed=0"
    assert ft.config.training.mode == "adversarial" and ft.config.seed == 0
    assert ft.config.regularizers["nuclear"].lam == {"W1": 0.01}
    assert ft.config.training.init_from == "sw-natural-W1=0.01-seed=0"
    assert set(sweep.dependencies) == set(names[:4])
    levels = _levels(sweep)
    assert [[p.variant for p in level] for level in levels] == [["natural"] * 4, ["ft"] * 4]


def test_invalid_sweep_files(write_config: WriteConfig, tmp_path: Path) -> None:
    write_config("base")
    with pytest.raises(ConfigError, match="unknown key 'grids'"):
        load_sweep(_sweep_file(tmp_path, name="s", base="base.yaml", grids={}))
    with pytest.raises(ConfigError, match=r"grid\.seed: give at least one value"):
        load_sweep(_sweep_file(tmp_path, name="s", base="base.yaml", grid={"seed": []}))
    with pytest.raises(ConfigError, match=r"\[s-lr=-1\]: optimizer\.lr: must be > 0"):
        load_sweep(_sweep_file(tmp_path, name="s", base="base.yaml", grid={"optimizer.lr": [-1]}))


def test_sweep_of_two_lambdas_and_two_seeds(
    write_config: WriteConfig, tmp_path: Path, runs_dir: Path
) -> None:
    write_config("base", tracking={"attacks": {"fgsm": {"eps": 0.05}}})
    path = _sweep_file(
        tmp_path,
        name="lam",
        base="base.yaml",
        grid={"regularizers.nuclear.lam.W1": [0.0, 0.05], "seed": [0, 1]},
    )
    result = run_sweep(load_sweep(path), _executor(runs_dir), runs_dir=runs_dir)
    assert not result.errors
    run_dirs = sorted(p.name for p in runs_dir.iterdir() if p.name != "sweeps")
    assert len(run_dirs) == 4 and all(r is not None for r in result.records)
    assert [row["params"] for row in result.summary] == [
        {"regularizers.nuclear.lam.W1": 0.0},
        {"regularizers.nuclear.lam.W1": 0.05},
    ]
    for row, pair in zip(result.summary, (result.records[:2], result.records[2:]), strict=True):
        assert row["runs"] == 2 and row["seeds"] == [0, 1]
        values = [r.final["accuracy"] for r in pair if r is not None]
        stats = row["metrics"]["accuracy"]
        assert stats["mean"] == pytest.approx(statistics.mean(values))
        assert stats["std"] == pytest.approx(statistics.stdev(values))
        assert stats["n"] == 2
    written = json.loads(result.path.read_text())
    assert result.path == runs_dir / "sweeps" / "lam" / "sweep_summary.json"
    assert written["summary"] == json.loads(json.dumps(result.summary))
    assert [r["status"] for r in written["runs"]] == ["finished"] * 4


def test_a_failing_run_does_not_stop_the_sweep(
    write_config: WriteConfig, tmp_path: Path, runs_dir: Path
) -> None:
    write_config(
        "base",
        model={"kwargs": {"activation_name": "relu"}},
        optimizer={"epochs": 2},
        tracking={"attacks": {}},
    )
    path = _sweep_file(tmp_path, name="lr", base="base.yaml", grid={"optimizer.lr": [1e6, 0.05]})
    done: list[str] = []
    result = run_sweep(
        load_sweep(path),
        _executor(runs_dir),
        runs_dir=runs_dir,
        on_done=lambda p, r, e: done.append(p.config.name),
    )
    assert done == ["lr-lr=1000000.0", "lr-lr=0.05"]
    assert list(result.errors) == ["lr-lr=1000000.0"]
    assert "training loss exploded" in result.errors["lr-lr=1000000.0"]
    assert [row["runs"] for row in result.summary] == [0, 1]
    # the diverged run is counted as left out, never averaged in
    assert [row["excluded"] for row in result.summary] == [{"diverged": 1}, {}]
    stored = json.loads(result.path.read_text())
    assert [r["status"] for r in stored["runs"]] == ["diverged", "finished"]


def test_variant_starting_from_another_variant_runs_after_it(
    write_config: WriteConfig, tmp_path: Path, runs_dir: Path
) -> None:
    write_config("base", tracking={"attacks": {}})
    path = _sweep_file(
        tmp_path,
        name="ft",
        base="base.yaml",
        variants={"natural": {}, "tuned": {"training": {"init_from": "natural"}}},
    )
    result = run_sweep(load_sweep(path), _executor(runs_dir), runs_dir=runs_dir)
    natural, tuned = result.records
    assert natural is not None and tuned is not None
    assert tuned.config["training"]["init_from"] == str(natural.run_dir.resolve())
    start = {r["metric"]: r["value"] for r in tuned.metrics() if r["step"] == 0}
    assert start["accuracy"] == natural.final["accuracy"]

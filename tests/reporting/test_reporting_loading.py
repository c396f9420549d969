"""Finding and labelling runs: directory kinds, manifests, sweeps, metric series."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robustcompress.errors import ConfigError
from robustcompress.reporting.loading import (
    directory_kind,
    layers_of,
    load_source,
    metric_series,
)

FakeRun = Callable[..., Path]


def test_metric_series_sorts_dedupes_and_scales_to_epochs() -> None:
    rows = [
        {"step": 5, "epoch": 1, "metric": "accuracy", "value": 0.5},
        {"step": 0, "epoch": 0, "metric": "accuracy", "value": 0.1},
        {"step": 5, "epoch": 1, "metric": "accuracy", "value": 0.6},  # re-tracked: last wins
        {"step": 10, "epoch": 2, "metric": "accuracy", "value": None},
        {"step": 5, "epoch": 1, "metric": "effective_rank", "layer": "W1", "value": 3.0},
    ]
    x, y = metric_series(rows, "accuracy", steps_per_epoch=5)
    np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])
    assert y[0] == 0.1 and y[1] == 0.6 and math.isnan(y[2])
    x, y = metric_series(rows, "effective_rank", "W1")
    assert x.tolist() == [5.0] and y.tolist() == [3.0]
    assert metric_series(rows, "effective_rank")[0].size == 0  # no layer-less rows


def test_layers_of_keeps_first_seen_order() -> None:
    rows = [
        {"step": 0, "metric": "m", "layer": "W2", "value": 1},
        {"step": 0, "metric": "m", "layer": "W1", "value": 1},
        {"step": 1, "metric": "m", "layer": "W2", "value": 1},
        {"step": 0, "metric": "other", "layer": "W9", "value": 1},
    ]
    assert layers_of(rows, "m") == ["W2", "W1"]


def test_directory_kinds(tmp_path: Path, fake_run: FakeRun) -> None:
    run = fake_run(tmp_path / "runs", "a-1", {"name": "a", "model": {"name": "fcnn"}})
    assert directory_kind(run) == "run"
    assert directory_kind(tmp_path / "runs") == "runs"
    (tmp_path / "repro").mkdir()
    (tmp_path / "repro" / "manifest.json").write_text("{}")
    assert directory_kind(tmp_path / "repro") == "reproduction"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a run, sweep, runs-root or reproduction"):
        directory_kind(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no such directory"):
        load_source(tmp_path / "nowhere")


def test_runs_root_methods_groups_and_seeds(tmp_path: Path, fake_run: FakeRun) -> None:
    base = {"model": {"name": "fcnn"}, "data": {"dataset": "mnist"}}
    fake_run(tmp_path, "x-seed=1-aaa", {**base, "name": "x-seed=1", "seed": 1}, {"accuracy": 0.5})
    fake_run(
        tmp_path,
        "adv-s2-bbb",
        {**base, "name": "adv-s2", "seed": 2, "training": {"mode": "adversarial"}},
        {"accuracy": 0.4},
    )
    fake_run(
        tmp_path,
        "reg-ccc",
        {**base, "name": "reg", "regularizers": {"nuclear": {"lam": {"W1": 0.01}}}},
    )
    fake_run(
        tmp_path,
        "zero-ddd",
        {**base, "name": "zero", "regularizers": {"l1": {"lam": 0.0}}},
    )
    source = load_source(tmp_path)
    assert source.kind == "runs"
    by_method = {r.method: r for r in source.runs}
    assert set(by_method) == {"x", "adv", "reg", "zero"}
    assert by_method["x"].seed == 1 and by_method["adv"].seed == 2
    assert by_method["adv"].group == "adversarial"
    assert by_method["reg"].group == "regularized"
    assert by_method["zero"].group == "natural"  # λ = 0 regularizes nothing
    assert by_method["reg"].status == "incomplete"
    assert [r.method for r in source.finished] == ["adv", "x"]
    assert source.final_values("fcnn", "x", "accuracy") == {1: 0.5}


def write_manifest(directory: Path, runs: list[dict[str, Any]], **extra: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"recipe": "langenberg2019", "profile": "quick", "seeds": [0], "runs": runs}
    manifest.update(extra)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_manifest_relative_paths_labels_and_missing_runs(tmp_path: Path, fake_run: FakeRun) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, "fcnn-natural-s0-abc", {"name": "n", "model": {"name": "fcnn"}}, {"accuracy": 1})
    repro = write_manifest(
        runs / "reproductions" / "langenberg2019-quick",
        [
            {
                "run_dir": "../../fcnn-natural-s0-abc",
                "model": "fcnn",
                "dataset": "mnist",
                "method": "natural",
                "label": "Natural train.",
                "group": "natural",
                "seed": 0,
            },
            {"run_dir": "../../gone", "model": "fcnn", "method": "pgd", "seed": 0},
        ],
        wall_time_s=61.5,
        choices=["a choice"],
        masking=[{"model": "fcnn", "method": "natural", "seed": 0, "flags": []}],
    )
    source = load_source(repro)
    assert source.kind == "reproduction"
    assert source.title == "langenberg2019 reproduction (profile quick)"
    assert [(r.method, r.label, r.seed, r.dataset) for r in source.runs] == [
        ("natural", "Natural train.", 0, "mnist")
    ]
    assert source.runs[0].run_dir == (runs / "fcnn-natural-s0-abc").resolve()
    assert [m["method"] for m in source.missing] == ["pgd"]
    assert source.wall_time_s == 61.5 and source.choices == ["a choice"]
    assert len(source.masking) == 1


def test_manifest_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"manifest\.json: invalid JSON at line 1"):
        load_source(bad)
    write_manifest(tmp_path / "nokey", [{"run_dir": "x", "model": "fcnn", "seed": 0}])
    with pytest.raises(ConfigError, match=r"runs\[0\]: missing key 'method'"):
        load_source(tmp_path / "nokey")
    (tmp_path / "norun").mkdir()
    (tmp_path / "norun" / "manifest.json").write_text(json.dumps({"recipe": "x"}))
    with pytest.raises(ConfigError, match="'runs' list"):
        load_source(tmp_path / "norun")


def test_sweep_directory_uses_variants_and_seed_param(tmp_path: Path, fake_run: FakeRun) -> None:
    base = {"model": {"name": "fcnn"}}
    a = fake_run(tmp_path, "s-nat-seed=0-1", {**base, "name": "s-nat-seed=0", "seed": 0}, {})
    b = fake_run(tmp_path, "s-nat-seed=1-2", {**base, "name": "s-nat-seed=1", "seed": 1}, {})
    sweep_dir = tmp_path / "sweeps" / "s"
    sweep_dir.mkdir(parents=True)
    summary = {
        "sweep": "s",
        "runs": [
            {"variant": "nat", "params": {"W1": 0.01, "seed": 0}, "run_dir": str(a)},
            {"variant": "nat", "params": {"W1": 0.01, "seed": 1}, "run_dir": str(b)},
            {"variant": "nat", "params": {"seed": 2}, "run_dir": None, "error": "boom"},
        ],
    }
    (sweep_dir / "sweep_summary.json").write_text(json.dumps(summary))
    source = load_source(sweep_dir)
    assert source.kind == "sweep" and source.title == "Sweep s"
    assert [(r.method, r.seed) for r in source.runs] == [("nat W1=0.01", 0), ("nat W1=0.01", 1)]
    assert source.missing[0]["reason"] == "boom"


def test_fine_tuned_runs_continue_the_axis_of_their_start(
    tmp_path: Path, fake_run: FakeRun
) -> None:
    rows = [{"step": s, "epoch": s // 5, "metric": "accuracy", "value": 0.1} for s in (0, 5, 10)]
    base = {"model": {"name": "fcnn"}}
    natural = fake_run(tmp_path, "nat-1", {**base, "name": "nat"}, {}, rows)
    child = {**base, "name": "adv", "training": {"init_from": str(natural)}}
    adv = fake_run(tmp_path, "adv-2", child, {}, rows)
    grandchild = {**base, "name": "again", "training": {"init_from": str(adv)}}
    fake_run(tmp_path, "again-3", grandchild, {}, rows)
    runs = {r.method: r for r in load_source(tmp_path).runs}
    assert runs["nat"].start is None and runs["adv"].start is runs["nat"]
    # 10 steps over 2 epochs each: natural covers epochs 0-2, then adv 2-4, then again 4-6
    assert runs["nat"].series("accuracy")[0].tolist() == [0.0, 1.0, 2.0]
    assert runs["adv"].series("accuracy")[0].tolist() == [2.0, 3.0, 4.0]
    assert runs["again"].offset == 4.0

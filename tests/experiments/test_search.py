"""``robustcompress search``: the space file, the Pareto front, resuming a killed search."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress import cli
from robustcompress.errors import ConfigError
from robustcompress.experiments import SequentialExecutor
from robustcompress.experiments.search import (
    load_space,
    objective_values,
    pareto_front,
    parse_space,
    require_optuna,
    run_search,
    search_dir,
)
from robustcompress.experiments.store import RunRecord


@pytest.fixture
def optuna() -> Any:
    """Optuna (the extra ``robustcompress[search]``); tests of the driver skip without it."""
    return pytest.importorskip("optuna")


RUN: dict[str, Any] = {
    "data": {"dataset": "mnist", "limit": 512},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
    "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.01, "momentum": 0.9},
    "tracking": {"eval_size": 100, "attacks": {"fgsm": {"eps": 0.05}}},
}
"""512 MNIST images, 8 steps of batch 64, 100 evaluation images, FGSM only."""

START = {**RUN, "optimizer": {"epochs": 2, "batch_size": 64, "lr": 0.05, "momentum": 0.9}}


def space_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "start": START,
        "base": RUN,
        "parameters": {
            "l1.W1": {"low": 1e-4, "high": 0.1},
            "nuclear.W1": {"low": 1e-4, "high": 0.1},
            "pruning": {"low": 0.0, "high": 0.8},
            "adversarial": ["off", "fgsm"],
        },
        "objectives": {"accuracy": "maximize", "fooling_ratio/fgsm": "minimize"},
        "reference": {"paper-l1": {"l1.W1": 0.01}},
        "n_trials": 2,
        "seed": 0,
    }
    data.update(overrides)
    return data


# ------------------------------------------------------------------ the space file


def test_space_parses_parameters_objectives_and_trial_configs() -> None:
    space = parse_space(space_data(), "space.yaml")
    assert [p.name for p in space.parameters] == ["l1.W1", "nuclear.W1", "pruning", "adversarial"]
    assert [(o.metric, o.direction) for o in space.objectives] == [
        ("accuracy", "maximize"),
        ("fooling_ratio/fgsm", "minimize"),
    ]
    config = space.trial_config(
        {"l1.W1": 0.01, "nuclear.W1": 0.0, "pruning": 0.5, "adversarial": "fgsm"}, "t"
    )
    assert config.regularizers["l1"].lam == {"W1": 0.01}
    assert "nuclear" not in config.regularizers  # off
    assert config.training.init_from == "tiny-start"
    assert config.training.mode == "adversarial" and config.training.adversarial is not None
    assert config.training.adversarial.attack == "fgsm"
    (extra,) = config.extras
    assert extra.name == "magnitude_pruning" and extra.settings()["sparsity"] == 0.5
    dense = space.trial_config({"l1.W1": 0.0, "pruning": 0.0, "adversarial": "off"}, "t")
    assert dense.extras == [] and dense.training.mode == "natural" and not dense.regularizers


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"parameters": {"l1.W1": {"low": 0.0, "high": 0.1}}}, "log-uniform range needs low > 0"),
        ({"parameters": {"l1.W1": {"low": 0.1, "high": 0.01}}}, "need low ≤ high"),
        ({"parameters": {"l1": {"low": 0.01, "high": 0.1}}}, "name the weight matrix: l1.W1"),
        ({"parameters": {"l1.W9": {"low": 0.01, "high": 0.1}}}, "W9"),
        ({"parameters": {"dropout": {"low": 0.1, "high": 0.5}}}, "unknown parameter"),
        ({"parameters": {"pruning": {"low": 0.0, "high": 1.0}}}, "sparsity must be in [0, 1)"),
        ({"parameters": {"adversarial": ["off", "cw"]}}, "unknown attack label(s) cw"),
        ({"parameters": {}}, "give at least one parameter"),
        ({"objectives": {"accuracy": "maximize"}}, "give 2 or 3"),
        ({"objectives": {"accuracy": "up", "fooling_ratio/fgsm": "min"}}, "maximize or minimize"),
        (
            {"objectives": {"accuracy": "max", "fooling_ratio/pgd": "min"}},
            "objectives.fooling_ratio/pgd: not a metric the trials record",
        ),
        ({"sampler": "cmaes"}, "sampler: must be one of"),
        ({"n_trails": 3}, "unknown key 'n_trails' (did you mean 'n_trials'?"),
        ({"reference": {"bad": {"l1.W1": -1.0}}}, "must be ≥ 0"),
    ],
)
def test_space_errors_are_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_space(space_data(**overrides), "space.yaml")
    text = str(error.value)
    assert message in text, text
    assert "\n" not in text and text.startswith("space.yaml")


def test_joint_on_a_cnn_is_refused(tmp_path: Path) -> None:
    cnn = {"model": {"name": "cnn"}, "data": {"limit": 64}}
    data = space_data(start=None, base=cnn, parameters={"joint": {"low": 1e-5, "high": 1e-3}})
    with pytest.raises(ConfigError, match=r"regularizers\.joint"):
        parse_space(data, "space.yaml")


def test_space_file_with_base_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(RUN))
    path = tmp_path / "my-space.yaml"
    data = space_data(base="base.yaml")
    del data["name"]
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    assert space.name == "my-space" and space.base["data"]["limit"] == 512


# ------------------------------------------------------------------ pareto front


def test_pareto_front_of_a_hand_made_set() -> None:
    # maximise accuracy, minimise fooling ratio
    points = [
        [0.90, 0.50],  # 0: front (most accurate)
        [0.85, 0.30],  # 1: front
        [0.80, 0.30],  # 2: dominated by 1
        [0.70, 0.10],  # 3: front
        [0.70, 0.20],  # 4: dominated by 3
        [0.60, 0.10],  # 5: dominated by 3
        [0.85, 0.30],  # 6: equal to 1: on the front too
    ]
    assert pareto_front(points, ["maximize", "minimize"]) == [0, 1, 3, 6]
    assert pareto_front(points, ["minimize", "maximize"]) == [0, 2, 4, 5]
    three = [[1, 1, 1], [0, 0, 2], [1, 1, 0], [0, 2, 0]]
    assert pareto_front(three, ["maximize"] * 3) == [0, 1, 3]
    assert pareto_front([], ["maximize", "minimize"]) == []


def test_near_chance_and_missing_metrics_fail() -> None:
    space = parse_space(space_data(), "space.yaml")
    config = {"tracking": {"eval_size": 100}, "data": {"dataset": "mnist"}}

    def record(final: dict[str, Any]) -> RunRecord:
        return RunRecord("r", "h", Path("r-h"), "finished", config, {"final": final})

    values, status, reason = objective_values(
        record({"accuracy": 0.15, "fooling_ratio/fgsm": 0.0}), space.objectives
    )
    assert values is None and status == "near_chance" and "chance" in str(reason)
    values, status, _ = objective_values(record({"accuracy": 0.8}), space.objectives)
    assert values is None and status == "failed"
    values, status, _ = objective_values(
        record({"accuracy": 0.8, "fooling_ratio/fgsm": 0.25}), space.objectives
    )
    assert values == [0.8, 0.25] and status == "finished"


# ------------------------------------------------------------- search and resume


def _trials(directory: Path) -> list[dict[str, Any]]:
    return json.loads((directory / "search.json").read_text())["trials"]


def _trial_run_dirs(runs: Path) -> set[str]:
    return {d.name for d in runs.iterdir() if d.name.startswith("tiny-") and "start" not in d.name}


def test_killed_search_resumes_without_repeating_trials(tmp_path: Path, optuna: Any) -> None:
    runs = tmp_path / "runs"
    space = parse_space(space_data(), "space.yaml")
    with SequentialExecutor(runs_dir=runs, progress=False, echo=False, threads=1) as executor:
        first = run_search(space, executor, runs_dir=runs, n_trials=2)
    directory = search_dir("tiny", runs)
    assert first.directory == directory and first.told == 2
    assert (directory / "study.db").is_file()
    before = {t["number"]: t for t in _trials(directory)}
    assert sorted(before) == [0, 1] and all(t["state"] != "RUNNING" for t in before.values())
    trial_dirs = {
        d.name for d in runs.iterdir() if d.name.startswith("tiny-") and "start" not in d.name
    }
    stamps = {d: (runs / d / "summary.json").stat().st_mtime_ns for d in trial_dirs}

    # a trial asked but never told: the driver was killed while it ran
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{directory / 'study.db'}")
    orphan = study.ask()
    orphan_values = space.sample(orphan)
    assert orphan.number == 2
    unsampled = study.ask()  # stopped between ask and sampling: sampled on resume
    assert unsampled.number == 3

    with SequentialExecutor(runs_dir=runs, progress=False, echo=False, threads=1) as executor:
        second = run_search(space, executor, runs_dir=runs, n_trials=4)
    after = {t["number"]: t for t in _trials(directory)}
    assert sorted(after) == [0, 1, 2, 3]  # the orphans kept their numbers; no new trial
    assert second.told == 2
    assert after[3]["state"] in ("COMPLETE", "FAIL") and after[3]["run_dir"]
    assert all(t["state"] in ("COMPLETE", "FAIL") for t in after.values())
    assert after[2]["values"] == orphan_values
    for number in (0, 1):  # finished trials untouched, their runs not retrained
        assert after[number]["objectives"] == before[number]["objectives"]
        assert after[number]["run_dir"] == before[number]["run_dir"]
    for d, stamp in stamps.items():
        assert (runs / d / "summary.json").stat().st_mtime_ns == stamp
    now = _trial_run_dirs(runs)
    # one run directory per distinct config: the two trials, the two orphans, the reference
    used = {Path(t["run_dir"]).name for t in after.values() if t["run_dir"]}
    summary = json.loads((directory / "search.json").read_text())
    used.add(Path(summary["references"]["paper-l1"]["run_dir"]).name)
    assert now == used and len(now) <= 5
    assert len(summary["sessions"]) == 2

    # the same budget again: nothing left to do
    with SequentialExecutor(runs_dir=runs, progress=False, echo=False, threads=1) as executor:
        third = run_search(space, executor, runs_dir=runs, n_trials=4)
    assert third.told == 0 and len(_trials(directory)) == 4

    # the report: front, tables, figure
    from robustcompress.reporting.search import make_search_report

    report = make_search_report(directory)
    assert report.html_path == directory / "report.html" and report.html_path.is_file()
    data = json.loads((directory / "report.json").read_text())
    assert data["kind"] == "search" and data["front"]
    assert {p["label"] for p in data["references"]} >= {"start (natural)", "paper-l1"}
    assert (directory / "figures" / "search-front.png").is_file()
    html = report.html_path.read_text()
    assert 'id="search-front"' in html and 'id="search-trials"' in html

    # a changed space is refused
    changed = parse_space(
        space_data(objectives={"accuracy": "maximize", "effective_rank/W1": "minimize"}),
        "space.yaml",
    )
    with (
        SequentialExecutor(runs_dir=runs, progress=False, echo=False) as executor,
        pytest.raises(ConfigError, match="the space changed"),
    ):
        run_search(changed, executor, runs_dir=runs)


def test_search_cli_and_report_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], optuna: Any
) -> None:
    path = tmp_path / "space.yaml"
    data = space_data(reference={}, start=None, parameters={"l1.W1": {"low": 1e-3, "high": 0.1}})
    data["base"] = {**START, "optimizer": {**START["optimizer"]}}
    path.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    argv = ["search", str(path), "--runs-dir", str(runs), "--threads", "1", "--json"]
    assert cli.main([*argv, "--held-out", "0"]) == 2
    assert "--held-out must be ≥ 1" in capsys.readouterr().err
    assert cli.main([*argv, "--held-out", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "search" and sum(out["trial_states"].values()) == 2
    assert "search-held-out" in {t["key"] for t in out["tables"]}
    directory = runs / "searches" / "tiny"
    markdown = tmp_path / "front.md"
    assert cli.main(["report", str(directory), "--markdown", str(markdown)]) == 0
    assert "Pareto front of tiny" in capsys.readouterr().out
    assert "**Pareto front of tiny" in markdown.read_text()
    # --paper-grid: any directory of runs (here the runs root itself), means per method
    assert cli.main(["report", str(directory), "--paper-grid", str(runs), "--json"]) == 0
    grid = json.loads(capsys.readouterr().out)["paper_grid"]
    assert grid and all(p["kind"] == "paper" for p in grid)
    assert cli.main(["report", str(runs), "--paper-grid", str(runs)]) == 2
    assert "--paper-grid is for a search directory" in capsys.readouterr().err


def test_missing_optuna_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'robustcompress\[search\]'"):
        require_optuna()
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space_data()))
    assert cli.main(["search", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: robustcompress search needs Optuna: pip install")


def test_trials_run_in_flight_together_on_a_process_pool(tmp_path: Path, optuna: Any) -> None:
    from robustcompress.experiments import LocalProcessExecutor

    runs = tmp_path / "runs"
    space = parse_space(space_data(reference={}), "space.yaml")
    with LocalProcessExecutor(2, runs_dir=runs, threads=1) as executor:
        result = run_search(space, executor, workers=2, runs_dir=runs, n_trials=3)
    assert result.told == 3
    study = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{result.directory / 'study.db'}"
    )
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 3 and all(t.state.name in ("COMPLETE", "FAIL") for t in trials)
    # ask/tell: the second trial was asked before the first one was told
    assert trials[1].datetime_start < trials[0].datetime_complete


def test_held_out_indices_leave_out_the_tracked_images() -> None:
    import torch

    from robustcompress.data.sampling import subsample_indices
    from robustcompress.experiments.held_out import held_out_indices

    labels = torch.arange(100) % 10
    tracked = subsample_indices(labels, 30, 0)
    kept = held_out_indices(labels, tracked, 50, 1)
    assert len(kept) == 50 and not set(kept.tolist()) & set(tracked.tolist())
    assert kept.tolist() == sorted(kept.tolist())
    assert torch.bincount(labels[kept], minlength=10).tolist() == [5] * 10  # stratified
    assert torch.equal(held_out_indices(labels, tracked, 50, 1), kept)  # seeded
    assert not torch.equal(held_out_indices(labels, tracked, 50, 2), kept)
    assert len(held_out_indices(labels, None, 100, 1)) == 100
    with pytest.raises(ConfigError, match="70 images outside the tracked ones"):
        held_out_indices(labels, tracked, 71, 1)


def test_held_out_check_repeats_the_trackers_and_measures_other_images(
    tmp_path: Path, optuna: Any
) -> None:
    from robustcompress.data import load_dataset
    from robustcompress.experiments.config import TrackingConfig
    from robustcompress.experiments.held_out import HELD_OUT_FILE, evaluate_held_out
    from robustcompress.experiments.held_out import measure_images as measure
    from robustcompress.experiments.store import read_record
    from robustcompress.reporting.search import make_search_report
    from robustcompress.training import load_model

    runs = tmp_path / "runs"
    space = parse_space(space_data(), "space.yaml")
    with SequentialExecutor(runs_dir=runs, progress=False, echo=False, threads=1) as executor:
        result = run_search(space, executor, runs_dir=runs, n_trials=2)
        # on the tracked images, the stored model gives exactly the tracked final values
        for trial in _trials(result.directory):
            record = read_record(trial["run_dir"])
            tracking = TrackingConfig.model_validate(record.config["tracking"])
            tracked = load_dataset("mnist", "test", limit=100, seed=0)
            model = load_model(trial["run_dir"])
            for batch in (500, 7):  # one batch as the tracker, and counts added over batches
                again = measure(
                    model,
                    tracked.images,
                    tracked.labels,
                    tracking.attack_entries(),
                    batch_size=batch,
                )
                assert again["accuracy"] == record.final["accuracy"]
                assert again["fooling_ratio/fgsm"] == record.final["fooling_ratio/fgsm"]
        held = evaluate_held_out(result.directory, 300, executor)
    points = {p["label"]: p for p in held["points"]}
    assert {"start (natural)", "paper-l1"} <= set(points)
    assert any(p["kind"] == "trial" for p in points.values())
    summary = json.loads((result.directory / "search.json").read_text())
    selected = {f"#{t['number']}": t["objectives"] for t in summary["trials"]}
    selected["paper-l1"] = summary["references"]["paper-l1"]["objectives"]
    for label, p in points.items():
        assert p["n"] == 300 and p["held_out"][0] == p["n_correct"] / 300
        assert 0.0 <= p["held_out"][1] <= 1.0
        if label in selected:
            assert p["selection"] == selected[label]
    assert json.loads((result.directory / HELD_OUT_FILE).read_text()) == held
    cache = result.directory / "held-out"
    stamps = {f: f.stat().st_mtime_ns for f in cache.iterdir()}
    assert len(stamps) == len(points)
    assert evaluate_held_out(result.directory, 300) == held  # cached: nothing measured again
    assert {f: f.stat().st_mtime_ns for f in cache.iterdir()} == stamps
    html = make_search_report(result.directory).html_path.read_text()
    assert 'id="search-held-out"' in html and "300 test images the search never saw" in html
    assert "the front may have changed" not in html
    completed = sum(t["state"] == "COMPLETE" for t in summary["trials"])
    assert held["completed_trials"] == completed
    # a check made before more trials completed: the report says it is older than the front
    (result.directory / HELD_OUT_FILE).write_text(
        json.dumps({**held, "completed_trials": completed - 1})
    )
    html = make_search_report(result.directory).html_path.read_text()
    assert f"had {completed - 1} completed trials, not the {completed} it has now" in html


def test_report_of_a_three_objective_search_from_search_json(tmp_path: Path) -> None:
    from robustcompress.reporting.search import make_search_report

    objectives = [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "fooling_ratio/pgd", "direction": "minimize"},
        {"metric": "effective_rank/W1", "direction": "minimize"},
    ]
    points = {0: [0.95, 0.40, 4.2], 1: [0.90, 0.20, 4.0], 2: [0.89, 0.25, 4.1], 3: [0.80, 0.1, 3.0]}
    trials = [
        {
            "number": n,
            "state": "COMPLETE",
            "values": {"l1.W1": 0.01 * n, "adversarial": "off"},
            "objectives": v,
            "run_dir": f"/runs/s-{n}",
        }
        for n, v in points.items()
    ]
    trials.append({"number": 4, "state": "FAIL", "values": {}, "reason": "near chance"})
    summary = {
        "name": "s",
        "sampler": "nsga2",
        "seed": 0,
        "n_trials": 5,
        "objectives": objectives,
        "parameters": {"l1.W1": {"range": "log [0.0001, 0.1] or off"}, "adversarial": {}},
        "model": "fcnn",
        "start": {"status": "finished", "final": {"accuracy": 0.95, "fooling_ratio/pgd": 0.5}},
        "references": {
            "l1": {"status": "finished", "objectives": [0.88, 0.3, 4.3], "values": {"l1.W1": 0.01}}
        },
        "trials": trials,
        "sessions": [{"wall_time_s": 12.0}],
        "wall_time_s": 12.0,
    }
    (tmp_path / "search.json").write_text(json.dumps(summary))
    report = make_search_report(tmp_path)
    assert [p.label for p in report.front] == ["#0", "#1", "#3"]  # #2 is dominated by #1
    assert report.front_table.rows[0][0] == "#0"
    (references,) = [t for t in report.tables if t.key == "search-references"]
    assert references.rows[0][0] == "l1" and references.rows[0][-2] == "#1"  # #1 beats l1
    # at accuracy ≥ 0.88 (#0, #1) the lowest PGD fooling ratio is #1's
    assert references.rows[0][-1] == "#1: 0.2000"
    assert (tmp_path / "figures" / "search-front.svg").is_file()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["trial_states"] == {"COMPLETE": 4, "FAIL": 1}
    # the start run lacks effective_rank/W1: no point for it in 3-D
    assert [p["label"] for p in data["references"]] == ["l1"]

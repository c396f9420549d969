"""What a report is made of: the runs found in a directory, labelled by method and seed.

:func:`load_source` accepts four kinds of directory:

* a **reproduction** directory: it holds ``manifest.json`` (written by a recipe,
  e.g. ``<runs root>/reproductions/langenberg2019-quick/``) listing every run with
  its model, data set, method id, display label, group (an open name such as
  natural, adversarial, regularized) and seed, the recipe's choices, its wall time,
  the masking flags and, when measured, the ensemble's robust accuracy per run (its
  fooling ratio is read through ``ReportRun.final_value("fooling_ratio/autoattack")``,
  for claims; it is not among the run's own stored finals);
  run directories in it are absolute or relative to the manifest's folder;
* a **single run** directory: it holds ``config.yaml``;
* a **sweep** directory: it holds ``sweep_summary.json``
  (``<runs root>/sweeps/<name>/``); methods are the sweep's variants plus their
  non-seed grid values;
* a **runs root**: any directory whose sub-directories are runs.

Outside a reproduction, a run's method is its config name without a trailing seed
(``-seed=1``, ``-s1``), and its group is read from its config: adversarial training
→ ``adversarial``; any regularizer with λ > 0 → ``regularized``; else ``natural``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robustcompress.errors import ConfigError
from robustcompress.experiments.store import (
    CONFIG_FILE,
    MANIFEST_FILE,
    RunRecord,
    list_runs,
    read_json,
    read_record,
)

SWEEP_SUMMARY_FILE = "sweep_summary.json"
GROUPS = ("natural", "adversarial", "regularized")
"""The groups a run outside a reproduction is given (:func:`_infer_group`); a recipe's
methods may use any other group name."""

SourceKind = Literal["reproduction", "run", "sweep", "runs"]

ENSEMBLE_LABEL = "autoattack"
"""The attack label of the ensemble's results: a reproduction's measured fooling ratio
under the AutoAttack-style ensemble is each run's final ``fooling_ratio/autoattack``."""

_SEED_SUFFIX = re.compile(r"[-_](?:seed=?|s)(\d+)$")


@dataclass
class ReportRun:
    """One run as a report sees it: the stored record plus method, label, group and seed."""

    record: RunRecord
    model: str
    dataset: str
    method: str
    label: str
    group: str
    seed: int
    start: ReportRun | None = field(default=None, repr=False)
    """The run this one fine-tunes (``training.init_from``), when it is in the same report."""
    measured: dict[str, float] = field(default_factory=dict)
    """Final values measured after training by the reproduction (the ensemble's fooling
    ratio), beside those the run stored itself."""

    @property
    def run_dir(self) -> Path:
        return self.record.run_dir

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def final(self) -> dict[str, float | None]:
        return self.record.final

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Every row of the run's ``metrics.jsonl``."""
        return self.record.metrics()

    @property
    def steps_per_epoch(self) -> float | None:
        """Optimiser steps per epoch, from the summary (for an epoch axis)."""
        steps, epochs = self.record.summary.get("steps"), self.record.summary.get("epochs")
        if isinstance(steps, int) and isinstance(epochs, int) and steps > 0 and epochs > 0:
            return steps / epochs
        return None

    @property
    def length(self) -> float:
        """How long the run trained, in epochs (steps when steps per epoch are unknown)."""
        summary = self.record.summary
        key = "epochs" if self.steps_per_epoch else "steps"
        value = summary.get(key)
        return float(value) if isinstance(value, (int, float)) else 0.0

    @property
    def offset(self) -> float:
        """Where this run starts on a shared training axis: the end of the run it
        fine-tunes (recursively), 0 for a run trained from scratch."""
        return 0.0 if self.start is None else self.start.offset + self.start.length

    def series(self, metric: str, layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, values)`` of one tracked metric over training, x in epochs when known.

        A fine-tuned run continues its starting run's axis (x is shifted by
        :attr:`offset`), so natural training and the fine-tuning from its end read as
        one course of training. Rows with a null (non-finite) value become NaN; rows are
        sorted by step and a step tracked twice keeps its last value.
        """
        x, values = metric_series(self.rows, metric, layer, self.steps_per_epoch)
        return x + self.offset, values

    def final_value(self, metric: str) -> float | None:
        """The final value of ``metric`` (``effective_rank/W1`` style keys), if finite:
        stored by the run, or measured after it (:attr:`measured`)."""
        value = self.final.get(metric, self.measured.get(metric))
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return None


FinalRows = dict[str, dict[int, dict[str, Any]]]
"""``{method: {seed: final row}}`` of one model of a reproduction."""


def seed_values(
    rows: FinalRows,
    group: str,
    key: str,
    value: Callable[[dict[str, Any], str], float | None] | None = None,
) -> dict[int, float]:
    """``{seed: value}`` of ``key`` in the rows of ``group`` (a method or grid point),
    finite values only; ``value(row, key)`` reads derived keys (default: the row's own
    finite number)."""
    out = {}
    for seed, row in rows.get(group, {}).items():
        v = value(row, key) if value is not None else row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[seed] = float(v)
    return out


def final_rows(source: ReportSource, model: str) -> FinalRows:
    """The manifest's ``final`` rows of ``model`` (one per measured final model, written by
    a recipe's measure step) by method and seed."""
    out: FinalRows = {}
    for row in source.manifest.get("final") or []:
        if row.get("model") == model:
            out.setdefault(str(row["method"]), {})[int(row["seed"])] = row
    return out


def metric_series(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    layer: str | None = None,
    steps_per_epoch: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, values)`` of ``metric`` (and ``layer``) in ``metrics.jsonl`` rows, sorted by step.

    ``x`` is the step, or ``step / steps_per_epoch`` (epochs) when that is given.
    """
    by_step: dict[int, float] = {}
    for row in rows:
        if row.get("metric") != metric or row.get("layer") != layer:
            continue
        value = row.get("value")
        by_step[int(row["step"])] = float(value) if value is not None else math.nan
    steps = np.array(sorted(by_step), dtype=float)
    values = np.array([by_step[int(s)] for s in steps], dtype=float)
    if steps_per_epoch:
        steps = steps / steps_per_epoch
    return steps, values


def layers_of(rows: Iterable[Mapping[str, Any]], metric: str) -> list[str]:
    """The ``layer`` values recorded for ``metric``, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        if row.get("metric") == metric and row.get("layer") is not None:
            seen.setdefault(str(row["layer"]), None)
    return list(seen)


@dataclass
class ReportSource:
    """Everything a report is built from.

    ``missing`` lists manifest entries whose run directory does not exist or is not a
    run (shown on the report, never silently dropped).
    """

    kind: SourceKind
    directory: Path
    title: str
    runs: list[ReportRun]
    recipe: str | None = None
    profile: str | None = None
    seeds: list[int] = field(default_factory=list)
    started: str | None = None
    wall_time_s: float | None = None
    choices: list[str] = field(default_factory=list)
    masking: list[dict[str, Any]] = field(default_factory=list)
    ensemble: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def test_accuracy(self, run: ReportRun) -> tuple[float, int] | None:
        """``(accuracy, n)`` of ``run`` on the whole test split, if the manifest has it.

        A reproduction measures every finished model on the full test set beside its
        masking checks; a plain run or sweep only tracks its evaluation subset.
        """
        for entry in self.masking:
            if (entry.get("model"), entry.get("method"), entry.get("seed")) != (
                run.model,
                run.method,
                run.seed,
            ):
                continue
            acc, size = entry.get("test_accuracy"), entry.get("test_size")
            if isinstance(acc, (int, float)) and isinstance(size, int):
                return float(acc), size
        return None

    @property
    def finished(self) -> list[ReportRun]:
        return [r for r in self.runs if r.status == "finished"]

    def reorder(self, models: Sequence[str], methods: Mapping[str, Sequence[str]]) -> None:
        """Put runs in the given model and method order (unlisted ones last, as found)."""

        def key(item: tuple[int, ReportRun]) -> tuple[int, int, int]:
            i, r = item
            order = list(methods.get(r.model, ()))
            return (
                models.index(r.model) if r.model in models else len(models),
                order.index(r.method) if r.method in order else len(order),
                i,
            )

        self.runs = [r for _, r in sorted(enumerate(self.runs), key=key)]

    def models(self) -> list[str]:
        """Models in first-seen order."""
        return list(dict.fromkeys(r.model for r in self.runs))

    def methods(self, model: str) -> list[str]:
        """Methods of ``model`` in first-seen order."""
        return list(dict.fromkeys(r.method for r in self.runs if r.model == model))

    def runs_of(self, model: str, method: str, *, finished: bool = True) -> list[ReportRun]:
        """Runs of one model and method, sorted by seed."""
        pool = self.finished if finished else self.runs
        return sorted(
            (r for r in pool if r.model == model and r.method == method), key=lambda r: r.seed
        )

    def label(self, model: str, method: str) -> str:
        return next((r.label for r in self.runs if r.model == model and r.method == method), method)

    def group(self, model: str, method: str) -> str:
        return next((r.group for r in self.runs if r.model == model and r.method == method), "")

    def final_values(self, model: str, method: str, metric: str) -> dict[int, float]:
        """``{seed: final value}`` over the finished runs of one model and method."""
        out = {}
        for r in self.runs_of(model, method):
            value = r.final_value(metric)
            if value is not None:
                out[r.seed] = value
        return out

    def value_lookup(self, metrics: Sequence[str]) -> dict[tuple[str, str, str], dict[int, float]]:
        """``{(model, method, metric): {seed: value}}`` for the claims module."""
        return {
            (model, method, metric): values
            for model in self.models()
            for method in self.methods(model)
            for metric in metrics
            if (values := self.final_values(model, method, metric))
        }


def link_starts(runs: Sequence[ReportRun]) -> None:
    """Set each run's :attr:`ReportRun.start` from its config's ``training.init_from``."""
    by_dir = {r.run_dir.resolve(): r for r in runs}
    for run in runs:
        start = (run.config.get("training") or {}).get("init_from")
        if start:
            parent = by_dir.get(Path(start).resolve())
            run.start = parent if parent is not run else None


def directory_kind(directory: Path) -> SourceKind:
    """Which kind of directory ``directory`` is (see the module docstring)."""
    if (directory / MANIFEST_FILE).is_file():
        return "reproduction"
    if (directory / CONFIG_FILE).is_file():
        return "run"
    if (directory / SWEEP_SUMMARY_FILE).is_file():
        return "sweep"
    if directory.is_dir() and any(
        (d / CONFIG_FILE).is_file() for d in directory.iterdir() if d.is_dir()
    ):
        return "runs"
    raise ConfigError(
        f"{directory}: not a run, sweep, runs-root or reproduction directory (no "
        f"{MANIFEST_FILE}, {CONFIG_FILE}, {SWEEP_SUMMARY_FILE} or run sub-directories); "
        "give a directory that `robustcompress run`, `sweep` or `reproduce` wrote"
    )


def load_source(directory: str | Path) -> ReportSource:
    """The runs in ``directory`` (any of the four kinds), labelled for a report."""
    directory = Path(directory)
    if not directory.exists():
        raise ConfigError(f"{directory}: no such directory; give a run, sweep or reproduction dir")
    source = _load(directory)
    link_starts(source.runs)
    return source


def _load(directory: Path) -> ReportSource:
    kind = directory_kind(directory)
    if kind == "reproduction":
        return _load_reproduction(directory)
    if kind == "run":
        run = _generic_run(read_record(directory))
        return ReportSource("run", directory, f"Run {directory.name}", [run], seeds=[run.seed])
    if kind == "sweep":
        return _load_sweep(directory)
    runs = [_generic_run(r) for r in list_runs(directory)]
    return ReportSource(
        "runs",
        directory,
        f"Runs in {directory.name}",
        runs,
        seeds=sorted({r.seed for r in runs}),
    )


def _load_reproduction(directory: Path) -> ReportSource:
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
        raise ConfigError(f"{path}: a manifest must be a JSON object with a 'runs' list")
    runs: list[ReportRun] = []
    missing: list[dict[str, Any]] = []
    for i, entry in enumerate(manifest["runs"]):
        where = f"{path}: runs[{i}]"
        for key in ("run_dir", "model", "method", "seed"):
            if key not in entry:
                raise ConfigError(f"{where}: missing key '{key}' (see the manifest contract)")
        run_dir = Path(entry["run_dir"])
        if not run_dir.is_absolute():
            run_dir = (directory / run_dir).resolve()
        if not (run_dir / CONFIG_FILE).is_file():
            missing.append({**entry, "reason": f"{run_dir} is not a run directory"})
            continue
        record = read_record(run_dir)
        group = str(entry.get("group") or _infer_group(record.config))
        runs.append(
            ReportRun(
                record=record,
                model=str(entry["model"]),
                dataset=str(entry.get("dataset") or record.config.get("data", {}).get("dataset")),
                method=str(entry["method"]),
                label=str(entry.get("label") or entry["method"]),
                group=group,
                seed=int(entry["seed"]),
            )
        )
    ensemble = [e for e in manifest.get("ensemble") or [] if isinstance(e, dict)]
    by_key: dict[tuple[Any, ...], ReportRun] = {(r.model, r.method, r.seed): r for r in runs}
    for entry in ensemble:
        run = by_key.get((entry.get("model"), entry.get("method"), entry.get("seed")))
        value = entry.get("fooling_ratio")
        if run is not None and isinstance(value, (int, float)):
            run.measured[f"fooling_ratio/{ENSEMBLE_LABEL}"] = float(value)
    recipe = manifest.get("recipe")
    profile = manifest.get("profile")
    title = str(manifest.get("title") or (f"{recipe} reproduction" if recipe else directory.name))
    if profile:
        title += f" (profile {profile})"
    wall = manifest.get("wall_time_s")
    return ReportSource(
        kind="reproduction",
        directory=directory,
        title=title,
        runs=runs,
        recipe=str(recipe) if recipe else None,
        profile=str(profile) if profile else None,
        seeds=[int(s) for s in manifest.get("seeds") or sorted({r.seed for r in runs})],
        started=manifest.get("started"),
        wall_time_s=float(wall) if isinstance(wall, (int, float)) else None,
        choices=[str(c) for c in manifest.get("choices") or []],
        masking=[m for m in manifest.get("masking") or [] if isinstance(m, dict)],
        ensemble=ensemble,
        missing=missing,
        manifest=manifest,
    )


def _load_sweep(directory: Path) -> ReportSource:
    summary = read_json(directory / SWEEP_SUMMARY_FILE)
    runs: list[ReportRun] = []
    missing: list[dict[str, Any]] = []
    for entry in summary.get("runs", []):
        run_dir = entry.get("run_dir")
        if not run_dir or not (Path(run_dir) / CONFIG_FILE).is_file():
            missing.append({**entry, "reason": entry.get("error") or "no run directory"})
            continue
        record = read_record(run_dir)
        params = dict(entry.get("params") or {})
        seed = int(params.pop("seed", record.config.get("seed", 0)))
        parts = [entry.get("variant") or ""] + [f"{k}={v}" for k, v in params.items()]
        method = " ".join(p for p in parts if p) or record.name
        run = _generic_run(record)
        run.method, run.label, run.seed = method, method, seed
        runs.append(run)
    name = summary.get("sweep") or directory.name
    return ReportSource(
        "sweep",
        directory,
        f"Sweep {name}",
        runs,
        seeds=sorted({r.seed for r in runs}),
        missing=missing,
    )


def _generic_run(record: RunRecord) -> ReportRun:
    config = record.config
    method = _SEED_SUFFIX.sub("", record.name) or record.name
    return ReportRun(
        record=record,
        model=str(config.get("model", {}).get("name", "?")),
        dataset=str(config.get("data", {}).get("dataset", "?")),
        method=method,
        label=method,
        group=_infer_group(config),
        seed=int(config.get("seed", 0)),
    )


def _infer_group(config: Mapping[str, Any]) -> str:
    """``adversarial`` / ``regularized`` / ``natural`` from a resolved run config."""
    if (config.get("training") or {}).get("mode") == "adversarial":
        return "adversarial"
    for reg in (config.get("regularizers") or {}).values():
        lam = (reg or {}).get("lam")
        lams = lam.values() if isinstance(lam, dict) else [lam]
        if any(isinstance(v, (int, float)) and v > 0 for v in lams):
            return "regularized"
    return "natural"

"""Sweeps: a base config, named variants and a grid, expanded to runs and summarised.

A sweep file::

    name: fcnn-nuclear
    base: natural.yaml              # a run config file (relative to this file) or a mapping
    variants:                       # optional; each a set of overrides of the base
      natural: {}
      pgd: {training: {mode: adversarial, adversarial: {attack: pgd, steps: 7, alpha: 0.01}}}
    grid:                           # dotted key paths → lists of values
      regularizers.nuclear.lam.W1: [0.0, 0.01]
      seed: [0, 1]

expands to one run per variant × grid point, in that order. Overrides use dotted
key paths (``training.mode``) or nested mappings; a mapping merges into a mapping,
anything else replaces. Run names are ``<sweep>-<variant>-<key>=<value>...``
(``key`` = the last part of the path, e.g. ``W1=0.01-seed=1``).

A variant may start from another variant: ``training.init_from: natural`` then
means the *natural* run at the same grid point; such runs execute after the runs
they start from.

The summary groups runs by variant and grid point without ``seed`` (the
replicate axis) and gives each final metric's mean, standard deviation (sample
std, ``ddof = 1``; 0 for a single seed) and count; it is written to
``<runs root>/sweeps/<name>/sweep_summary.json``.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustcompress.errors import ConfigError, DivergedError, RobustCompressError
from robustcompress.experiments.config import (
    RunConfig,
    format_validation_error,
    parse_config,
    read_yaml,
)
from robustcompress.experiments.executor import Executor
from robustcompress.experiments.store import (
    RunRecord,
    read_json,
    runs_root,
    write_json_atomic,
)

REPLICATE_KEY = "seed"
"""The grid key whose values are replicates: averaged over in the summary."""


class SweepConfig(BaseModel):
    """Schema of a sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$", max_length=80)
    base: str | dict[str, Any]
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its variant, grid values and validated config."""

    variant: str
    params: dict[str, Any]
    config: RunConfig

    @property
    def group(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Variant and grid values without the replicate key: the summary's row."""
        rest = tuple((k, repr(v)) for k, v in self.params.items() if k != REPLICATE_KEY)
        return self.variant, rest


@dataclass
class Sweep:
    """A loaded sweep: its schema, where it came from, and its expanded points."""

    config: SweepConfig
    source: str
    points: list[SweepPoint]
    dependencies: dict[str, RunConfig] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name


def set_path(data: dict[str, Any], path: str, value: Any, where: str) -> None:
    """``data[a][b][c] = value`` for ``path = "a.b.c"``; mappings merge into mappings."""
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            upto = ".".join(parts[: i + 1])
            raise ConfigError(
                f"{where}: cannot set '{path}': '{upto}' is {child!r} in the base config, "
                "not a mapping"
            )
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), dict):
        for key, inner in value.items():
            set_path(node[last], str(key), inner, where)
    else:
        node[last] = copy.deepcopy(value)


def _label(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Last path component of each key, or the whole path where that is ambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read, validate and expand a sweep file."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a sweep file must be a mapping with name, base and grid")
    data = dict(data)
    data.setdefault("name", path.stem)
    try:
        sweep = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, SweepConfig)) from None
    return expand(sweep, path)


def expand(sweep: SweepConfig, source: str | os.PathLike[str] = "<sweep>") -> Sweep:
    """Every variant × grid point as a validated :class:`RunConfig`."""
    source = str(source)
    base_dir = Path(source).parent if Path(source).is_file() else Path.cwd()
    if isinstance(sweep.base, str):
        base_path = base_dir / sweep.base
        base = read_yaml(base_path)
        if not isinstance(base, Mapping):
            raise ConfigError(f"{base_path}: the base run config must be a mapping")
        base_source = str(base_path)
    else:
        base, base_source = sweep.base, source
    for key, values in sweep.grid.items():
        if not values:
            raise ConfigError(f"{source}: grid.{key}: give at least one value")
    variants = sweep.variants or {"": {}}
    keys = list(sweep.grid)
    short = _short_keys(keys)

    def run_name(variant: str, combo: Sequence[Any]) -> str:
        parts = [sweep.name, *([variant] if variant else [])]
        parts += [f"{short[k]}={_label(v)}" for k, v in zip(keys, combo, strict=True)]
        return "-".join(parts)

    points: list[SweepPoint] = []
    names: dict[str, RunConfig] = {}
    for variant, overrides in variants.items():
        for combo in itertools.product(*sweep.grid.values()):
            where = f"{source} [{run_name(variant, combo)}]"
            data = copy.deepcopy(dict(base))
            for key, value in overrides.items():
                set_path(data, key, value, where)
            for key, value in zip(keys, combo, strict=True):
                set_path(data, key, value, where)
            data["name"] = run_name(variant, combo)
            training = data.get("training")
            start = training.get("init_from") if isinstance(training, Mapping) else None
            if isinstance(start, str) and start in variants and variant:
                data["training"]["init_from"] = run_name(start, combo)
            elif isinstance(start, str) and not Path(start).is_absolute():
                candidate = Path(base_source).parent / start
                if candidate.exists():
                    data["training"]["init_from"] = str(candidate.resolve())
            config = parse_config(data, where)
            points.append(SweepPoint(variant, dict(zip(keys, combo, strict=True)), config))
            names[config.name] = config
    dependencies = {
        p.config.training.init_from: names[p.config.training.init_from]
        for p in points
        if p.config.training.init_from in names
    }
    return Sweep(sweep, source, points, dependencies)


def _levels(sweep: Sweep) -> list[list[SweepPoint]]:
    """Points ordered so every run comes after the sweep runs it starts from."""
    by_name = {p.config.name: p for p in sweep.points}
    depth: dict[str, int] = {}

    def level(point: SweepPoint, seen: tuple[str, ...] = ()) -> int:
        name = point.config.name
        if name in depth:
            return depth[name]
        start = point.config.training.init_from
        if start in seen:
            raise ConfigError(f"{sweep.source}: circular init_from between {', '.join(seen)}")
        parent = by_name.get(start) if start else None
        depth[name] = 0 if parent is None else level(parent, (*seen, name)) + 1
        return depth[name]

    out: dict[int, list[SweepPoint]] = {}
    for p in sweep.points:
        out.setdefault(level(p), []).append(p)
    return [out[k] for k in sorted(out)]


@dataclass
class SweepResult:
    """Records of every run (``None`` where a run raised) and the aggregated summary."""

    sweep: Sweep
    records: list[RunRecord | None]
    errors: dict[str, str]
    summary: list[dict[str, Any]]
    path: Path


def run_sweep(
    sweep: Sweep,
    executor: Executor,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    on_done: Any = None,
) -> SweepResult:
    """Run every point with ``executor`` and write the summary.

    Runs that start from no other sweep run are submitted first, in sweep order; a run
    that fine-tunes another is submitted as soon as that one ends (not when its whole
    level has), so a long run never holds back the fine-tunings of the short ones. A
    run that raises does not stop the others: its error is kept in
    ``SweepResult.errors`` and it is left out of the aggregates (the runs that start
    from it are still submitted, and fail with their own error). ``on_done(point,
    record_or_None, error_or_None)`` is called as each run completes.
    """
    root = runs_root(runs_dir)
    records: dict[str, RunRecord | None] = {}
    errors: dict[str, str] = {}
    statuses: dict[str, str] = {}
    _levels(sweep)  # refuses circular init_from chains before anything runs
    by_name = {p.config.name: p for p in sweep.points}
    children: dict[str, list[SweepPoint]] = {}
    roots: list[SweepPoint] = []
    for p in sweep.points:
        start = p.config.training.init_from
        if start and start in by_name:
            children.setdefault(start, []).append(p)
        else:
            roots.append(p)
    futures: dict[Future[RunRecord], SweepPoint] = {}
    position: dict[Future[RunRecord], int] = {}

    def submit(points: Sequence[SweepPoint]) -> None:
        for p in points:
            future = executor.submit(p.config, dependencies=sweep.dependencies)
            futures[future] = p
            position[future] = len(position)

    submit(roots)
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when="FIRST_COMPLETED")
        for future in sorted(done, key=position.__getitem__):
            point = futures[future]
            name = point.config.name
            error = future.exception()
            if error is None:
                records[name] = future.result()
            else:
                records[name] = None
                statuses[name] = "diverged" if isinstance(error, DivergedError) else "failed"
                errors[name] = (
                    str(error)
                    if isinstance(error, RobustCompressError)
                    else f"{type(error).__name__}: {error}"
                )
            if on_done is not None:
                on_done(point, records[name], errors.get(name))
            before = set(futures)
            submit(children.get(name, []))
            pending |= set(futures) - before
    ordered = [records.get(p.config.name) for p in sweep.points]
    summary = summarize(sweep.points, ordered, statuses)
    path = root / "sweeps" / sweep.name / "sweep_summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "sweep": sweep.name,
            "source": sweep.source,
            "runs": [
                {
                    "name": p.config.name,
                    "variant": p.variant,
                    "params": p.params,
                    "run_dir": str(r.run_dir) if r else None,
                    "status": r.status if r else statuses.get(p.config.name, "failed"),
                    "error": errors.get(p.config.name),
                }
                for p, r in zip(sweep.points, ordered, strict=True)
            ],
            "summary": summary,
        },
    )
    return SweepResult(sweep, ordered, errors, summary, path)


def summarize(
    points: Sequence[SweepPoint],
    records: Sequence[RunRecord | None],
    statuses: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Mean ± std (ddof = 1) and count of each final metric per variant and grid point.

    Only finished runs enter the aggregates; the others are counted per status in
    ``excluded`` (e.g. ``{"diverged": 1}``), so a diverged run is never averaged in
    silently. ``near_chance`` counts the finished runs at or near chance accuracy
    (:func:`~robustcompress.evaluation.masking.run_near_chance`): their fooling ratios
    are averaged in but are not robustness. ``statuses`` gives the status of runs
    without a record (by run name).
    """
    from robustcompress.evaluation.masking import run_near_chance

    groups: dict[Any, list[tuple[SweepPoint, RunRecord]]] = {}
    excluded: dict[Any, dict[str, int]] = {}
    order: list[Any] = []
    for point, record in zip(points, records, strict=True):
        if point.group not in groups:
            groups[point.group] = []
            excluded[point.group] = {}
            order.append(point.group)
        if record is not None and record.status == "finished":
            groups[point.group].append((point, record))
        else:
            status = record.status if record is not None else None
            status = status or (statuses or {}).get(point.config.name, "failed")
            excluded[point.group][status] = excluded[point.group].get(status, 0) + 1
    rows = []
    for key in order:
        members = groups[key]
        first = next(p for p in points if p.group == key)
        params = {k: v for k, v in first.params.items() if k != REPLICATE_KEY}
        metrics: dict[str, dict[str, float | int | None]] = {}
        names = sorted({m for _, r in members for m in r.final})
        for metric in names:
            values = [float(v) for _, r in members if (v := r.final.get(metric)) is not None]
            metrics[metric] = _mean_std(values)
        rows.append(
            {
                "variant": first.variant,
                "params": params,
                "runs": len(members),
                "excluded": excluded[key],
                "near_chance": sum(bool(run_near_chance(r.config, r.final)) for _, r in members),
                "seeds": [p.params.get(REPLICATE_KEY, p.config.seed) for p, _ in members],
                "metrics": metrics,
            }
        )
    return rows


def _mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(finite) / len(finite)
    if len(finite) > 1:
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    else:
        std = 0.0
    return {"mean": mean, "std": std, "n": len(finite)}


def read_sweep_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A written ``sweep_summary.json``."""
    return read_json(Path(path))

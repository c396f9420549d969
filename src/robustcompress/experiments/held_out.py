"""A search's front and reference points measured again on test images it never saw.

A search picks its Pareto front on the run's tracked evaluation subset (``tracking.
eval_size`` test images, seed ``tracking.eval_seed``): the same images it selects on, so
the front's objectives are optimistic (the winner's curse). :func:`evaluate_held_out`
measures the front members, the reference points and the starting run once more, on
``size`` test images drawn (seeded, class-stratified) from the rest of the test split,
with the very attacks the runs tracked (same settings, same seeds), and writes
``held-out.json`` in the search directory; the search report shows it beside the
selection values. Structure objectives (effective rank, sparsity) are properties of the
weights and carry over unchanged.

Each model is one job on the search's executor (a process pool or Ray), cached per run
and setting in ``held-out/`` under the search directory.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.experiments.config import TrackingConfig
from robustcompress.experiments.executor import Executor
from robustcompress.experiments.search import SEARCH_FILE, metric_value
from robustcompress.experiments.store import read_json, read_record, write_json_atomic

HELD_OUT_FILE = "held-out.json"
CACHE_DIR = "held-out"
DEFAULT_SEED = 1
"""Seed of the held-out draw (the tracked subsets use ``eval_seed``, 0 by default)."""


def held_out_indices(
    labels: torch.Tensor, tracked: torch.Tensor | None, size: int, seed: int
) -> torch.Tensor:
    """``size`` indices of ``labels`` outside ``tracked`` (ascending; a seeded,
    class-stratified draw from the rest); ``tracked=None``: from all of them."""
    from robustcompress.data.sampling import subsample_indices

    keep = torch.ones(len(labels), dtype=torch.bool)
    if tracked is not None:
        keep[tracked] = False
    rest = keep.nonzero().squeeze(1)
    if size < 1 or size > len(rest):
        raise ConfigError(
            f"--held-out {size}: the test split has {len(rest)} images outside the tracked "
            f"ones; give 1 to {len(rest)}"
        )
    return rest[subsample_indices(labels[rest], size, seed)]


def measure_images(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    entries: Mapping[str, tuple[str, dict[str, Any]]],
    *,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Clean accuracy and the fooling ratio of every tracked attack on ``(images, labels)``
    as the runs' trackers compute them (attack seeds ``derive_seed("tracking", label)``),
    in batches of ``batch_size``; also the counts behind each ratio."""
    from robustcompress import attacks
    from robustcompress.attacks.base import attack_mode
    from robustcompress.attacks.ops import predict
    from robustcompress.catalogue import fooling_ratio_key
    from robustcompress.evaluation.metrics import correctly_classified, fooled
    from robustcompress.training import derive_seed

    batches = [slice(i, i + batch_size) for i in range(0, len(labels), batch_size)]
    with attack_mode(model):
        clean = torch.cat([predict(model, images[b]) for b in batches])
    correct = correctly_classified(clean, labels)
    n_correct = int(correct.sum())
    out: dict[str, Any] = {
        "accuracy": n_correct / len(labels),
        "n": len(labels),
        "n_correct": n_correct,
    }
    for label, (name, params) in entries.items():
        attack = attacks.get(name, **{"seed": derive_seed("tracking", label), **params})
        changed = 0
        for b in batches:
            with attack_mode(model):
                adversarial = predict(model, attack(model, images[b], labels[b]))
            changed += int((fooled(clean[b], adversarial) & correct[b]).sum())
        out[f"fooled/{label}"] = changed
        out[fooling_ratio_key(label)] = changed / n_correct if n_correct else math.nan
    return out


def held_out_data(
    config: Mapping[str, Any], size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, TrackingConfig]:
    """The held-out images and labels of a run (its ``config`` as stored) and its tracking
    settings."""
    from robustcompress.data import load_dataset

    tracking = TrackingConfig.model_validate(config.get("tracking") or {})
    test = load_dataset(str(config["data"]["dataset"]), "test")
    tracked = None
    if tracking.eval_split == "test":
        from robustcompress.data.sampling import subsample_indices

        tracked = subsample_indices(test.labels, tracking.eval_size, tracking.eval_seed)
    keep = held_out_indices(test.labels, tracked, size, seed)
    return test.images[keep], test.labels[keep], tracking


def _job(job: tuple[str, int, int, str | None, str]) -> None:
    """Measure one run's final model on its held-out images (runs in a worker)."""
    from robustcompress.device import resolve_device
    from robustcompress.training import load_model

    run_dir, size, seed, device_name, out = job
    record = read_record(run_dir)
    device = resolve_device(device_name or record.config.get("device") or "auto")
    images, labels, tracking = held_out_data(record.config, size, seed)
    model = load_model(run_dir, device=device)
    payload = measure_images(model, images.to(device), labels.to(device), tracking.attack_entries())
    payload.update(size=size, seed=seed, tracked=tracking.eval_size)
    write_json_atomic(Path(out), payload)


def evaluate_held_out(
    directory: str | os.PathLike[str],
    size: int,
    executor: Executor | None = None,
    *,
    seed: int = DEFAULT_SEED,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the search's front, references and start on ``size`` held-out test images
    (cached), write ``held-out.json`` and return it: per point its objectives on the
    selection subset and on the held-out images."""
    from robustcompress.experiments.recipes.base import run_jobs
    from robustcompress.reporting.search import front_points

    directory = Path(directory)
    summary = read_json(directory / SEARCH_FILE)
    if not summary:
        raise ConfigError(f"{directory}: no readable {SEARCH_FILE}; run the search first")
    metrics = [o["metric"] for o in summary.get("objectives") or []]
    cache = directory / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    device = executor.device if executor is not None else None
    trials, front, references = front_points(summary)
    rows = []
    todo: list[tuple[str, int, int, str | None, str]] = []
    for point in [*front, *references]:
        if not point.run_dir:
            continue
        name = Path(point.run_dir).name
        tag = hashlib.sha256(f"{name}|{size}|{seed}".encode()).hexdigest()[:10]
        out = cache / f"{name}-{tag}.json"
        rows.append((point, out))
        if not out.exists() and all(job[0] != point.run_dir for job in todo):
            todo.append((point.run_dir, size, seed, device, str(out)))
    if todo and log is not None:
        log(f"held-out check: {len(todo)} model(s) on {size} test images not tracked")
    run_jobs(_job, todo, "held-out check", executor, log)
    points = []
    for point, out in rows:
        measured = read_json(out)
        fresh = {k: v for k, v in measured.items() if k.startswith("fooling_ratio/")}
        merged = {**point.final, **fresh, "accuracy": measured["accuracy"]}
        points.append(
            {
                "label": point.label,
                "kind": point.kind,
                "run_dir": point.run_dir,
                "selection": [metric_value(point.final, m) for m in metrics],
                "held_out": [metric_value(merged, m) for m in metrics],
                "n": measured["n"],
                "n_correct": measured["n_correct"],
                "measured": measured,
            }
        )
    result = {
        "size": size,
        "seed": seed,
        "metrics": metrics,
        "completed_trials": len(trials),
        "points": points,
    }
    write_json_atomic(directory / HELD_OUT_FILE, result)
    return result

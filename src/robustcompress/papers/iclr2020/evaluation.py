"""Every final model of an AR-strength sweep, measured once after training.

:func:`measure_model` records, for one model:

``train_loss``, ``test_loss``, ``train_error``, ``test_error``, ``loss_gap``, ``error_gap``
    cross-entropy and error rate on the training and test sets (whole sets unless the
    check limits them) and the GE gaps test − training (Figure 3);
``margin/<set>``, ``probability/<set>``, ``loss/<set>``
    the distributions of the logit margins ``f_y − max_{i≠y} f_i``, the estimated
    probabilities ``p(x)_y`` and the per-example losses on each set (Figures 4, 5a-b):
    histogram counts on the fixed bins of :data:`BINS` plus mean, std and quantiles;
``sv_std/<view>/W<i>``, ``sv/<view>/W<i>``
    the standard deviation (and all values) of the singular values of every layer,
    a convolution's reshaped kernel (``reshaped``) and circular operator on its input
    grid (``circular``) (Figures 1a, 5c-d); a layer feeding a batch norm is read with
    the norm's scale folded in (:func:`~robustcompress.structure.operators.fold_batchnorm`);
``pgd/<strength>``
    adversarial accuracy under ℓ∞ PGD (10 steps of 2 on the paper's 0–255 scale, random
    start) among the correctly classified test inputs of a sample, at the evaluation
    strength 8 and at the model's own training strength (App. D, Figure 1c);
``boundary_distance``
    the mean and median DeepFool distance to the boundary of the correctly classified
    inputs of a sample (the instance-space margin of §4, an upper bound).

The results are cached per run in ``<reproduction>/final/``, keyed by the check's
settings, so a second ``reproduce`` reuses them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcompress.experiments.recipes import Measurement, run_jobs
from robustcompress.experiments.store import read_json, write_json_atomic

CACHE_DIR = "final"

BINS: dict[str, tuple[float, float, int]] = {
    "margin": (-20.0, 20.0, 80),
    "probability": (0.0, 1.0, 50),
    "loss": (0.0, 10.0, 50),
}
"""``(low, high, bins)`` of each stored histogram; values outside go to the end bins."""

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class FinalCheck:
    """How every final model is measured (module docstring). ``train_size`` /
    ``test_size``: the sets of the losses, errors and distributions (``None``: whole
    splits); ``attack_size``: the test sample of PGD and DeepFool; ``scale``: the AR
    scale of the profile (ε = scale · k/255)."""

    train_size: int | None = None
    test_size: int | None = None
    attack_size: int = 1000
    scale: float = 1.0
    seed: int = 0

    def tag(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def distribution(values: np.ndarray, kind: str) -> dict[str, Any]:
    """Histogram counts on :data:`BINS` ``[kind]`` (clipped into the end bins), mean,
    std and quantiles of ``values``."""
    low, high, bins = BINS[kind]
    counts, _ = np.histogram(np.clip(values, low, high), bins=bins, range=(low, high))
    return {
        "counts": counts.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": [float(q) for q in np.quantile(values, QUANTILES)],
    }


def measure_model(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    check: FinalCheck,
    training_strength: float,
) -> dict[str, Any]:
    """Every measurement of the module docstring on one model (eval mode, CPU)."""
    from robustcompress import attacks
    from robustcompress.evaluation import fooling_ratio_of
    from robustcompress.evaluation.generalization import (
        instance_space_margins,
        prediction_stats,
    )
    from robustcompress.papers.iclr2020.recipe import EVAL_STRENGTH, attack_settings
    from robustcompress.structure.operators import fold_batchnorm, layer_spectra

    clock = time.perf_counter()
    model.eval()
    out: dict[str, Any] = {}
    stats = {
        part: prediction_stats(model, *data) for part, data in (("train", train), ("test", test))
    }
    out["train_loss"], out["test_loss"] = stats["train"].loss, stats["test"].loss
    out["train_error"], out["test_error"] = stats["train"].error, stats["test"].error
    out["loss_gap"] = out["test_loss"] - out["train_loss"]
    out["error_gap"] = out["test_error"] - out["train_error"]
    for part, s in stats.items():
        out[f"margin/{part}"] = distribution(s.margins, "margin")
        out[f"probability/{part}"] = distribution(s.probabilities, "probability")
        out[f"loss/{part}"] = distribution(s.losses, "loss")
    shape = tuple(int(v) for v in test[0].shape[1:])
    operators = fold_batchnorm(model, shape)
    for view in ("reshaped", "circular"):
        for spectrum in layer_spectra(operators, shape, view):
            out[f"sv_std/{view}/{spectrum.name}"] = spectrum.std
            out[f"sv/{view}/{spectrum.name}"] = [float(v) for v in spectrum.sigma]
    x, y = test[0][: check.attack_size], test[1][: check.attack_size]
    for k in sorted({float(EVAL_STRENGTH), float(training_strength)} - {0.0}):
        settings = attack_settings(k, check.scale)
        name = settings.pop("attack")
        attack = attacks.get(name, seed=check.seed, **settings)
        out[f"pgd/{k:g}"] = 1.0 - float(fooling_ratio_of(model, x, y, attack))
    distances = instance_space_margins(model, x, y)
    found = distances[np.isfinite(distances)]
    out["boundary_distance"] = {
        "mean": float(found.mean()) if len(found) else math.nan,
        "median": float(np.median(found)) if len(found) else math.nan,
        "n": len(found),
    }
    out["seconds"] = round(time.perf_counter() - clock, 2)
    return out


def _job(job: tuple[str, str, FinalCheck, float, str]) -> None:
    """Measure one final model and write the result (runs in a worker)."""
    from robustcompress.data import load_dataset
    from robustcompress.training import load_model

    path, dataset, check, strength, out = job
    model = load_model(path)
    train = load_dataset(dataset, "train", limit=check.train_size, seed=check.seed)
    test = load_dataset(dataset, "test", limit=check.test_size, seed=check.seed)
    payload = measure_model(
        model, (train.images, train.labels), (test.images, test.labels), check, strength
    )
    payload["check"] = asdict(check)
    write_json_atomic(Path(out), json.loads(json.dumps(payload)))


def measure_final(m: Measurement) -> dict[str, Any]:
    """The ``measure`` step of the recipe: every finished run's final model, cached;
    returns ``{"final": [row, …]}`` for the manifest (model, method, seed, strength,
    run_dir and the measurements)."""
    import os

    from robustcompress.papers.iclr2020.recipe import strength_of

    cache = m.directory / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[dict[str, Any], Path]] = []
    todo = []
    for p, run_dir in m.finished():
        check = m.profile.settings[p.model].check
        out = cache / f"{run_dir.name}-{check.tag()}.json"
        strength = strength_of(p.method) or 0.0
        row = {
            "model": p.model,
            "method": p.method,
            "seed": p.seed,
            "strength": strength,
            "run_dir": os.path.relpath(run_dir, m.directory),
        }
        rows.append((row, out))
        if not out.exists():
            todo.append((str(run_dir), p.dataset, check, strength, str(out)))
    if todo and m.log is not None:
        m.log(f"measuring {len(todo)} final model(s) (GE gaps, margins, spectra, PGD)")
    names = [Path(job[-1]).stem.rsplit("-", 1)[0] for job in todo]
    run_jobs(_job, todo, "measurement", m.executor, m.log, names)
    return {"final": [{**row, **read_json(out)} for row, out in rows]}

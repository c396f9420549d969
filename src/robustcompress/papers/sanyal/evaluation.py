"""Every final model of the Sanyal et al. recipe, measured once after training.

:func:`measure_model` records, for one model (eval mode):

``accuracy/train``, ``accuracy/test``
    clean accuracy on the check's training and test sets.
``variance/<position>``, ``rank/<position>/<q>``
    the variance ratio Σ_{i≤r} σ_i² / Σ σ_i² of the representations at each LR position
    (``pool``, ``layers.5``) on ``rep_size`` test images for r = 1 … :data:`CURVE`
    (Figure 2), and the smallest r reaching q ∈ :data:`RANK_LEVELS` of the variance.
``noise/<p>``
    test accuracy when each pixel gets N(0, 128/255) noise with probability p (Table 4).
``cushion/<layer>``, ``cushion_init/<layer>``
    quantiles, mean and a histogram of log₁₀ μ of the layer cushion of every convolution
    and linear layer on ``rep_size`` test images (Figure 4c), of the trained model and
    (``cushion_init``, ``n-lr`` only) of the same architecture at its initialisation.
``pgd/<ε·255>/<steps>``, ``transfer/<ε·255>/<steps>``
    accuracy (over all inputs of the attack sample) under ℓ∞ PGD with steps of 2.5·ε/τ
    from the clean input, white-box and transferred from the ``n-lr`` model of the next
    seed (Table 1).
``perturbation/<position>``
    the mean relative perturbation of the input (ρ_in) and of the representation (ρ_rep)
    under the white-box PGD of :data:`PERTURBATION_ATTACK` (Figure 4b).
``min_rho/<attack>``
    the minimum ρ = ‖x_adv − x‖₂/‖x‖₂ at which ``bim`` and ``bim_ll`` misclassify 99 % of
    the correctly classified inputs of a ``rho_size`` sample (bisection on ε), and the
    mean ρ of DeepFool (Table 3).
``hybrid/<position>/<k>``, ``recovered/<position>/<attack>``
    test accuracy of the hybrid max-margin model (standardise → PCA to k dimensions
    (``all``: none) → linear SVM, fitted on the training set's representations;
    Table 5), and the share of the adversarial inputs that fooled the network which the
    hybrid without PCA classifies correctly (Table 6).

Results are cached per run in ``<reproduction>/final/``, keyed by the check's settings.
"""

from __future__ import annotations

import copy
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
POSITIONS = ("pool", "layers.5")
"""The two LR positions: before the classifier and before the fourth residual stage."""
CURVE = 200
"""Variance ratios kept per position (r = 1 … 200)."""
RANK_LEVELS = (0.9, 0.99)
CUSHION_BINS = (-4.0, 0.0, 64)
"""``(low, high, bins)`` of the stored histogram of log₁₀ μ (μ ≤ 1 always)."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PERTURBATION_ATTACK = (8, 20)
"""``(ε·255, steps)`` of the PGD whose examples feed Figure 4b and Table 6."""
RHO_BRACKET = (1e-3, 0.5)
"""The ε bracket of the minimum-ρ bisection (ℓ∞, images on [0, 1])."""
RHO_STEPS = 10
"""Iterations of BIM / BIM-LL in the bisection, with steps of ε/4 (enough to reach the
edge of the ε-ball, as Kurakin et al.'s schedule intends)."""


@dataclass(frozen=True)
class FinalCheck:
    """How every final model is measured (module docstring): ``train_size`` /
    ``test_size`` the training set of the hybrids and the test set of the accuracies
    (``None``: whole splits); ``attack_size`` the test sample of PGD and Table 6;
    ``rho_size`` that of the minimum ρ; ``rep_size`` that of variance ratios and
    cushions; ``radii`` (on the 0–255 scale) and ``steps`` of the white-box PGD table,
    ``transfer_steps`` of the transferred one; ``noise``
    the pixel probabilities; ``pca`` the hybrids' dimensions."""

    train_size: int | None = None
    test_size: int | None = None
    attack_size: int = 1000
    rho_size: int = 200
    rep_size: int = 2000
    radii: tuple[int, ...] = (8, 16, 32, 64)
    steps: tuple[int, ...] = (7, 20)
    transfer_steps: tuple[int, ...] = (20,)
    noise: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    pca: tuple[int, ...] = (50, 20, 10, 5)
    seed: int = 0

    def tag(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def summary(values: np.ndarray) -> dict[str, Any]:
    """Mean, quantiles and a histogram of log₁₀ ``values`` on :data:`CUSHION_BINS`."""
    low, high, bins = CUSHION_BINS
    logs = np.clip(np.log10(np.maximum(values, 1e-12)), low, high)
    counts, _ = np.histogram(logs, bins=int(bins), range=(low, high))
    return {
        "mean": float(values.mean()),
        "quantiles": [float(q) for q in np.quantile(values, QUANTILES)],
        "log10_counts": counts.tolist(),
    }


def cushions(model: nn.Module, images: torch.Tensor) -> dict[str, dict[str, Any]]:
    """:func:`summary` of the layer cushion of every convolution and linear layer."""
    from robustcompress.evaluation.representations import layer_cushions

    return {
        name: summary(layer_cushions(model, name, images).double().numpy())
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }


def initialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer's parameters reset (torch's default init)."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return fresh.eval()


def pgd(eps255: float, steps: int, seed: int) -> Any:
    """ℓ∞ PGD of radius ε = eps255/255, ``steps`` steps of 2.5·ε/steps, no random start."""
    from robustcompress import attacks

    eps = eps255 / 255
    return attacks.get("pgd", seed=seed, eps=eps, steps=steps, alpha=2.5 * eps / steps)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    from robustcompress.attacks.ops import predict

    hits = sum(
        int((predict(model, x[i : i + batch]) == y[i : i + batch]).sum())
        for i in range(0, len(y), batch)
    )
    return hits / max(1, len(y))


def rank_at(ratios: torch.Tensor, level: float) -> int:
    """The smallest r whose variance ratio reaches ``level``."""
    return int(torch.searchsorted(ratios, torch.tensor(level, dtype=ratios.dtype))) + 1


def minimum_rhos(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, Any]:
    """``min_rho/<attack>`` of the module docstring on the correctly classified inputs of
    ``(x, y)`` (at least one must be)."""
    from robustcompress import attacks
    from robustcompress.evaluation.min_perturbation import minimal_attack_rho, minimum_budget

    out: dict[str, Any] = {}
    for name in ("bim", "bim_ll"):

        def budgeted(eps: float, name: str = name) -> Any:
            return attacks.get(name, seed=seed, eps=eps, steps=RHO_STEPS, alpha=eps / 4)

        found = minimum_budget(
            model,
            x,
            y,
            budgeted,
            *RHO_BRACKET,
            iterations=7,
        )
        out[f"min_rho/{name}"] = {
            "eps": found.eps,
            "rate": found.rate,
            "rho": found.rho_mean,
            "n": found.n,
        }
    rho, rate, n = minimal_attack_rho(model, x, y, attacks.get("deepfool", seed=seed))
    out["min_rho/deepfool"] = {"eps": math.nan, "rate": rate, "rho": rho, "n": n}
    return out


def measure_model(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    check: FinalCheck,
    source: nn.Module | None = None,
    init_cushions: bool = False,
) -> dict[str, Any]:
    """Every measurement of the module docstring on one model (CPU); ``source``: the
    model the transferred attacks are computed on (none: no transfer rows)."""
    from robustcompress import attacks
    from robustcompress.evaluation.hybrid import HybridModel, recovered_share
    from robustcompress.evaluation.representations import (
        perturbation_ratios,
        representations,
        variance_ratios,
    )

    clock = time.perf_counter()
    model.eval()
    out: dict[str, Any] = {
        "accuracy/train": accuracy(model, *train),
        "accuracy/test": accuracy(model, *test),
    }
    x_rep = test[0][: check.rep_size]
    for position in POSITIONS:
        ratios = variance_ratios(representations(model, position, x_rep))
        out[f"variance/{position}"] = [float(v) for v in ratios[:CURVE]]
        for level in RANK_LEVELS:
            out[f"rank/{position}/{level:g}"] = rank_at(ratios, level)
    for p in check.noise:
        noise = attacks.get("noise", seed=check.seed, p=p)
        x_noisy = torch.cat(
            [
                noise(model, test[0][i : i + 1000], test[1][i : i + 1000])
                for i in range(0, len(test[1]), 1000)
            ]
        )
        out[f"noise/{p:g}"] = accuracy(model, x_noisy, test[1])
    out["cushion"] = cushions(model, x_rep)
    if init_cushions:
        out["cushion_init"] = cushions(initialised(model, check.seed), x_rep)

    x, y = test[0][: check.attack_size], test[1][: check.attack_size]
    adversarial: dict[str, torch.Tensor] = {}
    for eps255 in check.radii:
        for steps in check.steps:
            key = f"{eps255:g}/{steps}"
            x_adv = pgd(eps255, steps, check.seed)(model, x, y)
            out[f"pgd/{key}"] = accuracy(model, x_adv, y)
            if (eps255, steps) == PERTURBATION_ATTACK:
                adversarial["white-box"] = x_adv
            if source is not None and steps in check.transfer_steps:
                x_tr = pgd(eps255, steps, check.seed)(source.eval(), x, y)
                out[f"transfer/{key}"] = accuracy(model, x_tr, y)
                if (eps255, steps) == PERTURBATION_ATTACK:
                    adversarial["transfer"] = x_tr
    if "white-box" in adversarial:
        for position in POSITIONS:
            rho_in, rho_rep = perturbation_ratios(model, position, x, adversarial["white-box"])
            out[f"perturbation/{position}"] = {
                "rho_in": float(rho_in.mean()),
                "rho_rep": float(rho_rep.mean()),
                "ratio": float((rho_rep / rho_in.clamp(min=1e-12)).mean()),
            }

    xr, yr = test[0][: check.rho_size], test[1][: check.rho_size]
    if accuracy(model, xr, yr) == 0:  # nothing to attack: a broken model, no ρ
        for name in ("bim", "bim_ll", "deepfool"):
            out[f"min_rho/{name}"] = {"eps": math.nan, "rate": math.nan, "rho": math.nan, "n": 0}
    else:
        out.update(minimum_rhos(model, xr, yr, check.seed))

    for position in POSITIONS:
        features = representations(model, position, train[0])
        dims: list[int | None] = [None, *(k for k in check.pca if k < features.shape[1])]
        plain = None
        for k in dims:
            hybrid = HybridModel.fit(
                model, position, *train, components=k, seed=check.seed, features=features
            )
            out[f"hybrid/{position}/{k or 'all'}"] = hybrid.accuracy(*test)
            plain = plain or hybrid
        assert plain is not None
        for attack, x_adv in adversarial.items():
            share, fooled = recovered_share(plain, x_adv, y)
            out[f"recovered/{position}/{attack}"] = {"share": share, "fooled": fooled}
    out["seconds"] = round(time.perf_counter() - clock, 2)
    return out


def _job(job: tuple[str, str, FinalCheck, str | None, bool, str]) -> None:
    """Measure one final model and write the result (runs in a worker)."""
    from robustcompress.data import load_dataset
    from robustcompress.training import load_model

    path, dataset, check, source_path, init, out = job
    model = load_model(path)
    source = load_model(source_path) if source_path else None
    train = load_dataset(dataset, "train", limit=check.train_size, seed=check.seed)
    test = load_dataset(dataset, "test", limit=check.test_size, seed=check.seed)
    payload = measure_model(
        model,
        (train.images, train.labels),
        (test.images, test.labels),
        check,
        source=source,
        init_cushions=init,
    )
    payload["check"] = asdict(check)
    write_json_atomic(Path(out), json.loads(json.dumps(payload)))


def measure_final(m: Measurement) -> dict[str, Any]:
    """The ``measure`` step of the recipe: every finished run's final model, cached;
    returns ``{"final": [row, …]}`` for the manifest (model, method, seed, run_dir,
    transfer source and the measurements). Transfer attacks come from the ``n-lr`` run
    of the next seed (a separately trained network; none with one seed)."""
    import os

    finished = m.finished()
    natural = {(p.model, p.seed): d for p, d in finished if p.method == "n-lr"}
    cache = m.directory / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[dict[str, Any], Path]] = []
    todo = []
    for p, run_dir in finished:
        check = m.profile.settings[p.model].check
        seeds = sorted(s for (model, s) in natural if model == p.model)
        source_seed = seeds[(seeds.index(p.seed) + 1) % len(seeds)] if p.seed in seeds else p.seed
        source = natural.get((p.model, source_seed)) if source_seed != p.seed else None
        tag = hashlib.sha256(f"{check.tag()}{source}".encode()).hexdigest()[:10]
        out = cache / f"{run_dir.name}-{tag}.json"
        row = {
            "model": p.model,
            "method": p.method,
            "seed": p.seed,
            "run_dir": os.path.relpath(run_dir, m.directory),
            "transfer_from": source_seed if source is not None else None,
        }
        rows.append((row, out))
        if not out.exists():
            todo.append(
                (
                    str(run_dir),
                    p.dataset,
                    check,
                    str(source) if source is not None else None,
                    p.method == "n-lr",
                    str(out),
                )
            )
    if todo and m.log is not None:
        m.log(f"measuring {len(todo)} final model(s) (ranks, noise, cushions, PGD, ρ, hybrids)")
    names = [Path(job[-1]).stem.rsplit("-", 1)[0] for job in todo]
    run_jobs(_job, todo, "measurement", m.executor, m.log, names)
    return {"final": [{**row, **read_json(out)} for row, out in rows]}

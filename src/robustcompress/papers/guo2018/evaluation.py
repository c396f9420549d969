"""Every model a Guo et al. 2018 run kept, measured once on the test set.

A pruning run keeps ``rounds + 1`` models (``rounds/round-RR``: round 0 is the dense
reference), its control keeps one per epoch (``snapshots/epoch-EEE``: the listed
epochs are measured), and an activation-ℓ1 run its final model. Each is measured by
:func:`measure_model`:

``accuracy``
    clean accuracy on the test set (the whole set unless the check limits it);
``weight_sparsity``
    the share of exact zeros over every weight matrix and convolution kernel;
``activation_sparsity``
    the share of zeros entering the last linear layer over the same inputs (Table 1's
    "Sparsity (a)"; every input of a linear model's last layer is a pixel);
``r_inf/fgsm``, ``r_inf/rfgsm``
    Guo et al.'s r∞ (eq. 5): accuracy on FGS and rFGS examples at ε (0.1) over the same
    inputs, labels as given;
``r2/deepfool``, ``r2/cw``
    Guo et al.'s r2 (eq. 1 and 5): ``E[1(y = ŷ)·‖x̃ − x‖₂]`` over the first
    ``l2_size`` (DeepFool) or ``cw_size`` (C&W) inputs, misclassified inputs counting
    0 (:func:`~robustcompress.evaluation.expected_correct_distance`). Beside it,
    ``r2_correct/<attack>`` is the mean over the correctly classified inputs only
    (about ``r2 / accuracy``) and ``failed/<attack>`` counts the correctly classified
    inputs the attack did not fool: they have no distance and are left out of both;
``clever/l2``, ``clever/linf``
    the mean untargeted CLEVER score (:func:`~robustcompress.evaluation.clever_scores`)
    of the first ``clever_size`` correctly classified inputs, for the rounds in
    ``clever_rounds`` only (the estimate costs ``(K − 1)·N_b·N_s`` gradients per input).

The results are cached per model file in ``<reproduction>/snapshots/``, keyed by the
check's settings, so a second ``reproduce`` reuses them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustcompress.experiments.recipes import Measurement, PlannedRun, run_jobs
from robustcompress.experiments.store import read_json, write_json_atomic

CACHE_DIR = "snapshots"


@dataclass(frozen=True)
class SnapshotCheck:
    """How every kept model of one model family is measured (see the module docstring).

    ``linf_size``: inputs of the accuracy, sparsity and r∞ measurements (``None``: the
    whole test set); ``l2_size`` / ``cw_size``: the first inputs of the same seeded
    order attacked by DeepFool / C&W; C&W takes ``cw_steps`` Adam steps of
    ``cw_learning_rate`` per constant and ``cw_search_steps`` constants of its binary
    search from ``cw_initial_const`` (the defaults fool every correctly classified input
    of the LeNets and linear models we tried in 100 steps, where the attack's own
    defaults, lr 0.01 from c = 10⁻³, need its full 9 × 1,000); ``clever_*``: inputs,
    rounds and the sampling budget ``N_b × N_s`` of CLEVER (radius 5 in ℓ2, 0.5 in ℓ∞,
    Weng et al.'s MNIST settings); ``control_epochs``: the epochs of the control's
    snapshots to measure.
    """

    eps: float = 0.1
    linf_size: int | None = None
    l2_size: int = 1000
    cw_size: int = 100
    cw_steps: int = 100
    cw_search_steps: int = 5
    cw_learning_rate: float = 0.1
    cw_initial_const: float = 1.0
    clever_size: int = 10
    clever_rounds: tuple[int, ...] = (0, 4, 8, 12, 16)
    clever_batches: int = 20
    clever_samples: int = 64
    control_epochs: tuple[int, ...] = (1, 4, 8, 16)
    seed: int = 0

    def tag(self) -> str:
        """A short hash of the settings: the cache files' key."""
        import hashlib

        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def weight_sparsity(model: nn.Module) -> float:
    """The share of exact zeros over every weight matrix and convolution kernel."""
    from robustcompress.models import weight_matrices

    zeros = total = 0
    for w in weight_matrices(model):
        zeros += int((w.parameter == 0).sum())
        total += w.parameter.numel()
    return zeros / total if total else math.nan


def _r2(
    attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor
) -> dict[str, float]:
    """Guo et al.'s r2 of one minimal-perturbation attack on ``(x, y)``."""
    from robustcompress.evaluation import expected_correct_distance

    x_adv = attack(model, x, y)
    with torch.no_grad():
        fooled = model(x_adv).argmax(dim=1) != pred
    d = (x_adv - x).flatten(1).norm(dim=1)
    correct = pred == y
    found = correct & fooled
    kept = ~(correct & ~fooled)  # an input the attack failed on has no distance
    r2 = (
        expected_correct_distance(d[kept].numpy(), pred[kept].numpy(), y[kept].numpy())
        if bool(found.any())
        else math.nan  # no correctly classified input has a distance
    )
    return {
        "r2": r2,
        "r2_correct": float(d[found].mean()) if bool(found.any()) else math.nan,
        "failed": int((correct & ~fooled).sum()),
        "correct": int(correct.sum()),
    }


def measure_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, check: SnapshotCheck, clever: bool
) -> dict[str, Any]:
    """Every measurement of the module docstring on one model (eval mode, CPU)."""
    from robustcompress import attacks
    from robustcompress.evaluation import clever_scores
    from robustcompress.training.trackers import last_linear_input_sparsity

    model.eval()
    out: dict[str, Any] = {}
    clock = time.perf_counter()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 1000]).argmax(dim=1) for i in range(0, len(x), 1000)])
    out["n"] = len(y)
    out["accuracy"] = float((pred == y).double().mean())
    out["weight_sparsity"] = weight_sparsity(model)
    out["activation_sparsity"] = last_linear_input_sparsity(model, x)
    for name in ("fgsm", "rfgsm"):
        attack = attacks.get(name, eps=check.eps, seed=check.seed)
        x_adv = attack(model, x, y)
        with torch.no_grad():
            adv = torch.cat(
                [model(x_adv[i : i + 1000]).argmax(dim=1) for i in range(0, len(x), 1000)]
            )
        out[f"r_inf/{name}"] = float((adv == y).double().mean())
    minimal = {
        "deepfool": (attacks.get("deepfool"), check.l2_size),
        "cw": (
            attacks.get(
                "cw_l2",
                steps=check.cw_steps,
                search_steps=check.cw_search_steps,
                learning_rate=check.cw_learning_rate,
                initial_const=check.cw_initial_const,
                seed=check.seed,
            ),
            check.cw_size,
        ),
    }
    for name, (attack, size) in minimal.items():
        n = min(size, len(y))
        result = _r2(attack, model, x[:n], y[:n], pred[:n])
        out[f"r2/{name}"] = result["r2"]
        out[f"r2_correct/{name}"] = result["r2_correct"]
        out[f"failed/{name}"] = result["failed"]
        out[f"n/{name}"] = n
    if clever:
        correct = (pred == y).nonzero().flatten()[: check.clever_size]
        for norm, radius in (("l2", 5.0), ("linf", 0.5)):
            scores = clever_scores(
                model,
                x[correct],
                norm=norm,
                radius=radius,
                batches=check.clever_batches,
                samples=check.clever_samples,
                seed=check.seed,
            )
            out[f"clever/{norm}"] = float(sum(r.score for r in scores) / len(scores))
        out["n/clever"] = len(correct)
    out["seconds"] = round(time.perf_counter() - clock, 2)
    return out


def kept_models(p: PlannedRun, run_dir: Path, check: SnapshotCheck) -> list[tuple[str, Path]]:
    """``(point, file)`` of every model of run ``p`` to measure: the rounds of a pruning
    run, the listed epochs of the control, the final model of any other fine-tuning."""
    if p.method == "pruned":
        return [(f.stem, f) for f in sorted((run_dir / "rounds").glob("round-*.safetensors"))]
    if p.method == "continued":
        files = sorted((run_dir / "snapshots").glob("epoch-*.safetensors"))
        wanted = set(check.control_epochs)
        return [(f.stem, f) for f in files if int(f.stem.split("-")[1]) in wanted]
    if p.starts_from is not None:
        return [("final", run_dir)]
    return []  # the dense reference is round 0 of its pruning run


def _point_number(point: str) -> int | None:
    return int(point.split("-")[1]) if "-" in point else None


def _job(job: tuple[str, str, SnapshotCheck, bool, str]) -> None:
    """Measure one kept model and write the result (runs in a worker)."""
    from robustcompress.data import load_dataset
    from robustcompress.training import load_model

    path, dataset, check, clever, out = job
    model = load_model(path)
    test = load_dataset(dataset, "test", limit=check.linf_size, seed=check.seed)
    payload = measure_model(model, test.images, test.labels, check, clever)
    payload["check"] = asdict(check)
    write_json_atomic(Path(out), json.loads(json.dumps(payload)))


def measure_snapshots(m: Measurement) -> dict[str, Any]:
    """The ``measure`` step of the recipe: every kept model of every finished run,
    cached; returns ``{"snapshots": [row, …]}`` for the manifest (a row per model:
    model, method, seed, point, round or epoch, run_dir, and the measurements)."""
    import os

    cache = m.directory / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[dict[str, Any], Path]] = []
    todo = []
    for p, run_dir in m.finished():
        check = m.profile.settings[p.model].evaluation
        for point, path in kept_models(p, run_dir, check):
            number = _point_number(point)
            clever = p.method == "pruned" and number in check.clever_rounds
            out = cache / f"{run_dir.name}-{point}-{check.tag()}.json"
            row = {
                "model": p.model,
                "method": p.method,
                "seed": p.seed,
                "point": point,
                "round": number if p.method == "pruned" else None,
                "epoch": number if p.method == "continued" else None,
                "run_dir": os.path.relpath(run_dir, m.directory),
            }
            rows.append((row, out))
            if not out.exists():
                todo.append((str(path), p.dataset, check, clever, str(out)))
    if todo and m.log is not None:
        m.log(f"measuring {len(todo)} kept model(s) (r_inf, r2, sparsity, CLEVER)")
    names = [Path(job[-1]).stem.rsplit("-", 1)[0] for job in todo]
    run_jobs(_job, todo, "measurement", m.executor, m.log, names)
    return {"snapshots": [{**row, **read_json(out)} for row, out in rows]}

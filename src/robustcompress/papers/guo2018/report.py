"""The report of the Guo et al. 2018 reproduction: sparsity curves, Table 1, CLEVER, claims.

Everything here is computed from the manifest's ``snapshots`` rows (one per kept model:
:mod:`robustcompress.papers.guo2018.evaluation`). The claims (§4 of the paper), each
a set of comparisons paired by seed and Holm-corrected within the claim
(:mod:`robustcompress.reporting.claims`):

``linear-rinf``
    Linear models: r∞ (FGS, rFGS) is higher after pruning rounds 1, 2, 4 and 8 than
    in the dense model (round 0), for the rounds whose clean accuracy is within 1
    point of the dense model's ("until accuracy degrades").
``linear-r2``
    Linear models: r2 (DeepFool, C&W) is *lower* at the same rounds ("stays level or
    falls slightly, from the first round"): supported means it falls, inconclusive is
    consistent with level, not supported means it rises.
``dnn-rise``
    LeNets: all four measures are higher at rounds 1, 2, 4, 8 (within the accuracy
    range) than at round 0.
``rise-vs-control``
    The same rises measured against the control instead of the dense model: at each
    of those rounds the control was measured at (within the accuracy range), r∞ (all
    models) and r2 (LeNets) are higher than the control's after the same retraining
    epochs without pruning, so the effect is the pruning's, not the extra training's.
``dnn-fall``
    LeNets ("avoid over-pruning"): all four are lower at the last round than at round 8.
``dnn-r2-early``
    LeNets: r2 falls before clean accuracy does: at the last round whose accuracy is
    within 1 point of the dense model's (R), r2 is lower than at round ⌊R/2⌋.
``activation``
    LeNets (Table 1): each activation-ℓ1 strength raises r∞ (FGS) and r2 (DeepFool)
    against the control retrained for the same epochs without the penalty.
``clever``
    CLEVER moves with r2: per seed, the Spearman correlation over the measured rounds
    between the mean ℓ2 CLEVER score and r2 (DeepFool) is positive (tested against 0).

The rounds compared are fixed in advance; only R comes from the data (from clean
accuracy, never from the measure being tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustcompress.reporting.claims import ClaimSpec, ComparisonSpec, evaluate_claim
from robustcompress.reporting.figures import (
    METHOD_COLORS,
    Line,
    Panel,
    SavedFigure,
    line_figure,
    save_figure,
)
from robustcompress.reporting.loading import ReportSource, seed_values
from robustcompress.reporting.sections import ReportPlan
from robustcompress.reporting.tables import Table, mean_std, mean_std_cell

PAPER = (
    "Guo, Zhang, Zhang & Chen (2018), Sparse DNNs with improved adversarial robustness, "
    "NeurIPS 2018"
)

MODELS = ("logistic_regression", "softmax_regression", "lenet300100", "lenet5")
LINEAR = ("logistic_regression", "softmax_regression")
DNNS = ("lenet300100", "lenet5")
TITLES = {
    "logistic_regression": "binary linear classifier, 1 vs 7 (Figure 1, top)",
    "softmax_regression": "softmax regression, MNIST (Figure 1, bottom)",
    "lenet300100": "LeNet-300-100, MNIST (Figure 2 a-b)",
    "lenet5": "LeNet-5, MNIST (Figure 2 c-d)",
}

MEASURES = ("r_inf/fgsm", "r_inf/rfgsm", "r2/deepfool", "r2/cw")
LABELS = {
    "accuracy": "clean accuracy",
    "weight_sparsity": "weight sparsity",
    "activation_sparsity": "activation sparsity (a)",
    "r_inf/fgsm": "r∞ FGS",
    "r_inf/rfgsm": "r∞ rFGS",
    "r2/deepfool": "r2 DeepFool",
    "r2/cw": "r2 C&W",
    "clever/l2": "CLEVER ℓ2",
    "clever/linf": "CLEVER ℓ∞",
}

PAPER_ACCURACY = {
    "logistic_regression": 0.9917,
    "softmax_regression": 0.9226,
    "lenet300100": 0.9820,
    "lenet5": 0.9911,
}
"""The dense references' test accuracies (§4.1, §4.2)."""

PAPER_FIRST_ROUND = {"r2/deepfool": (2.0103, 2.0009), "r2/cw": (2.3151, 2.3061)}
"""The binary classifier's r2 before and after the first pruning round (§4.1)."""

PAPER_TABLE1: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "lenet300100": (
        (0.2862, 1.3213, 0.9820, 0.4525),
        (0.3993, 1.5903, 0.9827, 0.7592),
        (0.2098, 1.1440, 0.9796, 0.9522),
    ),
    "lenet5": (
        (0.7388, 2.7831, 0.9911, 0.5126),
        (0.7729, 3.1688, 0.9919, 0.9754),
        (0.6741, 2.0799, 0.9910, 0.9964),
    ),
}
"""Table 1: (r∞ FGS, r2 DeepFool, accuracy, activation sparsity) of the unregularized
model and two ℓ1 strengths (the paper gives no λ)."""

COMPARED_ROUNDS = (1, 2, 4, 8)
ACCURACY_DROP = 0.01

Rows = dict[str, dict[int, dict[str, Any]]]
"""``{point: {seed: snapshot row}}`` of one model and method."""


def snapshot_rows(source: ReportSource, model: str, method: str) -> Rows:
    """The manifest's measurements of ``model``'s ``method`` by point and seed."""
    out: Rows = {}
    for row in source.manifest.get("snapshots") or []:
        if row.get("model") == model and row.get("method") == method:
            out.setdefault(str(row["point"]), {})[int(row["seed"])] = row
    return dict(sorted(out.items()))


def values(rows: Rows, point: str, key: str) -> dict[int, float]:
    """``{seed: value}`` of one measure at one point (finite values only)."""
    return seed_values(rows, point, key)


def round_name(r: int) -> str:
    return f"round-{r:02d}"


def epoch_name(e: int) -> str:
    return f"epoch-{e:03d}"


def rounds_of(rows: Rows) -> list[int]:
    return sorted(int(p.split("-")[1]) for p in rows if p.startswith("round-"))


def accuracy_range(rows: Rows) -> int:
    """R: the last round up to which every round's mean clean accuracy stays within
    :data:`ACCURACY_DROP` of the dense model's (round 0)."""
    rounds = rounds_of(rows)
    if not rounds:
        return 0
    dense = _mean(values(rows, round_name(0), "accuracy"))
    last = 0
    for r in rounds:
        if _mean(values(rows, round_name(r), "accuracy")) < dense - ACCURACY_DROP:
            break
        last = r
    return last


CLASSES = {"logistic_regression": 2}
"""Classes of each model's task (10 unless listed)."""


def near_chance(model: str, accuracy: float, n: int) -> bool:
    """The project's near-chance rule (:func:`robustcompress.evaluation.masking.near_chance`)
    on a mean clean accuracy over ``n`` test images."""
    from robustcompress.evaluation.masking import near_chance as rule

    return rule(accuracy, round(accuracy * n), CLASSES.get(model, 10))


def _mean(v: Mapping[int, float]) -> float:
    return float(np.mean(list(v.values()))) if v else math.nan


def _cell(v: Mapping[int, float], digits: int = 4, percent: bool = False) -> str:
    if not percent:
        return mean_std_cell(v, digits)
    mean, std, n = mean_std(list(v.values()))
    return "—" if n == 0 else f"{100.0 * mean:.2f} ± {100.0 * std:.2f} %"


# ---------------------------------------------------------------- tables


def curve_table(source: ReportSource, model: str) -> Table | None:
    """One row per pruning round (and per measured control epoch): sparsity, accuracy
    and the four robustness measures, mean ± std over seeds."""
    pruned = snapshot_rows(source, model, "pruned")
    if not pruned:
        return None
    control = snapshot_rows(source, model, "continued")
    keys = ["weight_sparsity", "accuracy", *MEASURES]
    rows = []
    for r in rounds_of(pruned):
        point = round_name(r)
        seeds = len(pruned[point])
        chance = near_chance(model, _mean(values(pruned, point, "accuracy")), _sizes(pruned)[0])
        rows.append(
            [f"round {r}" + (" (near chance)" if chance else ""), str(seeds)]
            + [_cell(values(pruned, point, k), percent=k == "weight_sparsity") for k in keys]
        )
    for point in control:
        seeds = len(control[point])
        rows.append(
            [f"control, epoch {int(point.split('-')[1])}", str(seeds)]
            + [_cell(values(control, point, k), percent=k == "weight_sparsity") for k in keys]
        )
    n_linf, n_df, n_cw = _sizes(pruned)
    return Table(
        f"{model}-curve",
        f"{model}: robustness against weight sparsity — {TITLES.get(model, model)}",
        ["point", "seeds", *(LABELS[k] for k in keys)],
        rows,
        caption=(
            "Round r of progressive pruning: 1/3 of each weight tensor's remaining entries "
            "set to zero, then one epoch of retraining (round 0 is the dense reference). "
            "Control: the dense model retrained for the same epochs without pruning. "
            f"r∞: accuracy under FGS / rFGS at ε = {_eps(pruned):g} on {n_linf} test images; "
            f"r2: E[1(y = ŷ)·‖x̃ − x‖₂] (the paper's eq. 5) with DeepFool on {n_df} and C&W "
            f"on {n_cw} test images. Mean ± sample std over seeds; '(near chance)': mean clean "
            "accuracy ≤ 1/K + 0.1 (or under 30 correct images), a broken model whose r∞ and "
            "r2 are not robustness. Paper: "
            "dense accuracy "
            f"{PAPER_ACCURACY.get(model, math.nan):.4f}"
            + (
                "; first pruning round r2 DeepFool 2.0103 → 2.0009, C&W 2.3151 → 2.3061."
                if model == "logistic_regression"
                else "."
            )
        ),
        notes=_failure_notes(pruned, control),
    )


def _sizes(rows: Rows) -> tuple[int, int, int]:
    first = next(iter(next(iter(rows.values())).values()))
    return int(first.get("n", 0)), int(first.get("n/deepfool", 0)), int(first.get("n/cw", 0))


def _eps(rows: Rows) -> float:
    first = next(iter(next(iter(rows.values())).values()))
    return float((first.get("check") or {}).get("eps", math.nan))


def _failure_notes(*groups: Rows) -> list[str]:
    notes = []
    for rows in groups:
        for point, by_seed in rows.items():
            for seed, row in by_seed.items():
                for attack in ("deepfool", "cw"):
                    failed = row.get(f"failed/{attack}") or 0
                    if failed:
                        notes.append(
                            f"{point} seed {seed}: {attack} failed on {failed} correctly "
                            "classified input(s), left out of its r2."
                        )
    return notes[:20] + ([f"… and {len(notes) - 20} more."] if len(notes) > 20 else [])


def accuracy_table(source: ReportSource, models: Sequence[str]) -> Table:
    """The dense references' clean test accuracy beside the paper's (§4.1, §4.2), with
    the measured plateau: the tracked test accuracy over the reference's last epochs."""
    rows = []
    for model in models:
        dense = snapshot_rows(source, model, "pruned")
        accuracy = values(dense, round_name(0), "accuracy")
        runs = source.runs_of(model, "dense")
        epochs = int((runs[0].config.get("optimizer") or {}).get("epochs", 0)) if runs else 0
        halfway: dict[int, float] = {}
        for run in runs:
            _, tracked = run.series("accuracy")  # the whole test set, every epoch end
            if len(tracked) > 2:
                halfway[run.seed] = float(tracked[len(tracked) // 2])
        rows.append(
            [
                model,
                str(len(accuracy)),
                str(epochs),
                _cell(halfway),
                _cell(accuracy),
                f"{PAPER_ACCURACY[model]:.4f}" if model in PAPER_ACCURACY else "",
            ]
        )
    return Table(
        "dense-accuracy",
        "Dense references: clean test accuracy",
        ["model", "seeds", "epochs", "halfway", "test accuracy", "paper"],
        rows,
        caption=(
            "Test accuracy of the final dense model on the whole test set (round 0 of the "
            "pruning runs) and, tracked on the same images, after half its epochs: equal "
            "values mean the second half of training was on the plateau. Mean ± sample std "
            "over seeds."
        ),
    )


def table1(source: ReportSource, model: str) -> Table | None:
    """Table 1: the dense model, its control and each activation-ℓ1 strength, beside the
    paper's rows (r∞ FGS, r2 DeepFool, accuracy, activation sparsity)."""
    methods = [m for m in source.methods(model) if m.startswith("act-l1-")]
    if not methods:
        return None
    dense = snapshot_rows(source, model, "pruned")
    control = snapshot_rows(source, model, "continued")
    keys = ("r_inf/fgsm", "r2/deepfool", "accuracy", "activation_sparsity")
    paper = PAPER_TABLE1.get(model, ())
    rows = []
    epochs = None
    for m in methods:
        run = source.runs_of(model, m)
        if run:
            epochs = int((run[0].config.get("optimizer") or {}).get("epochs", 0))
    labelled: list[tuple[str, Rows, str]] = [("dense reference", dense, round_name(0))]
    if epochs is not None:
        labelled.append((f"control, {epochs} more epochs", control, epoch_name(epochs)))
    labelled += [
        (source.label(model, m), snapshot_rows(source, model, m), "final") for m in methods
    ]
    for i, (label, rows_, point) in enumerate(labelled):
        cells = [_cell(values(rows_, point, k), percent=k == "activation_sparsity") for k in keys]
        row_paper = (
            paper[0] if i == 0 else (paper[i - 1] if i >= 2 and i - 1 < len(paper) else None)
        )
        paper_cells = (
            [
                f"{row_paper[0]:.4f}",
                f"{row_paper[1]:.4f}",
                f"{100 * row_paper[2]:.2f} %",
                f"{100 * row_paper[3]:.2f} %",
            ]
            if row_paper is not None
            else ["", "", "", ""]
        )
        rows.append([label, str(len(rows_.get(point, {}))), *cells, *paper_cells])
    return Table(
        f"{model}-table-1",
        f"Table 1 ({model}): activation sparsity by an ℓ1 penalty on the activations",
        [
            "model",
            "seeds",
            "r∞ FGS",
            "r2 DeepFool",
            "accuracy",
            "sparsity (a)",
            "paper r∞",
            "paper r2",
            "paper accuracy",
            "paper sparsity (a)",
        ],
        rows,
        caption=(
            "Sparsity (a): the share of zero activations entering the last fully connected "
            "layer, over the test images. The paper's rows are its unregularized model and "
            "two ℓ1 strengths it does not give; ours fine-tune the dense reference with the "
            "penalty, against the control retrained as long without it. Mean ± sample std "
            "over seeds."
        ),
    )


def clever_table(source: ReportSource, model: str) -> Table | None:
    """Mean CLEVER scores (ℓ2, ℓ∞) at the measured rounds, beside r2 and r∞."""
    pruned = snapshot_rows(source, model, "pruned")
    measured = [p for p in pruned if values(pruned, p, "clever/l2")]
    if not measured:
        return None
    keys = ("weight_sparsity", "clever/l2", "r2/deepfool", "clever/linf", "r_inf/fgsm")
    rows = [
        [p.replace("round-", "round "), str(len(values(pruned, p, "clever/l2")))]
        + [_cell(values(pruned, p, k), percent=k == "weight_sparsity") for k in keys]
        for p in measured
    ]
    first = next(iter(pruned[measured[0]].values()))
    check = first.get("check") or {}
    return Table(
        f"{model}-clever",
        f"CLEVER scores of {model} (supplementary Table 3)",
        ["point", "seeds", *(LABELS[k] for k in keys)],
        rows,
        caption=(
            f"Untargeted CLEVER (Weng et al. 2018) of the first {first.get('n/clever')} "
            f"correctly classified test images, averaged, with N_b = "
            f"{check.get('clever_batches')} batches of N_s = {check.get('clever_samples')} "
            "samples in a ball of radius 5 (ℓ2) or 0.5 (ℓ∞); mean ± std over seeds."
        ),
    )


# ---------------------------------------------------------------- figures


def curve_figure(source: ReportSource, model: str) -> Callable[[Path], SavedFigure | None]:
    """A drawing of ``model``'s accuracy and four robustness measures against the round."""

    def draw(directory: Path) -> SavedFigure | None:
        pruned = snapshot_rows(source, model, "pruned")
        if not pruned:
            return None
        control = snapshot_rows(source, model, "continued")
        panels = []
        for key in ("accuracy", *MEASURES):
            lines = [_line("pruned", pruned, key, METHOD_COLORS[0], "-")]
            if control:
                lines.append(_line("control (no pruning)", control, key, METHOD_COLORS[1], "--"))
            panels.append(Panel(LABELS[key], LABELS[key], lines, xlabel="round r / epochs"))
        sparsity = ", ".join(
            f"{r}: {100 * _mean(values(pruned, round_name(r), 'weight_sparsity')):.1f} %"
            for r in rounds_of(pruned)[:: max(1, len(pruned) // 6)]
        )
        fig = line_figure(panels, f"{model}: robustness along progressive pruning", columns=3)
        return save_figure(
            fig,
            directory,
            f"{model}-sparsity",
            f"{model}: r∞ and r2 against weight sparsity",
            "Mean over seeds with a ±1 std band; x is the pruning round (the control: epochs "
            f"of retraining). Weight sparsity by round: {sparsity}.",
        )

    return draw


def _line(label: str, rows: Rows, key: str, color: str, style: str) -> Line:
    xs, mean, low, high = [], [], [], []
    for point in rows:
        v = list(values(rows, point, key).values())
        if not v:
            continue
        m, s, _ = mean_std(v)
        xs.append(int(point.split("-")[1]))
        mean.append(m)
        low.append(m - s)
        high.append(m + s)
    return Line(
        label,
        np.array(xs, dtype=float),
        np.array(mean),
        np.array(low),
        np.array(high),
        color=color,
        linestyle=style,
    )


# ---------------------------------------------------------------- claims


def _lookup(source: ReportSource) -> dict[tuple[str, str, str], dict[int, float]]:
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    keys = ("accuracy", "activation_sparsity", *MEASURES, "clever/l2", "clever/linf")
    for row in source.manifest.get("snapshots") or []:
        point = str(row["point"])
        name = point if point != "final" else str(row["method"])
        for key in keys:
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault((str(row["model"]), name, key), {})[int(row["seed"])] = float(value)
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (average ranks for ties)."""
    from scipy.stats import spearmanr

    if len(a) < 3:
        return math.nan
    return float(spearmanr(a, b).statistic)


def claim_specs(
    source: ReportSource, lookup: dict[tuple[str, str, str], dict[int, float]]
) -> list[ClaimSpec]:
    """The claims of the module docstring, over the models present."""
    models = [m for m in MODELS if snapshot_rows(source, m, "pruned")]
    ranges = {m: accuracy_range(snapshot_rows(source, m, "pruned")) for m in models}
    rounds = {m: rounds_of(snapshot_rows(source, m, "pruned")) for m in models}

    def rise(model_set: Sequence[str], measures: Sequence[str], direction: str) -> tuple:
        return tuple(
            ComparisonSpec(model, round_name(0), round_name(r), key, direction)  # type: ignore[arg-type]
            for model in model_set
            if model in models
            for r in COMPARED_ROUNDS
            if 0 < r <= ranges[model] and r in rounds[model]
            for key in measures
        )

    linear = [m for m in LINEAR if m in models]
    dnns = [m for m in DNNS if m in models]
    fall = tuple(
        ComparisonSpec(model, round_name(8), round_name(rounds[model][-1]), key, "lower")
        for model in dnns
        if 8 in rounds[model] and rounds[model][-1] > 8
        for key in MEASURES
    )
    early = tuple(
        ComparisonSpec(
            model, round_name(ranges[model] // 2), round_name(ranges[model]), key, "lower"
        )
        for model in dnns
        if ranges[model] >= 2
        for key in ("r2/deepfool", "r2/cw")
    )
    control_points = {
        m: {int(p.split("-")[1]) for p in snapshot_rows(source, m, "continued")} for m in models
    }
    controlled = tuple(
        ComparisonSpec(model, epoch_name(r), round_name(r), key, "higher")  # type: ignore[arg-type]
        for model in models
        for r in COMPARED_ROUNDS
        if 0 < r <= ranges[model] and r in rounds[model] and r in control_points[model]
        for key in (MEASURES if model in dnns else ("r_inf/fgsm", "r_inf/rfgsm"))
    )
    activation = []
    for model in dnns:
        for method in (m for m in source.methods(model) if m.startswith("act-l1-")):
            run = source.runs_of(model, method)
            if not run:
                continue
            epochs = int((run[0].config.get("optimizer") or {}).get("epochs", 0))
            for key in ("r_inf/fgsm", "r2/deepfool"):
                activation.append(ComparisonSpec(model, epoch_name(epochs), method, key, "higher"))
    clever = []
    for model in models:
        pruned = snapshot_rows(source, model, "pruned")
        points = [p for p in pruned if values(pruned, p, "clever/l2")]
        for seed in sorted({s for p in points for s in pruned[p]}):
            clever_l2 = [values(pruned, p, "clever/l2").get(seed) for p in points]
            r2 = [values(pruned, p, "r2/deepfool").get(seed) for p in points]
            pairs = [
                (a, b)
                for a, b in zip(clever_l2, r2, strict=True)
                if a is not None and b is not None
            ]
            if len(pairs) >= 3:
                rho = spearman([a for a, _ in pairs], [b for _, b in pairs])
                lookup.setdefault((model, "ρ(CLEVER, r2)", "spearman"), {})[seed] = rho
                lookup.setdefault((model, "zero", "spearman"), {})[seed] = 0.0
        if (model, "zero", "spearman") in lookup:
            clever.append(ComparisonSpec(model, "zero", "ρ(CLEVER, r2)", "spearman", "higher"))
    range_text = ", ".join(f"{m}: R = {ranges[m]}" for m in models)
    return [
        ClaimSpec(
            "linear-rinf",
            "Linear models: r∞ rises with weight sparsity (§4.1, Figure 1)",
            "After pruning rounds 1, 2, 4 and 8 (33 %, 56 %, 80 %, 96 % zero weights), as "
            "far as clean accuracy stays within 1 point of the dense model's, r∞ under FGS "
            f"and rFGS is higher than the dense model's ({range_text}).",
            rise(linear, ("r_inf/fgsm", "r_inf/rfgsm"), "higher"),
        ),
        ClaimSpec(
            "linear-r2",
            "Linear models: r2 stays level or falls slightly, from the first round (§4.1)",
            "At the same rounds r2 under DeepFool and C&W is lower than the dense model's "
            "(supported: it falls; inconclusive: level within the seeds' noise; not "
            "supported: it rises). Paper, binary, first round: DeepFool 2.0103 → 2.0009, "
            "C&W 2.3151 → 2.3061.",
            rise(linear, ("r2/deepfool", "r2/cw"), "lower"),
        ),
        ClaimSpec(
            "dnn-rise",
            "DNNs: r∞ and r2 rise with weight sparsity (§4.2, Figure 2 a-d)",
            "For LeNet-300-100 and LeNet-5, after rounds 1, 2, 4 and 8 (within the accuracy "
            "range) all four measures (r∞ FGS, rFGS; r2 DeepFool, C&W) are higher than the "
            "dense model's.",
            rise(dnns, MEASURES, "higher"),
        ),
        ClaimSpec(
            "rise-vs-control",
            "Pruning, not the retraining, raises robustness (control)",
            "At the rounds the control was measured at (within the accuracy range), r∞ (all "
            "models) and r2 (LeNets) are higher than the control's: the dense model "
            "retrained for the same epochs with the same optimiser and no pruning.",
            controlled,
        ),
        ClaimSpec(
            "dnn-fall",
            "DNNs: over-pruning lowers robustness (§4.2-4.3)",
            "At the last round (99.85 % zero weights) all four measures are lower than at "
            "round 8 (96 %).",
            fall,
        ),
        ClaimSpec(
            "dnn-r2-early",
            "DNNs: r2 falls before clean accuracy does (§4.3)",
            "At the last round R whose clean accuracy is within 1 point of the dense model's, "
            f"r2 (DeepFool, C&W) is lower than at round ⌊R/2⌋ ({range_text}).",
            early,
        ),
        ClaimSpec(
            "activation",
            "Activation sparsity: ℓ1 on activations raises r∞ and r2 (Table 1)",
            "Each activation-ℓ1 strength gives a higher r∞ (FGS) and r2 (DeepFool) than the "
            "dense model retrained as long without the penalty (the paper: true for the "
            "moderate strength, false for the strongest; 'within a range of sparsity').",
            tuple(activation),
        ),
        ClaimSpec(
            "clever",
            "CLEVER moves with r2 (supplementary Table 3)",
            "Per seed, the Spearman correlation over the measured rounds between the mean "
            "ℓ2 CLEVER score and r2 (DeepFool) is positive.",
            tuple(clever),
        ),
    ]


def plan(source: ReportSource) -> ReportPlan:
    """Sparsity curves per model, Table 1, CLEVER and the claims."""
    report = ReportPlan()
    order = [m for m in MODELS if m in source.models()]
    report.intro = [
        f"Reproduction of {PAPER}, §4 on MNIST. Every model a pruning run kept (each "
        "round), its control's epochs and each activation-ℓ1 model were measured once "
        "after training (see the tables' captions).",
    ]
    description = source.manifest.get("profile_description")
    if description:
        report.intro.append(f"Profile {source.profile}: {description}.")
    for model in order:
        report.drawings.append(curve_figure(source, model))
    tables = []
    for model in order:
        tables += [t for t in (curve_table(source, model), clever_table(source, model)) if t]
    tables += [t for model in order if (t := table1(source, model)) is not None]
    report.tables = tables
    report.tables_title = "Robustness along pruning, Table 1 and CLEVER"
    report.accuracy_tables = [accuracy_table(source, order)]
    lookup = _lookup(source)
    specs = [s for s in claim_specs(source, lookup) if s.comparisons]
    report.claims = [evaluate_claim(spec, lookup) for spec in specs]
    return report

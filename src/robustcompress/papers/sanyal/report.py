"""The report of the Sanyal et al. recipe: effective ranks, robustness, noise, cushions,
hybrids and the paper's claims.

Everything comes from the manifest's ``final`` rows (one per final model:
:mod:`robustcompress.papers.sanyal.evaluation`). The claims compare the LR models
(``1-lr``, ``2-lr``) with ``n-lr`` of the same seed, or with each weight-space method,
paired by seed and Holm-corrected within the claim:

``effective-rank``
    the representations at the LR position need fewer directions for 90 % and 99 % of
    their variance (Figure 2): ``pool`` for both LR models, ``layers.5`` for 2-LR;
``clean-accuracy``
    clean test accuracy is at most one point below N-LR's (non-inferiority: the LR
    model's accuracy plus 0.01 is higher);
``robust-vs-nlr``
    white-box PGD accuracy (20 steps, ε = 8 and 16 /255), transferred PGD accuracy
    (ε = 8 /255) and the minimum ρ of BIM, BIM-LL and DeepFool are higher (Tables 1, 3);
``robust-vs-weight-space``
    white-box PGD accuracy (20 steps, ε = 8 /255) is higher than that of each
    weight-space method (nuclear, ℓ1, pruning, spectral normalisation; Table 2);
``noise``
    accuracy under random pixel noise is higher at every p (Table 4);
``cushions``
    the layer cushion of the layer after each LR position is larger (median over the
    test sample; Figure 4c): the classifier for ``pool``, the fourth stage's first
    convolutions for ``layers.5``;
``pca``
    hybrids on 10- and 5-dimensional PCA embeddings of the LR position are more accurate
    (Table 5);
``hybrid-recovers``
    the hybrid without PCA at the LR position classifies correctly a larger share of the
    white-box PGD inputs that fooled the network (Table 6).

A final model at or near chance test accuracy is marked in the tables and left out of
the figures and claims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustcompress.papers.sanyal.evaluation import CUSHION_BINS
from robustcompress.reporting.claims import ClaimSpec, ComparisonSpec, evaluate_claim
from robustcompress.reporting.figures import (
    METHOD_COLORS,
    Line,
    Panel,
    SavedFigure,
    line_figure,
    save_figure,
)
from robustcompress.reporting.loading import ReportSource, final_rows, seed_values
from robustcompress.reporting.sections import ReportPlan
from robustcompress.reporting.tables import Table, mean_std_cell

PAPER = "Robustness via deep low-rank representations (Sanyal et al.)"

LR_METHODS = ("1-lr", "2-lr")
WEIGHT_SPACE = ("nuclear", "l1", "pruned", "sn")
ORDER = ("n-lr", *LR_METHODS, *WEIGHT_SPACE)
POSITION_OF = {"1-lr": ("pool",), "2-lr": ("pool", "layers.5")}
"""The LR positions of each LR model."""
AFTER = {"pool": ("fc",), "layers.5": ("layers.6.conv1", "layers.6.shortcut.0")}
"""The layers that read each LR position's output (their cushions are compared)."""
TOLERANCE = 0.01
"""The clean-accuracy claim's margin: at most one point below N-LR."""

PAPER_NUMBERS = (
    "The paper's ResNet-18 on CIFAR-10 (its Tables 1, 3, 4): white-box PGD accuracy at "
    "8/255 with 7 steps N-LR 1.3 % vs 1-LR 6.6 % and 2-LR 9.0 % (transferred: 21.3 / "
    "60.1 / 64.4 %); minimum rho for 99 % misclassification by DeepFool 0.006 / 0.027 / "
    "0.023 and by iterative FGSM 0.010 / 0.067 / 0.118; accuracy under pixel noise at "
    "p = 1.0 about 26 / 66 / 75 %."
)

Rows = dict[str, dict[int, dict[str, Any]]]
"""``{method: {seed: final row}}`` of one model."""


def near_chance(row: dict[str, Any]) -> bool:
    """Whether a model's clean test accuracy is at most chance (1/10) plus the project's
    margin: its robustness numbers describe a broken model."""
    from robustcompress.evaluation.masking import CHANCE_MARGIN

    acc = row.get("accuracy/test")
    return isinstance(acc, (int, float)) and acc <= 0.1 + CHANCE_MARGIN


def working_rows(source: ReportSource, model: str) -> Rows:
    """:func:`final_rows` without the models at or near chance."""
    return {
        method: {seed: row for seed, row in by_seed.items() if not near_chance(row)}
        for method, by_seed in final_rows(source, model).items()
    }


def methods_of(rows: Rows) -> list[str]:
    """The methods present, in :data:`ORDER` (unknown ones last)."""
    return sorted(rows, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


def value(row: dict[str, Any], key: str) -> float | None:
    """A scalar of a final row: ``key`` itself or ``<entry>.<field>`` (``median`` of a
    cushion entry is its middle quantile; ``plus_tolerance`` is accuracy + TOLERANCE)."""
    if key == "accuracy/test.plus_tolerance":
        acc = value(row, "accuracy/test")
        return None if acc is None else acc + TOLERANCE
    if "." in key and key not in row:
        name, stat = key.rsplit(".", 1)
        part = row.get(name)
        if name.startswith("cushion") and "/" in name:
            kind, layer = name.split("/", 1)
            part = (row.get(kind) or {}).get(layer)
        if not isinstance(part, dict):
            return None
        v = part["quantiles"][2] if stat == "median" and "quantiles" in part else part.get(stat)
    else:
        v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def values(rows: Rows, method: str, key: str) -> dict[int, float]:
    return seed_values(rows, method, key, value)


def _cell(v: dict[int, float], digits: int = 3) -> str:
    return mean_std_cell(v, digits)


# ---------------------------------------------------------------- tables


def _table(
    source: ReportSource,
    model: str,
    key: str,
    title: str,
    columns: Sequence[tuple[str, str]],
    caption: str,
) -> Table | None:
    rows = final_rows(source, model)
    if not rows:
        return None
    working = working_rows(source, model)  # a broken model's numbers stay out of the means
    body, flagged = [], []
    for method in methods_of(rows):
        label = source.label(model, method)
        broken = sorted(seed for seed, row in rows[method].items() if near_chance(row))
        if broken:
            flagged.append(f"{label} (seed {', '.join(map(str, broken))})")
            label += " †"
        body.append(
            [label, str(len(rows[method]))]
            + [
                _cell(values(working, method, k), 1 if k.startswith("rank/") else 3)
                for k, _ in columns
            ]
        )
    note = (
        " † At or near chance accuracy: "
        + "; ".join(flagged)
        + ". Left out of the means and the claims."
        if flagged
        else ""
    )
    return Table(
        f"{model}-{key}",
        f"{model}: {title}",
        ["method", "seeds", *(label for _, label in columns)],
        body,
        caption=caption + note,
    )


def tables(source: ReportSource, model: str) -> list[Table]:
    rows = final_rows(source, model)
    first = next((r for by_seed in rows.values() for r in by_seed.values()), {})
    check = first.get("check") or {}
    radii = check.get("radii") or (8, 16, 32, 64)
    steps = check.get("steps") or (7, 20)
    transfer = check.get("transfer_steps") or (20,)
    noise = check.get("noise") or (0.4, 0.6, 0.8, 1.0)
    pca = check.get("pca") or (50, 20, 10, 5)
    out = [
        _table(
            source,
            model,
            "summary",
            "clean accuracy, effective rank and robustness",
            [
                ("accuracy/test", "clean test accuracy"),
                ("rank/pool/0.9", "rank for 90 % (pool)"),
                ("rank/pool/0.99", "rank for 99 % (pool)"),
                ("rank/layers.5/0.9", "rank for 90 % (stage 3)"),
                ("rank/layers.5/0.99", "rank for 99 % (stage 3)"),
                ("pgd/8/20", "PGD-20 accuracy, 8/255"),
                ("transfer/8/20", "transferred PGD-20, 8/255"),
                ("min_rho/deepfool.rho", "DeepFool ρ"),
            ],
            "Final models, mean ± sample std over seeds. Ranks: the fewest directions "
            "holding 90 % / 99 % of the representations' variance (Σσ²) at the LR positions "
            "('pool': before the classifier; 'stage 3': the fourth stage's input). PGD "
            "accuracy over all inputs of the attack sample; transferred examples come from "
            "the N-LR model of the next seed. " + PAPER_NUMBERS,
        ),
        _table(
            source,
            model,
            "pgd",
            "adversarial accuracy under ℓ∞ PGD (Table 1)",
            [(f"pgd/{r}/{s}", f"white {r}/255, {s} steps") for r in radii for s in steps]
            + [
                (f"transfer/{r}/{s}", f"transfer {r}/255, {s} steps")
                for r in radii
                for s in transfer
            ],
            "Accuracy over all inputs of the attack sample; steps of 2.5·ε/steps from the "
            "clean input; transferred from the N-LR model of the next seed.",
        ),
        _table(
            source,
            model,
            "min-rho",
            "minimum ρ = ‖x_adv − x‖₂ / ‖x‖₂ for 99 % misclassification (Table 3)",
            [
                ("min_rho/bim.rho", "ρ, BIM"),
                ("min_rho/bim.eps", "ε, BIM"),
                ("min_rho/bim_ll.rho", "ρ, BIM-LL"),
                ("min_rho/bim_ll.eps", "ε, BIM-LL"),
                ("min_rho/deepfool.rho", "ρ, DeepFool"),
                ("min_rho/deepfool.rate", "DeepFool success"),
            ],
            "Over the correctly classified inputs of a sample: BIM and BIM-LL at the "
            "smallest ε (bisection) misclassifying 99 % of them, mean ρ there; DeepFool's "
            "own minimal perturbations. The paper's DeepFool ρ on CIFAR-10: N-LR 0.006, "
            "1-LR 0.027, 2-LR 0.023.",
        ),
        _table(
            source,
            model,
            "noise",
            "accuracy under random pixel noise N(0, 128/255) (Table 4)",
            [(f"noise/{p:g}", f"p = {p:g}") for p in noise],
            "Each pixel gets the noise with probability p, then the image is clipped to "
            "[0, 1]. The paper's ResNet-18 on CIFAR-10 at p = 1.0: about 26 % N-LR, 66 % "
            "1-LR, 75 % 2-LR.",
        ),
        _table(
            source,
            model,
            "perturbation",
            "relative perturbation of the representations under white-box PGD (Figure 4b)",
            [
                (f"perturbation/{pos}.{stat}", f"{label}, {name}")
                for pos, name in (("pool", "pool"), ("layers.5", "stage 3"))
                for stat, label in (("rho_rep", "ρ_rep"), ("ratio", "ρ_rep / ρ_in"))
            ]
            + [("perturbation/pool.rho_in", "ρ_in")],
            "ρ_in = ‖x_adv − x‖/‖x‖ and ρ_rep = ‖φ(x_adv) − φ(x)‖/‖φ(x)‖ at each LR "
            "position, means over the attack sample (PGD-20 at 8/255).",
        ),
        _table(
            source,
            model,
            "hybrids",
            "hybrid max-margin models: accuracy by PCA dimension (Table 5)",
            [
                (f"hybrid/{pos}/{k}", f"{name}, {'no PCA' if k == 'all' else f'k = {k}'}")
                for pos, name in (("pool", "pool"), ("layers.5", "stage 3"))
                for k in ("all", *pca)
            ],
            "Standardised representations, optional PCA to k dimensions, then a linear "
            "classifier (SGD on the hinge loss, ℓ2 0.01) fitted on training images; test "
            "accuracy of the network cut at the position followed by that classifier "
            "('stage 3' replaces the fourth stage and the classifier, Table 5b).",
        ),
        _table(
            source,
            model,
            "recovered",
            "hybrids on the adversarial inputs that fooled the network (Table 6)",
            [
                (f"recovered/{pos}/{kind}.share", f"{name}, {kind}")
                for pos, name in (("pool", "pool"), ("layers.5", "stage 3"))
                for kind in ("white-box", "transfer")
            ],
            "Share of the PGD-20 inputs at 8/255 that fooled the network which the "
            "hybrid without PCA classifies correctly; 'transfer': those transferred from "
            "the next seed's N-LR model.",
        ),
        _table(
            source,
            model,
            "cushions",
            "median layer cushion of the layers after the LR positions (Figure 4c)",
            [
                ("cushion/fc.median", "fc"),
                ("cushion/layers.6.conv1.median", "stage 4, conv1"),
                ("cushion_init/fc.median", "fc at initialisation"),
                ("cushion_init/layers.6.conv1.median", "stage 4 conv1 at init."),
            ],
            "μ = ‖W φ‖ / (‖W‖_F ‖φ‖) per test input, median over the sample; the "
            "initialisation columns are the N-LR architecture before training.",
        ),
    ]
    return [t for t in out if t is not None]


# ---------------------------------------------------------------- figures


def _mean_line(label: str, ys: list[np.ndarray], x: np.ndarray, color: str) -> Line:
    n = min(len(y) for y in ys)
    stack = np.array([y[:n] for y in ys], dtype=float)
    return Line(label, x[:n], stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0), color)


def _series_figure(
    source: ReportSource,
    model: str,
    key: str,
    title: str,
    caption: str,
    panels: Sequence[
        tuple[str, str, str, Callable[[dict[str, Any]], np.ndarray | None], np.ndarray]
    ],
) -> Callable[[Path], SavedFigure | None]:
    """One figure, one line per method (mean over working seeds, min–max band) in each
    panel ``(title, xlabel, ylabel, row → y, x)``."""

    def draw(directory: Path) -> SavedFigure | None:
        rows = working_rows(source, model)
        out = []
        for panel_title, xlabel, ylabel, get, x in panels:
            lines = []
            for i, method in enumerate(methods_of(rows)):
                ys = [y for r in rows[method].values() if (y := get(r)) is not None and len(y)]
                if ys:
                    color = METHOD_COLORS[i % len(METHOD_COLORS)]
                    lines.append(_mean_line(source.label(model, method), ys, x, color))
            if lines:
                out.append(Panel(panel_title, ylabel, lines, xlabel=xlabel))
        if not out:
            return None
        fig = line_figure(out, f"{model}: {title}", columns=2)
        return save_figure(fig, directory, f"{model}-{key}", f"{model}: {title}", caption)

    return draw


def _vector(row: dict[str, Any], keys: Sequence[str]) -> np.ndarray | None:
    got = [value(row, k) for k in keys]
    return None if any(v is None for v in got) else np.array(got, dtype=float)


def figures(source: ReportSource, model: str) -> list[Callable[[Path], SavedFigure | None]]:
    rows = final_rows(source, model)
    first = next((r for by_seed in rows.values() for r in by_seed.values()), {})
    check = first.get("check") or {}
    radii = list(check.get("radii") or (8, 16, 32, 64))
    noise = list(check.get("noise") or (0.4, 0.6, 0.8, 1.0))
    layers = list((first.get("cushion") or {}).keys())
    curve = np.arange(1, 201)

    def ratios(position: str) -> Callable[[dict[str, Any]], np.ndarray | None]:
        return lambda r: np.array(r.get(f"variance/{position}") or [], dtype=float)

    def cushion(kind: str) -> Callable[[dict[str, Any]], np.ndarray | None]:
        return lambda r: _vector(r, [f"{kind}/{name}.median" for name in layers])

    def histogram(layer: str) -> Callable[[dict[str, Any]], np.ndarray | None]:
        def get(r: dict[str, Any]) -> np.ndarray | None:
            counts = ((r.get("cushion") or {}).get(layer) or {}).get("log10_counts")
            if not counts:
                return None
            c = np.array(counts, dtype=float)
            return c / max(c.sum(), 1.0)

        return get

    low, high, bins = CUSHION_BINS
    centres = low + (np.arange(int(bins)) + 0.5) * (high - low) / bins

    return [
        _series_figure(
            source,
            model,
            "variance",
            "variance ratio of the representations (Figure 2)",
            "Σ_{i≤r} σ_i² / Σ σ_i² of the test representations against r; mean over "
            "seeds, the band from the lowest to the highest seed.",
            [
                ("before the classifier (pool)", "r", "variance ratio", ratios("pool"), curve),
                ("before the fourth stage", "r", "variance ratio", ratios("layers.5"), curve),
            ],
        ),
        _series_figure(
            source,
            model,
            "robustness",
            "accuracy under attack and noise (Tables 1 and 4)",
            "Left: white-box ℓ∞ PGD (20 steps) and transferred PGD against ε (×255); "
            "right: random pixel noise against the pixel probability p.",
            [
                (
                    "white-box PGD-20",
                    "ε × 255",
                    "accuracy",
                    lambda r: _vector(r, [f"pgd/{e}/20" for e in radii]),
                    np.array(radii, dtype=float),
                ),
                (
                    "transferred PGD-20",
                    "ε × 255",
                    "accuracy",
                    lambda r: _vector(r, [f"transfer/{e}/20" for e in radii]),
                    np.array(radii, dtype=float),
                ),
                (
                    "pixel noise N(0, 128/255)",
                    "p",
                    "accuracy",
                    lambda r: _vector(r, [f"noise/{p:g}" for p in noise]),
                    np.array(noise, dtype=float),
                ),
            ],
        ),
        _series_figure(
            source,
            model,
            "cushions",
            "median layer cushion of every layer (Figure 4c)",
            "Top: median over the test sample of μ = ‖W φ‖ / (‖W‖_F ‖φ‖) by layer (input "
            "to output), trained and (N-LR's architecture) at initialisation. Bottom: "
            "histograms of log₁₀ μ of the two layers that read the LR positions.",
            [
                ("trained", "layer", "median cushion", cushion("cushion"), np.arange(len(layers))),
                (
                    "at initialisation",
                    "layer",
                    "median cushion",
                    cushion("cushion_init"),
                    np.arange(len(layers)),
                ),
                ("fc (reads pool)", "log₁₀ μ", "share of inputs", histogram("fc"), centres),
                (
                    "stage 4, conv1 (reads layers.5)",
                    "log₁₀ μ",
                    "share of inputs",
                    histogram("layers.6.conv1"),
                    centres,
                ),
            ],
        ),
    ]


# ---------------------------------------------------------------- claims


def lookup(
    source: ReportSource, models: Sequence[str]
) -> dict[tuple[str, str, str], dict[int, float]]:
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for model in models:
        rows = working_rows(source, model)
        for spec in claim_specs(source, [model]):
            for c in spec.comparisons:
                # non-inferiority: the baseline at its plain accuracy, the other + margin
                plain = c.metric.replace(".plus_tolerance", "")
                for method, key in ((c.baseline, plain), (c.other, c.metric)):
                    v = values(rows, method, key)
                    if v:
                        out[(model, method, c.metric)] = v
    return out


def claim_specs(source: ReportSource, models: Sequence[str]) -> list[ClaimSpec]:
    def against(
        baselines: Sequence[str], metrics: Callable[[str], Sequence[str]], direction: str
    ) -> tuple[ComparisonSpec, ...]:
        out: list[ComparisonSpec] = []
        for model in models:
            rows = final_rows(source, model)
            for other in LR_METHODS:
                if other not in rows:
                    continue
                for base in baselines:
                    if base in rows:
                        out.extend(
                            ComparisonSpec(model, base, other, k, direction)  # type: ignore[arg-type]
                            for k in metrics(other)
                        )
        return tuple(out)

    def accuracy_against(base: str) -> tuple[ComparisonSpec, ...]:
        return tuple(
            ComparisonSpec(model, base, other, "accuracy/test.plus_tolerance", "higher")
            for model in models
            for other in LR_METHODS
            if {base, other} <= set(final_rows(source, model))
        )

    noise = (0.4, 0.6, 0.8, 1.0)
    return [
        ClaimSpec(
            "effective-rank",
            "LR representations have a much lower effective rank (Figure 2)",
            "At each LR position the test representations need fewer directions for 90 % "
            "and for 99 % of their variance than N-LR's.",
            against(
                ("n-lr",),
                lambda m: [f"rank/{p}/{q}" for p in POSITION_OF[m] for q in ("0.9", "0.99")],
                "lower",
            ),
        ),
        ClaimSpec(
            "clean-accuracy",
            "LR models keep clean accuracy",
            f"The LR model's clean test accuracy is at most {TOLERANCE:g} below N-LR's: "
            f"its accuracy + {TOLERANCE:g} is higher (a non-inferiority test).",
            accuracy_against("n-lr"),
        ),
        ClaimSpec(
            "robust-vs-nlr",
            "LR models are more robust than N-LR (Tables 1, 3)",
            "White-box PGD-20 accuracy at 8 and 16 /255, transferred PGD-20 accuracy at "
            "8/255 and the minimum ρ of BIM, BIM-LL and DeepFool are higher than N-LR's.",
            against(
                ("n-lr",),
                lambda _m: [
                    "pgd/8/20",
                    "pgd/16/20",
                    "transfer/8/20",
                    "min_rho/bim.rho",
                    "min_rho/bim_ll.rho",
                    "min_rho/deepfool.rho",
                ],
                "higher",
            ),
        ),
        ClaimSpec(
            "robust-vs-weight-space",
            "LR models are more robust than weight-space compression (Table 2)",
            "White-box PGD-20 accuracy at 8/255 is higher than that of nuclear-norm and "
            "ℓ1 regularization, magnitude pruning and spectral normalisation.",
            against(WEIGHT_SPACE, lambda _m: ["pgd/8/20"], "higher"),
        ),
        ClaimSpec(
            "noise",
            "LR models are more stable to random pixel noise (Table 4)",
            "Accuracy under N(0, 128/255) pixel noise is higher than N-LR's at every p.",
            against(("n-lr",), lambda _m: [f"noise/{p:g}" for p in noise], "higher"),
        ),
        ClaimSpec(
            "cushions",
            "LR layer cushions shift right (Figure 4c)",
            "The median cushion of the layers reading each LR position is larger than N-LR's.",
            against(
                ("n-lr",),
                lambda m: [f"cushion/{layer}.median" for p in POSITION_OF[m] for layer in AFTER[p]],
                "higher",
            ),
        ),
        ClaimSpec(
            "pca",
            "Low-dimensional PCA embeddings keep accuracy far better (Table 5)",
            "Hybrids on 10- and 5-dimensional PCA embeddings at each LR position are more "
            "accurate than N-LR's.",
            against(
                ("n-lr",),
                lambda m: [f"hybrid/{p}/{k}" for p in POSITION_OF[m] for k in (10, 5)],
                "higher",
            ),
        ),
        ClaimSpec(
            "hybrid-recovers",
            "Hybrid max-margin models recover inputs that fooled the network (Table 6)",
            "The hybrid without PCA at each LR position classifies correctly a larger "
            "share of the white-box PGD-20 inputs (8/255) that fooled the network than "
            "N-LR's hybrid at the same position.",
            against(
                ("n-lr",),
                lambda m: [f"recovered/{p}/white-box.share" for p in POSITION_OF[m]],
                "higher",
            ),
        ),
    ]


def plan(source: ReportSource) -> ReportPlan:
    report = ReportPlan()
    models = [m for m in source.models() if final_rows(source, m)]
    report.intro = [
        f"Reproduction of {PAPER} at CPU scale: every final model measured once after "
        "training (see the tables' captions).",
    ]
    description = source.manifest.get("profile_description")
    if description:
        report.intro.append(f"Profile {source.profile}: {description}.")
    for model in models:
        report.drawings += figures(source, model)
        report.tables += tables(source, model)
    report.tables_title = "Low-rank representations against N-LR and weight-space methods"
    values_ = lookup(source, models)
    specs = [s for s in claim_specs(source, models) if s.comparisons]
    report.claims = [evaluate_claim(spec, values_) for spec in specs]
    return report

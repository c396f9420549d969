"""The report of an AR-strength sweep: GE gaps, distributions, spectra, claims.

Everything is computed from the manifest's ``final`` rows (one per final model:
:mod:`robustcompress.papers.iclr2020.evaluation`). The claims (the submission's §5),
each comparing every AR strength k > 0 with natural training (strength 0) of the same
model, paired by seed and Holm-corrected within the claim:

``train-loss``
    the training loss is higher (AR fits the training set less: Figure 3b);
``ge-gap``
    the loss GE gap (test − training loss) is smaller (Figure 3a), i.e. the test loss
    rises less than the training loss, or falls;
``test-error``
    the test error rate is higher (the accuracy cost, Figure 3b);
``test-loss``
    the test loss is lower (the paper's CIFAR-10/100 observation; on Tiny-ImageNet it
    was not);
``margins``
    the margins concentrate around zero: their standard deviation is smaller on the
    training and on the test set (Figure 4);
``singular-values``
    the standard deviation of the singular values falls in most layers: per seed, the
    share of layers whose std is below the natural model's is above one half, for the
    reshaped kernels and the circular operators (Figures 1a, 5c-d).

A final model at or near chance test accuracy (:func:`near_chance`) is marked in the
table and left out of every claim and of the final-model figures: its small margins and
flat spectra would otherwise read as strong regularization.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustcompress.papers.iclr2020.recipe import strength_of
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
from robustcompress.reporting.tables import Table, mean_std, mean_std_cell

PAPER = (
    "Towards understanding the regularization of adversarial robustness on neural "
    "networks (anonymous ICLR 2020 submission)"
)

PAPER_TABLE3 = {
    4: {"train_acc": 0.9951, "test_acc": 0.8886, "train_loss": 0.014, "test_loss": 0.683},
    8: {"train_acc": 0.9845, "test_acc": 0.8751, "train_loss": 0.043, "test_loss": 0.649},
    16: {"train_acc": 0.9597, "test_acc": 0.8489, "train_loss": 0.105, "test_loss": 0.650},
}
"""ResNet-56 on CIFAR-10 with PGD training at strengths 4, 8, 16 (the paper's Table 3)."""

Rows = dict[str, dict[int, dict[str, Any]]]
"""``{method: {seed: final row}}`` of one model."""

SCALARS = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "loss_gap": "loss GE gap",
    "train_error": "training error",
    "test_error": "test error",
    "error_gap": "error GE gap",
}


def ar_methods(rows: Rows) -> list[str]:
    """The AR methods present, by strength."""
    return sorted(
        (m for m in rows if strength_of(m) is not None), key=lambda m: strength_of(m) or 0
    )


def near_chance(row: dict[str, Any]) -> bool:
    """Whether a final model's test accuracy is at most chance (1/10) plus the project's
    margin (:data:`~robustcompress.evaluation.masking.CHANCE_MARGIN`): its margins,
    losses and robustness describe a broken model, not a regularized one."""
    from robustcompress.evaluation.masking import CHANCE_MARGIN

    error = row.get("test_error")
    return isinstance(error, (int, float)) and 1.0 - error <= 0.1 + CHANCE_MARGIN


def working_rows(source: ReportSource, model: str) -> Rows:
    """:func:`final_rows` without the models at or near chance (:func:`near_chance`): what
    the figures draw and the claims test (the table shows every model, marked)."""
    return {
        method: {seed: row for seed, row in by_seed.items() if not near_chance(row)}
        for method, by_seed in final_rows(source, model).items()
    }


def value(row: dict[str, Any], key: str) -> float | None:
    """A scalar of a final row: ``key`` itself, ``<distribution>.<statistic>`` or
    ``test_accuracy`` (1 − test error)."""
    if key == "test_accuracy":
        error = value(row, "test_error")
        return None if error is None else 1.0 - error
    if "." in key:
        name, stat = key.split(".", 1)
        part = row.get(name)
        v = part.get(stat) if isinstance(part, dict) else None
    else:
        v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _values(rows: Rows, method: str, key: str) -> dict[int, float]:
    return seed_values(rows, method, key, value)


_cell = mean_std_cell


def layer_names(rows: Rows, view: str) -> list[str]:
    first = next((r for by_seed in rows.values() for r in by_seed.values()), {})
    prefix = f"sv_std/{view}/"
    names = [k[len(prefix) :] for k in first if k.startswith(prefix)]
    return sorted(names, key=lambda n: int(n[1:]))


# ---------------------------------------------------------------- tables


def sweep_table(source: ReportSource, model: str) -> Table | None:
    rows = final_rows(source, model)
    if not rows:
        return None
    keys = [
        *SCALARS,
        "margin/train.std",
        "margin/test.std",
        "pgd/8",
        "boundary_distance.median",
    ]
    labels = [
        *SCALARS.values(),
        "margin std (train)",
        "margin std (test)",
        "PGD accuracy, strength 8",
        "median boundary distance",
    ]
    body = []
    flagged = []
    for method in [*ar_methods(rows), *(m for m in rows if strength_of(m) is None)]:
        seeds = len(rows[method])
        broken = sorted(seed for seed, row in rows[method].items() if near_chance(row))
        label = source.label(model, method)
        if broken:
            flagged.append(f"{label} (seed {', '.join(map(str, broken))})")
            label += " †"
        body.append([label, str(seeds)] + [_cell(_values(rows, method, k)) for k in keys])
    note = (
        " † At or near chance accuracy on the test set: "
        + "; ".join(flagged)
        + ". Such a model is broken, not regularized; the claims leave it out."
        if flagged
        else ""
    )
    return Table(
        f"{model}-sweep",
        f"{model}: generalization against AR strength",
        ["method", "seeds", *labels],
        body,
        caption=(
            "Final models, mean ± sample std over seeds. Losses and error rates on the "
            "training and test sets, GE gaps test − training; margins f_y − max_{i≠y} f_i; "
            "PGD accuracy among the correctly classified test inputs of a sample (10 steps "
            "of 2 on the paper's 0–255 scale times the profile's scale); DeepFool distance "
            "to the boundary of the correctly classified inputs. The paper's ResNet-56 on "
            "CIFAR-10 (Table 3), strengths 4 / 8 / 16: training loss 0.014 / 0.043 / 0.105, "
            "test loss 0.683 / 0.649 / 0.650, test accuracy 0.889 / 0.875 / 0.849." + note
        ),
    )


# ---------------------------------------------------------------- figures


def _band_line(label: str, xs: np.ndarray, groups: Sequence[Sequence[float]], i: int) -> Line:
    """A line through the means of ``groups`` (one group of seed values per x) with a
    ±1 sample-std band, in the ``i``-th method colour."""
    stats = [mean_std(list(g))[:2] for g in groups]
    mean = np.array([m for m, _ in stats])
    std = np.array([s for _, s in stats])
    color = METHOD_COLORS[i % len(METHOD_COLORS)]
    return Line(label, xs, mean, mean - std, mean + std, color=color)


def sweep_figure(source: ReportSource, model: str) -> Callable[[Path], SavedFigure | None]:
    """Figures 3a-b and 1c: losses, errors, gaps, margin spread and PGD accuracy
    against AR strength."""

    def draw(directory: Path) -> SavedFigure | None:
        rows = working_rows(source, model)
        methods = ar_methods(rows)
        if len(methods) < 2:
            return None
        xs = np.array([strength_of(m) or 0.0 for m in methods])
        panels = []
        groups = (
            ("losses", (("train_loss", "training"), ("test_loss", "test"))),
            ("error rates", (("train_error", "training"), ("test_error", "test"))),
            ("GE gaps", (("loss_gap", "loss"), ("error_gap", "error"))),
            ("margin std", (("margin/train.std", "training"), ("margin/test.std", "test"))),
            (
                "accuracy trade-off",
                (("test_accuracy", "clean test"), ("pgd/8", "PGD 8, of the correct")),
            ),
        )
        for title, keys in groups:
            lines = []
            for i, (key, label) in enumerate(keys):
                per_seed = [list(_values(rows, m, key).values()) for m in methods]
                lines.append(_band_line(label, xs, per_seed, i))
            panels.append(Panel(title, title, lines, xlabel="AR strength (0–255 scale)"))
        fig = line_figure(panels, f"{model}: AR strength sweep", columns=3)
        return save_figure(
            fig,
            directory,
            f"{model}-sweep",
            f"{model}: losses, errors, GE gaps, margins and PGD accuracy against AR strength",
            "Mean over seeds with a ±1 std band (Figures 3a-b, 1c of the paper).",
        )

    return draw


def course_figure(source: ReportSource, model: str) -> Callable[[Path], SavedFigure | None]:
    """The GE gaps over training (the tracked ``generalization/*`` metrics), one line per
    AR strength: mean over seeds at each tracking event."""

    def draw(directory: Path) -> SavedFigure | None:
        methods = sorted(
            (m for m in source.methods(model) if strength_of(m) is not None),
            key=lambda m: strength_of(m) or 0.0,
        )
        panels = []
        for metric, title in (
            ("generalization/loss_gap", "loss GE gap"),
            ("generalization/error_gap", "error GE gap"),
            ("generalization/train_loss", "training loss"),
            ("generalization/test_loss", "test loss"),
        ):
            lines = []
            for i, method in enumerate(methods):
                series = [r.series(metric) for r in source.runs_of(model, method)]
                series = [(x, y) for x, y in series if len(x)]
                if not series:
                    continue
                n = min(len(x) for x, _ in series)
                ys = np.array([y[:n] for _, y in series])
                lines.append(
                    Line(
                        source.label(model, method),
                        series[0][0][:n],
                        ys.mean(axis=0),
                        ys.min(axis=0),
                        ys.max(axis=0),
                        color=METHOD_COLORS[i % len(METHOD_COLORS)],
                    )
                )
            if lines:
                panels.append(Panel(title, title, lines, xlabel="epoch"))
        if not panels:
            return None
        fig = line_figure(panels, f"{model}: GE gaps over training", columns=2)
        return save_figure(
            fig,
            directory,
            f"{model}-course",
            f"{model}: GE gaps and losses over training by AR strength",
            "Tracked at every epoch end on the whole training data and test split; mean "
            "over seeds, the band from the lowest to the highest seed.",
        )

    return draw


def distributions_figure(source: ReportSource, model: str) -> Callable[[Path], SavedFigure | None]:
    """Figures 4 and 5a-b: histograms of margins (training, test), estimated
    probabilities and losses (test), one line per AR strength (counts summed over seeds)."""
    from robustcompress.papers.iclr2020.evaluation import BINS

    def draw(directory: Path) -> SavedFigure | None:
        rows = working_rows(source, model)
        methods = ar_methods(rows)
        if not methods:
            return None
        panels = []
        for key, kind in (
            ("margin/train", "margin"),
            ("margin/test", "margin"),
            ("probability/test", "probability"),
            ("loss/test", "loss"),
        ):
            low, high, bins = BINS[kind]
            centres = low + (np.arange(bins) + 0.5) * (high - low) / bins
            lines = []
            for i, method in enumerate(methods):
                counts = [
                    np.array(r[key]["counts"], dtype=float)
                    for r in rows[method].values()
                    if isinstance(r.get(key), dict)
                ]
                if not counts:
                    continue
                total = np.sum(counts, axis=0)
                lines.append(
                    Line(
                        source.label(model, method),
                        centres,
                        total / max(total.sum(), 1.0),
                        color=METHOD_COLORS[i % len(METHOD_COLORS)],
                    )
                )
            panels.append(Panel(key, "share of examples", lines, xlabel=kind))
        fig = line_figure(panels, f"{model}: distributions by AR strength", columns=2)
        return save_figure(
            fig,
            directory,
            f"{model}-distributions",
            f"{model}: margins, estimated probabilities and losses by AR strength",
            "Histograms over all seeds' examples (Figures 4, 5a-b of the paper); values "
            "outside the axis range are counted in the end bins.",
        )

    return draw


def spectra_figure(source: ReportSource, model: str) -> Callable[[Path], SavedFigure | None]:
    """Figures 1a and 5c-d: the std of every layer's singular values by AR strength."""

    def draw(directory: Path) -> SavedFigure | None:
        rows = working_rows(source, model)
        methods = ar_methods(rows)
        if not methods:
            return None
        panels = []
        for view in ("reshaped", "circular"):
            names = layer_names(rows, view)
            xs = np.arange(1, len(names) + 1, dtype=float)
            lines = []
            for i, method in enumerate(methods):
                per_seed = [
                    list(_values(rows, method, f"sv_std/{view}/{n}").values()) for n in names
                ]
                lines.append(_band_line(source.label(model, method), xs, per_seed, i))
            panels.append(
                Panel(f"{view} operators", "std of singular values", lines, xlabel="layer")
            )
        fig = line_figure(panels, f"{model}: singular-value spread per layer", columns=2)
        return save_figure(
            fig,
            directory,
            f"{model}-spectra",
            f"{model}: standard deviation of each layer's singular values by AR strength",
            "Mean over seeds with a ±1 std band; a convolution as its reshaped kernel "
            "(left) and as the circular operator on its input grid (right).",
        )

    return draw


# ---------------------------------------------------------------- claims


def _lookup(
    source: ReportSource, models: Sequence[str]
) -> dict[tuple[str, str, str], dict[int, float]]:
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    keys = (*SCALARS, "margin/train.std", "margin/test.std")
    for model in models:
        rows = working_rows(source, model)
        for method in rows:
            for key in keys:
                v = _values(rows, method, key)
                if v:
                    out[(model, method, key)] = v
        natural = rows.get("ar-0", {})
        for method in ar_methods(rows):
            if method == "ar-0":
                continue
            for view in ("reshaped", "circular"):
                names = layer_names(rows, view)
                for seed, row in rows[method].items():
                    base = natural.get(seed)
                    if base is None or not names:
                        continue
                    lower = [
                        (value(row, f"sv_std/{view}/{n}") or math.inf)
                        < (value(base, f"sv_std/{view}/{n}") or -math.inf)
                        for n in names
                    ]
                    out.setdefault((model, method, f"sv_std_fell/{view}"), {})[seed] = float(
                        np.mean(lower)
                    )
                    out.setdefault((model, "half", f"sv_std_fell/{view}"), {})[seed] = 0.5
    return out


def claim_specs(source: ReportSource, models: Sequence[str]) -> list[ClaimSpec]:
    def against_natural(keys: Sequence[str], direction: str) -> tuple[ComparisonSpec, ...]:
        return tuple(
            ComparisonSpec(model, "ar-0", method, key, direction)  # type: ignore[arg-type]
            for model in models
            if "ar-0" in (rows := final_rows(source, model))
            for method in ar_methods(rows)
            if method != "ar-0"
            for key in keys
        )

    spectra = tuple(
        ComparisonSpec(model, "half", method, f"sv_std_fell/{view}", "higher")
        for model in models
        for method in ar_methods(final_rows(source, model))
        if method != "ar-0"
        for view in ("reshaped", "circular")
    )
    return [
        ClaimSpec(
            "train-loss",
            "AR raises the training loss (Figure 3b)",
            "At every AR strength the final training loss is higher than natural training's.",
            against_natural(("train_loss",), "higher"),
        ),
        ClaimSpec(
            "ge-gap",
            "AR shrinks the loss GE gap (Figure 3a)",
            "At every AR strength test − training loss is smaller than natural training's: "
            "the test loss rises less than the training loss, or falls.",
            against_natural(("loss_gap",), "lower"),
        ),
        ClaimSpec(
            "test-error",
            "AR raises the test error (Figure 3b)",
            "At every AR strength the test error rate is higher than natural training's.",
            against_natural(("test_error",), "higher"),
        ),
        ClaimSpec(
            "test-loss",
            "AR lowers the test loss (Figure 3b, CIFAR-10/100)",
            "At every AR strength the test loss is lower than natural training's (the paper "
            "saw this on CIFAR-10/100, not on Tiny-ImageNet).",
            against_natural(("test_loss",), "lower"),
        ),
        ClaimSpec(
            "margins",
            "AR concentrates the margins around zero (Figure 4)",
            "At every AR strength the standard deviation of the margins is smaller than "
            "natural training's, on the training set and on the test set.",
            against_natural(("margin/train.std", "margin/test.std"), "lower"),
        ),
        ClaimSpec(
            "singular-values",
            "AR lowers the spread of singular values in most layers (Figures 1a, 5c-d)",
            "Per seed, the share of layers whose singular values have a smaller standard "
            "deviation than natural training's is above one half (reshaped kernels and "
            "circular operators).",
            spectra,
        ),
    ]


def plan(source: ReportSource) -> ReportPlan:
    report = ReportPlan()
    models = [m for m in source.models() if final_rows(source, m)]
    report.intro = [
        f"Reproduction of {PAPER}, §5 at CPU scale: every final model measured once "
        "after training (see the tables' captions).",
    ]
    description = source.manifest.get("profile_description")
    if description:
        report.intro.append(f"Profile {source.profile}: {description}.")
    for model in models:
        report.drawings += [
            sweep_figure(source, model),
            course_figure(source, model),
            distributions_figure(source, model),
            spectra_figure(source, model),
        ]
    report.tables = [t for m in models if (t := sweep_table(source, m)) is not None]
    report.tables_title = "Generalization against AR strength"
    lookup = _lookup(source, models)
    specs = [s for s in claim_specs(source, models) if s.comparisons]
    report.claims = [evaluate_claim(spec, lookup) for spec in specs]
    return report

"""From runs to figures: what each report figure shows, and the plan of a generic report.

A :class:`FigureRequest` names a kind of figure, a model and the methods to show;
:meth:`FigureMaker.draw` turns it into a :class:`~.figures.SavedFigure` from the runs of
a :class:`~.loading.ReportSource`. The kinds:

``weights``
    the final weights of one matrix W_i (first seed of each method) as image tiles
    on one diverging scale shared by every method of the model (Langenberg et al.
    2019, Figures 1, 6–10);
``structure``
    effective rank r(W_i) = ‖W_i‖_*/‖W_i‖_F (eq. 3) and effective sparsity
    s(W_i) = ‖W_i‖_1/‖W_i‖_F (eq. 2) of every W_i over training (Figures 2 and 5);
``information``
    KDE bounds on I(X; T_i) and I(T_i; Y) of every hidden layer over training
    (Figure 2; lower bound solid, upper bound dashed);
``fooling``
    the fooling ratio of each tracked attack over training (Figures 3–4);
``accuracy``
    clean accuracy over training.

:func:`generic_plan` makes the report of a run, a sweep or a runs root: every kind
for every model, all methods together, no claims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from robustcompress import catalogue
from robustcompress.reporting.claims import ClaimResult
from robustcompress.reporting.figures import (
    METHOD_COLORS,
    WEIGHT_PERCENTILE,
    Line,
    Panel,
    SavedFigure,
    aggregate_series,
    line_figure,
    save_figure,
    symmetric_limit,
    tile_grid,
    weight_figure,
)
from robustcompress.reporting.loading import ReportRun, ReportSource, layers_of
from robustcompress.reporting.tables import (
    Table,
    ensemble_curve_table,
    ensemble_table,
    final_metrics_table,
)

FigureKind = Literal["weights", "structure", "information", "fooling", "accuracy"]

MI_QUANTITIES = (
    ("mi_input", "I(X; T)"),
    ("mi_label", "I(T; Y)"),
)
AXIS_NOTE = (
    "A fine-tuned method's curve continues from the end of the run it starts from "
    "(e.g. adversarial fine-tuning after natural training)."
)


@dataclass(frozen=True)
class FigureRequest:
    """One figure to draw: its kind, model, methods (None: all) and texts."""

    kind: FigureKind
    key: str
    title: str
    model: str
    methods: tuple[str, ...] | None = None
    matrix: str | None = None
    caption: str = ""
    only_conv: bool = False


@dataclass
class ReportPlan:
    """What a report shows besides the run list: figures, tables, claims and masking."""

    figures: list[FigureRequest] = field(default_factory=list)
    accuracy_tables: list[Table] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)
    masking_required: list[tuple[str, str]] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    tables_title: str = "Final fooling ratios and structure"
    """The results record's heading over :attr:`tables`."""
    drawings: list[Callable[[Path], SavedFigure | None]] = field(default_factory=list)
    """Figures a paper draws itself (kinds :class:`FigureRequest` does not have): each
    gets the figures directory and returns its saved figure, or None."""


class FigureMaker:
    """Draws :class:`FigureRequest` s for one source into one directory.

    Keeps the final weights it loaded (one checkpoint per run), the colour of each
    method, and the shared colour limit of each (model, matrix).
    """

    def __init__(self, source: ReportSource, directory: Path) -> None:
        self.source = source
        self.directory = directory
        self._weights: dict[Path, dict[str, np.ndarray]] = {}
        self._limits: dict[tuple[str, str], float] = {}
        self.warnings: list[str] = []

    # ------------------------------------------------------------ helpers

    def color(self, model: str, method: str) -> str:
        methods = self.source.methods(model)
        index = methods.index(method) if method in methods else len(methods)
        return METHOD_COLORS[index % len(METHOD_COLORS)]

    def methods(self, request: FigureRequest) -> list[str]:
        present = [
            m for m in self.source.methods(request.model) if self.source.runs_of(request.model, m)
        ]
        if request.methods is None:
            return present
        return [m for m in request.methods if m in present]

    def x_label(self, runs: Sequence[ReportRun]) -> str:
        return "epoch" if all(r.steps_per_epoch for r in runs) else "step"

    def weights_of(self, run: ReportRun) -> dict[str, np.ndarray]:
        """``{W_i name: weight in its native shape}`` of the run's last checkpoint.

        A run without a readable checkpoint gives ``{}`` and a warning on the page.
        """
        if run.run_dir not in self._weights:
            from robustcompress.errors import RobustCompressError
            from robustcompress.models import weight_matrices
            from robustcompress.training.checkpoint import load_model

            try:
                model = load_model(run.run_dir)
            except RobustCompressError as exc:
                self.warnings.append(f"no weights drawn for {run.run_dir.name}: {exc}")
                self._weights[run.run_dir] = {}
            else:
                self._weights[run.run_dir] = {
                    wm.name: wm.parameter.detach().cpu().numpy() for wm in weight_matrices(model)
                }
        return self._weights[run.run_dir]

    def shared_limit(self, model: str, matrix: str) -> float:
        """±limit of the colour scale of ``matrix``: the 99.5th percentile of |w| pooled
        over the first seed of every method of ``model`` (:func:`.figures.symmetric_limit`)."""
        key = (model, matrix)
        if key not in self._limits:
            arrays = []
            for method in self.source.methods(model):
                runs = self.source.runs_of(model, method)
                if runs and matrix in self.weights_of(runs[0]):
                    arrays.append(self.weights_of(runs[0])[matrix])
            self._limits[key] = symmetric_limit(arrays)
        return self._limits[key]

    def lines(
        self, model: str, methods: Sequence[str], metric: str, layer: str | None = None
    ) -> list[Line]:
        """One line per method: the mean over seeds with a min–max band."""
        out = []
        for method in methods:
            runs = self.source.runs_of(model, method)
            series = [r.series(metric, layer) for r in runs]
            series = [s for s in series if len(s[0])]
            if not series:
                continue
            x, mean, low, high = aggregate_series(series)
            band = len(series) > 1
            out.append(
                Line(
                    self.source.label(model, method),
                    x,
                    mean,
                    low if band else None,
                    high if band else None,
                    color=self.color(model, method),
                )
            )
        return out

    # ------------------------------------------------------------ drawing

    def draw(self, request: FigureRequest) -> SavedFigure | None:
        """The figure of ``request``, or None when its runs hold nothing to draw."""
        methods = self.methods(request)
        if not methods:
            return None
        draw = {
            "weights": self._weights_figure,
            "structure": self._structure_figure,
            "information": self._information_figure,
            "fooling": self._fooling_figure,
            "accuracy": self._accuracy_figure,
        }[request.kind]
        return draw(request, methods)

    def _save(self, fig: Figure, request: FigureRequest, caption: str) -> SavedFigure:
        text = " ".join(t for t in (request.caption, caption) if t)
        return save_figure(fig, self.directory, request.key, request.title, text)

    def _weights_figure(self, request: FigureRequest, methods: list[str]) -> SavedFigure | None:
        from robustcompress.models import model_spec

        matrix = request.matrix or "W1"
        try:
            input_shape: tuple[int, ...] | None = model_spec(request.model).input_shape
        except Exception:  # an unregistered model name: no pixel layout
            input_shape = None
        panels = []
        for method in methods:
            run = self.source.runs_of(request.model, method)[0]
            weights = self.weights_of(run)
            if matrix not in weights or (request.only_conv and weights[matrix].ndim != 4):
                continue
            label = f"{self.source.label(request.model, method)} (seed {run.seed})"
            panels.append((label, tile_grid(weights[matrix], input_shape)))
        if not panels:
            return None
        limit = self.shared_limit(request.model, matrix)
        fig = weight_figure(panels, limit, request.title)
        caption = (
            f"Final {matrix} of the first seed of each method; colour scale ±{limit:.3g} "
            f"(blue negative, red positive; the {WEIGHT_PERCENTILE:g}th percentile of |w| over "
            "every method of "
            "this model, larger weights saturate), shared by every method of this model."
        )
        return self._save(fig, request, caption)

    def _structure_figure(self, request: FigureRequest, methods: list[str]) -> SavedFigure | None:
        runs = [r for m in methods for r in self.source.runs_of(request.model, m)]
        specs = {s.key: s for s in catalogue.list_metrics("structure")}
        measures = [m for m in specs if any(layers_of(r.rows, m) for r in runs)]
        layers = _ordered_layers(runs, measures)
        if not measures or not layers:
            return None
        xlabel = self.x_label(runs)
        panels = [
            Panel(
                f"{specs[measure].label} of {layer}",
                specs[measure].label,
                self.lines(request.model, methods, measure, layer),
                xlabel=xlabel,
            )
            for measure in measures
            for layer in layers
        ]
        columns = len(layers) if len(layers) <= 4 else -(-len(layers) // 2)
        fig = line_figure(panels, request.title, columns=columns)
        caption = f"Mean over seeds; the band spans the seeds' minimum to maximum. {AXIS_NOTE}"
        return self._save(fig, request, caption)

    def _information_figure(self, request: FigureRequest, methods: list[str]) -> SavedFigure | None:
        runs = [r for m in methods for r in self.source.runs_of(request.model, m)]
        layers = _ordered_layers(runs, [f"{q}_lower" for q, _ in MI_QUANTITIES])
        if not layers:
            return None
        xlabel = self.x_label(runs)
        panels = []
        for quantity, symbol in MI_QUANTITIES:
            for i, layer in enumerate(layers, start=1):
                name = layer if layer.startswith("t") else f"t{i} (module {layer})"
                lines = []
                for bound, style in (("lower", "-"), ("upper", "--")):
                    for line in self.lines(request.model, methods, f"{quantity}_{bound}", layer):
                        line.linestyle = style
                        line.low = line.high = None
                        line.legend = bound == "lower"
                        lines.append(line)
                panels.append(
                    Panel(
                        f"{symbol.replace('T', 'T_' + str(i))} at {name}",
                        f"{symbol} (bits)",
                        lines,
                        xlabel=xlabel,
                    )
                )
        fig = line_figure(panels, request.title, columns=len(layers))
        caption = (
            "KDE bounds (Kolchinsky & Tracey 2017, noise variance as recorded by the run): "
            f"solid lines are lower bounds, dashed lines upper bounds; mean over seeds. {AXIS_NOTE}"
        )
        return self._save(fig, request, caption)

    def _fooling_figure(self, request: FigureRequest, methods: list[str]) -> SavedFigure | None:
        runs = [r for m in methods for r in self.source.runs_of(request.model, m)]
        attacks = list(
            dict.fromkeys(
                qualifier
                for r in runs
                for row in r.rows
                for name, qualifier in [catalogue.split_key(str(row.get("metric", "")))]
                if name == catalogue.FOOLING_RATIO and qualifier
            )
        )
        if not attacks:
            return None
        xlabel = self.x_label(runs)
        panels = [
            Panel(
                catalogue.attack_text(catalogue.attack_settings(runs[0].config, attack))
                or attack.upper(),
                "fooling ratio",
                self.lines(request.model, methods, catalogue.fooling_ratio_key(attack)),
                xlabel=xlabel,
                ylim=(-0.02, 1.02),
            )
            for attack in attacks
        ]
        fig = line_figure(panels, request.title)
        caption = (
            "Share of the correctly classified evaluation images whose prediction the attack "
            f"changes; mean over seeds, band from the smallest to the largest seed. {AXIS_NOTE}"
        )
        return self._save(fig, request, caption)

    def _accuracy_figure(self, request: FigureRequest, methods: list[str]) -> SavedFigure | None:
        runs = [r for m in methods for r in self.source.runs_of(request.model, m)]
        lines = self.lines(request.model, methods, "accuracy")
        if not lines:
            return None
        panel = Panel("clean accuracy", "accuracy", lines, xlabel=self.x_label(runs))
        fig = line_figure([panel], request.title, columns=1)
        caption = f"Clean accuracy on the evaluation subset; mean over seeds. {AXIS_NOTE}"
        return self._save(fig, request, caption)


def _ordered_layers(runs: Sequence[ReportRun], metrics: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        for metric in metrics:
            for layer in layers_of(r.rows, metric):
                seen.setdefault(layer, None)
    return sorted(seen, key=_layer_key)


def _layer_key(layer: str) -> tuple[int, str]:
    digits = "".join(ch for ch in layer if ch.isdigit())
    return (int(digits) if digits and layer.lstrip("Wt").isdigit() else 10**9, layer)


def generic_figures(source: ReportSource) -> list[FigureRequest]:
    """Every figure kind for every model, all methods together."""
    figures: list[FigureRequest] = []
    for model in source.models():
        name = model.upper()
        figures += [
            FigureRequest("accuracy", f"{model}-accuracy", f"{name}: clean accuracy", model),
            FigureRequest("fooling", f"{model}-fooling", f"{name}: fooling ratios", model),
            FigureRequest("structure", f"{model}-structure", f"{name}: structure of W_i", model),
            FigureRequest(
                "information", f"{model}-information", f"{name}: mutual information", model
            ),
            FigureRequest("weights", f"{model}-W1", f"{name}: W1", model, matrix="W1"),
            FigureRequest(
                "weights", f"{model}-W2", f"{name}: W2", model, matrix="W2", only_conv=True
            ),
        ]
    return figures


def generic_plan(source: ReportSource) -> ReportPlan:
    """Every figure kind for every model (all methods together), final-metric tables."""
    plan = ReportPlan()
    plan.figures = generic_figures(source)
    for model in source.models():
        plan.tables += final_tables(source, model)
    return plan


def final_tables(source: ReportSource, model: str) -> list[Table]:
    """Tables of final values per method: robustness (accuracy and every tracked
    attack's fooling ratio), structure (every registered structure measure the runs
    recorded, per W_i) and, in a reproduction that measured it, robust accuracy under the
    AutoAttack-style ensemble and its ε-curves. Captions name each attack's settings as
    the runs stored them."""
    metrics = final_metric_names(source, model)
    robustness = [m for m in metrics if catalogue.headline(m)]
    structure = [m for m in metrics if catalogue.is_group(m, "structure")]
    name = model.upper()
    runs = [r for r in source.finished if r.model == model]
    settings = [
        f"{catalogue.column_label(m)}: {text}"
        for m in robustness
        if (label := catalogue.split_key(m)[1]) is not None
        and runs
        and (text := catalogue.attack_text(catalogue.attack_settings(runs[0].config, label)))
    ]
    fooling = catalogue.metric_spec(catalogue.FOOLING_RATIO)
    caption = f"FR: {fooling.description if fooling else 'fooling ratio'}."
    if settings:
        caption += " " + "; ".join(settings) + "."
    tables = [
        final_metrics_table(
            source,
            model,
            robustness,
            key=f"{model}-final-robustness",
            title=f"{name}: final clean accuracy and fooling ratios (FR)",
            caption=caption,
        )
    ]
    if structure:
        specs = [
            spec
            for key in dict.fromkeys(catalogue.split_key(m)[0] for m in structure)
            if (spec := catalogue.metric_spec(key)) is not None
        ]
        tables.append(
            final_metrics_table(
                source,
                model,
                structure,
                key=f"{model}-final-structure",
                title=f"{name}: final structure of each W_i",
                digits=3,
                caption="; ".join(
                    f"{spec.symbol}: {spec.label}" + (f" ({spec.source})" if spec.source else "")
                    for spec in specs
                )
                + ".",
            )
        )
    tables += [t for t in (ensemble_table(source, model), ensemble_curve_table(source, model)) if t]
    return tables


def final_metric_names(source: ReportSource, model: str) -> list[str]:
    """Accuracy, fooling ratios (in tracking order), then every registered structure
    measure of each W_i (catalogue order), as far as the runs of ``model`` recorded them."""
    keys: dict[str, None] = {}
    for r in source.finished:
        if r.model == model:
            keys.update(dict.fromkeys(r.final))
    order = [
        catalogue.ACCURACY,
        *(k for k in keys if catalogue.split_key(k)[0] == catalogue.FOOLING_RATIO),
    ]
    for spec in catalogue.list_metrics("structure"):
        order += [k for k in keys if k == spec.key]  # a measure of the whole model
        order += sorted(
            (k for k in keys if "/" in k and catalogue.split_key(k)[0] == spec.key),
            key=lambda k: _layer_key(k.split("/")[1]),
        )
    return [k for k in order if k in keys]

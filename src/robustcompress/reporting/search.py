"""The report of a search (``robustcompress search``, or ``robustcompress report`` on a
search directory): the Pareto front and the trials behind it.

Read from the search's ``search.json`` alone (Optuna is not needed to report):

* a figure of the objectives: one panel for two objectives, every pair for three; the
  front's members in colour (their trial numbers beside them), dominated trials grey,
  the search's reference points (e.g. the paper's λ's run in the same setting) and the
  starting run as labelled markers, and, when a Langenberg reproduction directory is
  given (``paper_grid``), its final models' means over seeds as squares (a different
  training setting unless the search copied it: the caption says so);
* tables: every front member's settings and objectives, the reference points and the
  paper grid's, and every trial with its state;
* ``report.html`` and ``report.json`` in the search directory (figures in ``figures/``).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcompress.errors import ConfigError
from robustcompress.experiments.search import SEARCH_FILE, metric_value, pareto_front
from robustcompress.experiments.store import jsonable, read_json
from robustcompress.reporting.figures import SavedFigure, save_figure
from robustcompress.reporting.html import CSS, esc, format_duration, render_figure, render_table
from robustcompress.reporting.report import FIGURES_DIR, REPORT_FILE
from robustcompress.reporting.tables import Table

FRONT_COLOR = "#d62728"
DOMINATED_COLOR = "#b0b0b0"
REFERENCE_COLOR = "#1f77b4"
PAPER_COLOR = "#2ca02c"
IMAGE_METRICS = ("accuracy", "fooling_ratio", "adversarial_accuracy")
"""Objectives measured on images (the held-out check measures them again); the others
are properties of the weights."""


@dataclass
class Point:
    """One point in objective space: a trial, a reference, the start or a paper model."""

    label: str
    kind: str
    objectives: list[float]
    settings: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchReport:
    directory: Path
    summary: dict[str, Any]
    trials: list[Point]
    front: list[Point]
    references: list[Point]
    paper: list[Point]
    figures: list[SavedFigure]
    front_table: Table
    tables: list[Table]
    html_path: Path
    generated: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        states: dict[str, int] = {}
        for t in s.get("trials", []):
            states[t["state"]] = states.get(t["state"], 0) + 1
        return jsonable(
            {
                "report": str(self.html_path),
                "kind": "search",
                "directory": str(self.directory),
                "name": s.get("name"),
                "generated": self.generated,
                "sampler": s.get("sampler"),
                "n_trials": s.get("n_trials"),
                "trial_states": states,
                "wall_time_s": s.get("wall_time_s"),
                "objectives": s.get("objectives"),
                "front": [_point_dict(p) for p in self.front],
                "references": [_point_dict(p) for p in self.references],
                "paper_grid": [_point_dict(p) for p in self.paper],
                "figures": [
                    {"key": f.key, "title": f.title, "png": str(f.png), "svg": str(f.svg)}
                    for f in self.figures
                ],
                "tables": [t.to_dict() for t in [self.front_table, *self.tables]],
                "notes": self.notes,
            }
        )


def _point_dict(p: Point) -> dict[str, Any]:
    return {
        "label": p.label,
        "kind": p.kind,
        "objectives": p.objectives,
        "settings": p.settings,
        "run_dir": p.run_dir,
    }


def is_search_dir(directory: str | Path) -> bool:
    return (Path(directory) / SEARCH_FILE).is_file()


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value == 0:
            return "0"
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.4f}"
    return str(value)


def settings_text(values: Mapping[str, Any]) -> str:
    """``l1.W1=0.003, pruning=0.5, adversarial=pgd`` (parameters off are left out)."""
    parts = [f"{k}={_fmt(v)}" for k, v in values.items() if v not in (0, 0.0, "off", None, False)]
    return ", ".join(parts) or "none (continued training)"


def _paper_points(directory: str | Path, model: str, metrics: Sequence[str]) -> list[Point]:
    """Mean over seeds of each method's final metrics in a reproduction directory."""
    from robustcompress.reporting.loading import load_source

    source = load_source(directory)
    groups: dict[str, list[Any]] = {}
    for run in source.finished:
        if run.model == model:
            groups.setdefault(run.method, []).append(run)
    points = []
    for method, runs in groups.items():
        values = []
        for metric in metrics:
            got = [v for r in runs if (v := metric_value(r.final, metric)) is not None]
            values.append(sum(got) / len(got) if got else math.nan)
        if all(math.isfinite(v) for v in values):
            points.append(Point(f"{method} (n={len(runs)})", "paper", values))
    return points


def load_points(summary: Mapping[str, Any]) -> tuple[list[Point], list[Point]]:
    """``(completed trials, reference points incl. the start run)``."""
    trials = [
        Point(
            f"#{t['number']}",
            "trial",
            [float(v) for v in t["objectives"]],
            dict(t.get("values") or {}),
            t.get("run_dir"),
            dict(t.get("final") or {}),
        )
        for t in summary.get("trials", [])
        if t.get("state") == "COMPLETE" and t.get("objectives")
    ]
    metrics = [o["metric"] for o in summary.get("objectives", [])]
    references = []
    start = summary.get("start")
    if start and start.get("status") == "finished":
        values = [metric_value(start.get("final") or {}, m) for m in metrics]
        if all(v is not None for v in values):
            references.append(
                Point(
                    "start (natural)",
                    "start",
                    [float(v) for v in values if v is not None],
                    run_dir=start.get("run_dir"),
                    final=dict(start.get("final") or {}),
                )
            )
    for label, entry in (summary.get("references") or {}).items():
        if entry.get("status") == "finished" and entry.get("objectives"):
            references.append(
                Point(
                    str(label),
                    "reference",
                    [float(v) for v in entry["objectives"]],
                    dict(entry.get("values") or {}),
                    entry.get("run_dir"),
                    dict(entry.get("final") or {}),
                )
            )
    return trials, references


def front_points(summary: Mapping[str, Any]) -> tuple[list[Point], list[Point], list[Point]]:
    """``(completed trials, the Pareto front among them, reference points incl. the
    start)`` of a search's ``search.json``."""
    trials, references = load_points(summary)
    directions = [o["direction"] for o in summary.get("objectives") or []]
    front = [trials[i] for i in pareto_front([t.objectives for t in trials], directions)]
    return trials, front, references


def structure_columns(points: Sequence[Point], objectives: Sequence[str]) -> list[str]:
    """Effective rank and sparsity of the first two weight matrices, when recorded and not
    objectives already: the front's compression beside its objectives."""
    keys = {k for p in points for k in p.final}
    wanted = [f"{m}/W{i}" for i in (1, 2) for m in ("effective_rank", "effective_sparsity")]
    return [k for k in wanted if k in keys and k not in objectives]


def best_at_least(front: Sequence[Point], point: Point, directions: Sequence[str]) -> Point | None:
    """The front member best in the second objective among those at least as good as
    ``point`` in the first (e.g. the most robust at equal or better clean accuracy)."""
    s0 = 1.0 if directions[0] == "maximize" else -1.0
    s1 = 1.0 if directions[1] == "maximize" else -1.0
    fits = [t for t in front if s0 * t.objectives[0] >= s0 * point.objectives[0]]
    return max(fits, key=lambda t: s1 * t.objectives[1]) if fits else None


def held_out_table(
    directory: Path, metrics: Sequence[str], directions: Sequence[str], completed: int
) -> Table | None:
    """The front, references and start on held-out test images (``held-out.json``,
    written by ``robustcompress search --held-out N``) beside their selection values;
    ``None`` when the check was not run or was run for other objectives. ``completed``:
    the search's completed trials now (a check made before more trials ran says so)."""
    from robustcompress.experiments.held_out import HELD_OUT_FILE

    data = read_json(directory / HELD_OUT_FILE)
    if not data or list(data.get("metrics") or []) != list(metrics):
        return None
    pairs = [
        (Point(raw["label"], raw["kind"], [float(v) for v in raw["held_out"]]), raw)
        for raw in data["points"]
        if all(isinstance(v, (int, float)) for v in raw["held_out"])
    ]
    front = [p for p, _ in pairs if p.kind == "trial"]
    on_images = [m.partition("/")[0] in IMAGE_METRICS for m in metrics]
    rows = []
    for p, raw in pairs:
        beaten = [
            t.label
            for t in front
            if pareto_front([t.objectives, p.objectives], list(directions)) == [0]
        ]
        best = best_at_least(front, p, directions) if p.kind != "trial" else None
        rows.append(
            [
                p.label,
                p.kind,
                *(
                    f"{_fmt(a)} → {_fmt(b)}" if measured else _fmt(a)
                    for a, b, measured in zip(
                        raw["selection"], raw["held_out"], on_images, strict=True
                    )
                ),
                f"{raw['n_correct']} / {raw['n']}",
                ", ".join(beaten) or "—",
                "—" if best is None else f"{best.label}: {_fmt(best.objectives[1])}",
            ]
        )
    return Table(
        "search-held-out",
        f"Held-out check: the front and the references on {data['size']} test images the "
        "search never saw",
        [
            "point",
            "kind",
            *(
                f"{m} (selection → held-out)" if i else m
                for m, i in zip(metrics, on_images, strict=True)
            ),
            "correct / images",
            "dominated on held-out by",
            f"best front {metrics[1]} at {metrics[0]} at least as good (held-out)",
        ],
        rows,
        caption="The search selected its front on the runs' tracked test images; here every "
        f"front member, reference point and the starting run is measured again on "
        f"{data['size']} other test images (seed {data['seed']}), with the same attacks and "
        "seeds. Structure measures are properties of the weights: one value. "
        "Dominance and the last column use the held-out values among the front members."
        + (
            ""
            if data.get("completed_trials") == completed
            else f" Measured when the search had {data.get('completed_trials')} completed "
            f"trials, not the {completed} it has now: the front may have changed; rerun the "
            "search with --held-out to measure it again."
        ),
    )


def _label(metric: str) -> str:
    from robustcompress.reporting.tables import metric_label

    head = metric.split("/", 1)[0]
    if head == "adversarial_accuracy":
        return f"adversarial accuracy ({metric.split('/', 1)[1]})"
    try:
        return metric_label(metric)
    except Exception:  # pragma: no cover (an unknown key: its name)
        return metric


def front_figure(
    trials: Sequence[Point],
    front: Sequence[Point],
    references: Sequence[Point],
    paper: Sequence[Point],
    objectives: Sequence[Mapping[str, str]],
    title: str,
) -> Any:
    """Every pair of objectives: dominated trials grey, the front in colour, references."""
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(range(len(objectives)), 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 5.0), squeeze=False)
    on_front = {id(p) for p in front}
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        dominated = [p for p in trials if id(p) not in on_front]
        ax.scatter(
            [p.objectives[i] for p in dominated],
            [p.objectives[j] for p in dominated],
            c=DOMINATED_COLOR,
            s=22,
            label="dominated trials",
        )
        ax.scatter(
            [p.objectives[i] for p in front],
            [p.objectives[j] for p in front],
            c=FRONT_COLOR,
            s=40,
            edgecolors="black",
            linewidths=0.5,
            label="Pareto front",
            zorder=3,
        )
        if len(objectives) == 2 and front:
            ordered = sorted(front, key=lambda p: p.objectives[i])
            ax.step(
                [p.objectives[i] for p in ordered],
                [p.objectives[j] for p in ordered],
                where="post",
                color=FRONT_COLOR,
                alpha=0.5,
                linewidth=1,
            )
        for p in front:
            ax.annotate(
                p.label,
                (p.objectives[i], p.objectives[j]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        for group, color, marker, name in (
            ([r for r in references if r.kind == "start"], "black", "*", "start (natural)"),
            ([r for r in references if r.kind == "reference"], REFERENCE_COLOR, "D", "reference"),
            (list(paper), PAPER_COLOR, "s", "paper grid (reproduction)"),
        ):
            if not group:
                continue
            ax.scatter(
                [p.objectives[i] for p in group],
                [p.objectives[j] for p in group],
                c=color,
                marker=marker,
                s=55,
                label=name,
                zorder=4,
            )
            for p in group:
                ax.annotate(
                    p.label,
                    (p.objectives[i], p.objectives[j]),
                    fontsize=7,
                    color=color,
                    xytext=(3, -9),
                    textcoords="offset points",
                )
        arrow = {"maximize": "↑", "minimize": "↓"}
        ax.set_xlabel(f"{_label(objectives[i]['metric'])} {arrow[objectives[i]['direction']]}")
        ax.set_ylabel(f"{_label(objectives[j]['metric'])} {arrow[objectives[j]['direction']]}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def make_search_report(
    directory: str | Path, *, paper_grid: str | Path | None = None, out: str | Path | None = None
) -> SearchReport:
    """Write ``report.html`` and ``report.json`` of the search in ``directory``."""
    directory = Path(directory)
    summary = read_json(directory / SEARCH_FILE)
    if not summary:
        raise ConfigError(
            f"{directory}: no readable {SEARCH_FILE}; give a directory "
            "`robustcompress search` wrote (<runs dir>/searches/<name>)"
        )
    objectives = list(summary.get("objectives") or [])
    metrics = [o["metric"] for o in objectives]
    directions = [o["direction"] for o in objectives]
    trials, front, references = front_points(summary)
    first = 1.0 if directions[0] == "maximize" else -1.0
    front.sort(key=lambda p: -first * p.objectives[0])
    paper = _paper_points(paper_grid, str(summary.get("model")), metrics) if paper_grid else []
    html_path = Path(out) if out else directory / REPORT_FILE
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path / REPORT_FILE
    html_path.parent.mkdir(parents=True, exist_ok=True)
    notes = []
    if paper_grid:
        notes.append(
            f"Paper grid: the final models of {paper_grid} (mean over seeds per method), "
            "trained in that reproduction's setting (data, epochs, evaluation subset), which "
            "may differ from the search's: compare levels with care. The reference points "
            "are the paper's λ's run in the search's own setting."
        )
    figures = []
    if trials:
        fig = front_figure(
            trials, front, references, paper, objectives, f"Search {summary.get('name')}"
        )
        caption = (
            f"{len(trials)} completed trials; the {len(front)} on the Pareto front in red "
            "(trial numbers beside them), dominated trials grey; reference points "
            "(diamonds) and the starting run (star) are not trials"
            + ("; squares: the paper grid's reproduction (means over seeds)" if paper else "")
            + "."
        )
        figures.append(
            save_figure(
                fig, html_path.parent / FIGURES_DIR, "search-front", "Pareto front", caption
            )
        )
    parameter_names = list(summary.get("parameters") or {})
    structure = structure_columns([*trials, *references], metrics)
    columns = ["trial", *parameter_names, *metrics, *structure, "run directory"]

    def extra(p: Point) -> list[str]:
        return [_fmt(metric_value(p.final, m)) for m in structure]

    def row(p: Point) -> list[str]:
        return [
            p.label,
            *(_fmt(p.settings.get(n)) for n in parameter_names),
            *(_fmt(v) for v in p.objectives),
            *extra(p),
            Path(p.run_dir).name if p.run_dir else "—",
        ]

    front_table = Table(
        "search-front",
        f"Pareto front of {summary.get('name')}: {len(front)} of {len(trials)} completed trials",
        columns,
        [row(p) for p in front],
        caption="Settings (0 / off: not used) and final objectives of every front member.",
    )
    tables = []
    if references or paper:
        ref_rows = []
        for p in [*references, *paper]:
            beaten = [
                t.label
                for t in front
                if pareto_front([t.objectives, p.objectives], directions) == [0]
            ]
            best = best_at_least(front, p, directions)
            ref_rows.append(
                [
                    p.label,
                    p.kind,
                    settings_text(p.settings),
                    *(_fmt(v) for v in p.objectives),
                    *extra(p),
                    ", ".join(beaten) or "—",
                    "—" if best is None else f"{best.label}: {_fmt(best.objectives[1])}",
                ]
            )
        tables.append(
            Table(
                "search-references",
                "Reference points beside the front",
                [
                    "point",
                    "kind",
                    "settings",
                    *metrics,
                    *structure,
                    "dominated by front members",
                    f"best front {metrics[1]} at {metrics[0]} at least as good",
                ],
                ref_rows,
                caption="A reference point dominated by a front member is beaten in every "
                "objective at once (at least as good in all, better in one). The last column "
                f"compares at equal or better {metrics[0]}: the front member with the best "
                f"{metrics[1]} among those at least as good in {metrics[0]}.",
            )
        )
    held = held_out_table(directory, metrics, directions, len(trials))
    if held is not None:
        tables.append(held)
    all_rows = []
    classes = {}
    front_ids = {id(p) for p in front}
    by_number = {p.label: p for p in trials}
    for i, t in enumerate(summary.get("trials", [])):
        point = by_number.get(f"#{t['number']}")
        objectives_text = [_fmt(v) for v in (t.get("objectives") or [math.nan] * len(metrics))]
        all_rows.append(
            [
                f"#{t['number']}",
                t.get("state", ""),
                "front" if point is not None and id(point) in front_ids else "",
                settings_text(t.get("values") or {}),
                *objectives_text,
                t.get("reason") or "",
            ]
        )
        if t.get("state") != "COMPLETE":
            classes[i] = "warn"
    tables.append(
        Table(
            "search-trials",
            "Every trial",
            ["trial", "state", "front", "settings", *metrics, "why it failed"],
            all_rows,
            classes=classes,
        )
    )
    report = SearchReport(
        directory,
        summary,
        trials,
        front,
        references,
        paper,
        figures,
        front_table,
        tables,
        html_path,
        time.strftime("%Y-%m-%d %H:%M:%S"),
        notes,
    )
    html_path.write_text(render_search_report(report), encoding="utf-8")
    html_path.with_suffix(".json").write_text(
        json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    return report


def render_search_report(report: SearchReport) -> str:
    s = report.summary
    page_dir = report.html_path.parent
    states: dict[str, int] = {}
    for t in s.get("trials", []):
        states[t["state"]] = states.get(t["state"], 0) + 1
    meta = [
        f"Directory: <code>{esc(report.directory)}</code>",
        f"Generated {esc(report.generated)}",
        f"sampler <b>{esc(s.get('sampler'))}</b>, seed {esc(s.get('seed'))}",
        f"{esc(len(s.get('trials', [])))} of {esc(s.get('n_trials'))} trials ("
        + esc(", ".join(f"{n} {k.lower()}" for k, n in sorted(states.items())))
        + ")",
    ]
    if isinstance(s.get("wall_time_s"), (int, float)):
        sessions = len(s.get("sessions") or [])
        wall = format_duration(float(s["wall_time_s"]))
        meta.append(f"wall time {esc(wall)} in {sessions} session(s)")
    objectives = ", ".join(f"{o['metric']} ({o['direction']})" for o in s.get("objectives", []))
    parameters = ", ".join(
        f"{name} ∈ {p.get('range')}" for name, p in (s.get("parameters") or {}).items()
    )
    body = [
        f"<h1>Search {esc(s.get('name'))}</h1>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        f"<p>Objectives: {esc(objectives)}. Parameters: {esc(parameters)}.</p>",
    ]
    body += [f'<p class="note">{esc(n)}</p>' for n in report.notes]
    body += [render_figure(f, page_dir) for f in report.figures]
    body.append(render_table(report.front_table))
    body += [render_table(t) for t in report.tables]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Search {esc(s.get('name'))}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{''.join(body)}\n</main></body></html>\n"
    )


def search_markdown(report: SearchReport) -> str:
    """The report's tables as Markdown (for a record in ``docs/results/``), with the
    search's trials, their states and wall time."""
    from robustcompress.reporting.markdown import render_table as markdown_table

    s = report.summary
    states: dict[str, int] = {}
    for t in s.get("trials", []):
        states[t["state"]] = states.get(t["state"], 0) + 1
    wall = s.get("wall_time_s")
    lines = [
        f"- search `{s.get('name')}` ({s.get('source')}): sampler {s.get('sampler')}, "
        f"seed {s.get('seed')}, {len(s.get('trials', []))} trials ("
        + ", ".join(f"{n} {k.lower()}" for k, n in sorted(states.items()))
        + ")",
        f"- wall time {format_duration(float(wall)) if isinstance(wall, (int, float)) else '—'}"
        f" in {len(s.get('sessions') or [])} session(s)",
        "",
        markdown_table(report.front_table),
    ]
    for table in report.tables:
        if table.key != "search-trials":
            lines += ["", markdown_table(table)]
    return "\n".join(lines) + "\n"

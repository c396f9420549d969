"""``build_report(DIR)``: one HTML page for a run, a sweep, a runs root or a reproduction.

The page (``report.html``) is self-contained: CSS inline, every figure embedded as a
base64 PNG; the same figures are written beside it as PNG and SVG in ``figures/``,
and the page's numbers (tables, claims, figure files) as JSON beside the page
(``report.json`` for ``report.html``).

A reproduction whose manifest names a registered recipe
(:func:`robustcompress.experiments.recipes.get_recipe`) with a ``report`` gets that
paper's figures, tables and claims; any other directory gets the generic plan
(:func:`~robustcompress.reporting.sections.generic_plan`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcompress.experiments.store import jsonable
from robustcompress.reporting.figures import SavedFigure
from robustcompress.reporting.html import render_report
from robustcompress.reporting.loading import ReportSource, load_source
from robustcompress.reporting.sections import FigureMaker, ReportPlan, generic_plan
from robustcompress.reporting.tables import Table, masking_table, settings_table

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


def planner_for(source: ReportSource) -> Callable[[ReportSource], ReportPlan]:
    """The report plan of ``source``'s recipe when it is registered, else the generic one."""
    from robustcompress.experiments.recipes import find_recipe

    recipe = find_recipe(source.recipe) if source.kind == "reproduction" else None
    return recipe.report if recipe is not None and recipe.report is not None else generic_plan


@dataclass
class Report:
    """A built report: its source, plan, drawn figures and where the page was written."""

    source: ReportSource
    plan: ReportPlan
    figures: list[SavedFigure]
    settings: Table
    runs_table: Table
    masking: Table | None
    html_path: Path
    generated: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything on the page except the images themselves (JSON-able)."""
        s = self.source
        return {
            "report": str(self.html_path),
            "kind": s.kind,
            "directory": str(s.directory),
            "title": s.title,
            "generated": self.generated,
            "recipe": s.recipe,
            "profile": s.profile,
            "seeds": s.seeds,
            "wall_time_s": s.wall_time_s,
            "choices": s.choices,
            "runs": {"total": len(s.runs), "finished": len(s.finished), "missing": s.missing},
            "figures": [
                {"key": f.key, "title": f.title, "png": str(f.png), "svg": str(f.svg)}
                for f in self.figures
            ],
            "tables": [
                t.to_dict()
                for t in [*self.plan.accuracy_tables, *self.plan.tables, self.settings]
                + ([self.masking] if self.masking is not None else [])
            ],
            "claims": [c.to_dict() for c in self.plan.claims],
            "warnings": self.warnings,
        }


def resolve_output(directory: Path, out: str | Path | None) -> Path:
    """The page's path: ``DIR/report.html``; ``out`` ending in ``.html`` is the file
    itself, any other ``out`` a folder that receives ``report.html``."""
    if out is None:
        return directory / REPORT_FILE
    out = Path(out)
    return out if out.suffix.lower() in (".html", ".htm") else out / REPORT_FILE


def make_report(directory: str | Path, *, out: str | Path | None = None) -> Report:
    """Load ``directory``, draw the figures, write the page and return the :class:`Report`."""
    directory = Path(directory)
    source = load_source(directory)
    html_path = resolve_output(directory, out)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    plan = planner_for(source)(source)
    maker = FigureMaker(source, html_path.parent / FIGURES_DIR)
    figures = [f for request in plan.figures if (f := maker.draw(request)) is not None]
    figures += [f for draw in plan.drawings if (f := draw(maker.directory)) is not None]
    labels = {(r.model, r.method): r.label for r in source.runs}
    masking = None
    if source.masking or plan.masking_required:
        masking = masking_table(source.masking, required=plan.masking_required, labels=labels)
    report = Report(
        source=source,
        plan=plan,
        figures=figures,
        settings=settings_table(source),
        runs_table=runs_table(source),
        masking=masking,
        html_path=html_path,
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        warnings=maker.warnings,
    )
    html_path.write_text(render_report(report), encoding="utf-8")
    html_path.with_suffix(".json").write_text(
        json.dumps(jsonable(report.to_dict()), indent=2) + "\n", encoding="utf-8"
    )
    return report


def build_report(directory: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the HTML report of ``directory`` and return the page's path.

    Args:
        directory: a run directory (``config.yaml``), a sweep directory
            (``sweep_summary.json``), a runs root, or a reproduction directory
            (``manifest.json``).
        out: where to write: a ``.html`` file, or a folder (default: ``directory``).
            Figures go to ``figures/`` beside the page, numbers to ``<page stem>.json``.
    """
    return make_report(directory, out=out).html_path


def runs_table(source: ReportSource) -> Table:
    """Every run: model, method, seed, status and directory."""
    rows = [
        [r.model, r.label, str(r.seed), r.group, r.status, r.run_dir.name]
        for r in sorted(source.runs, key=lambda r: (r.model, r.method, r.seed))
    ]
    return Table(
        "runs-list",
        "Runs",
        ["model", "method", "seed", "group", "status", "run directory"],
        rows,
        classes={i: "warn" for i, row in enumerate(rows) if row[4] != "finished"},
    )

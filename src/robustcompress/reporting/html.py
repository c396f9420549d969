"""The report as one self-contained HTML page (inline CSS, figures as data URIs).

Every text that comes from runs or manifests is escaped. Each figure links to its
PNG and SVG files beside the page (``figures/``); tables carry ``id`` attributes
(``table-1``, ``claim-1-evidence``, ``masking``...) so tests and readers can find them.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from robustcompress.reporting.claims import VERDICT_RULE, ClaimResult, PairedComparison
from robustcompress.reporting.figures import SavedFigure
from robustcompress.reporting.tables import Table

if TYPE_CHECKING:
    from robustcompress.reporting.report import Report

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       margin: 0; background: #fafafa; line-height: 1.45; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.92em; }
nav ul { columns: 3; font-size: 0.9em; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 0.86em; }
th, td { border: 1px solid #d8d8d8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.warn td { background: #fff1e6; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px; }
.tablecaption, .note { font-size: 0.85em; color: #555; margin: 2px 0 12px; }
figure { margin: 18px 0 28px; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #333; }
.verdict { display: inline-block; padding: 1px 10px; border-radius: 10px; font-weight: 600;
           font-size: 0.9em; }
.supported { background: #d3f9d8; color: #1b5e20; }
.not-supported { background: #ffe3e3; color: #8b0000; }
.inconclusive { background: #fff3bf; color: #6b5400; }
.claim { border-left: 4px solid #ccc; padding: 2px 0 2px 14px; margin: 18px 0; }
.rule { font-size: 0.88em; background: #f8f9fa; border: 1px solid #e9ecef; padding: 8px 12px; }
.warning { background: #fff1e6; border: 1px solid #ffc9a6; padding: 8px 12px; }
code { font-size: 0.92em; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def esc(value: object) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def verdict_badge(verdict: str) -> str:
    return f'<span class="verdict {verdict.replace(" ", "-")}">{esc(verdict)}</span>'


def _is_number(cell: str) -> bool:
    """Whether a cell reads as a number (``0.95``, ``+0.01``, ``0.95 ± 0.01``, ``ok (0.2)``: no)."""
    text = cell.split("±")[0].strip().replace("−", "-")
    try:
        float(text)
    except ValueError:
        return False
    return True


def render_table(table: Table) -> str:
    """A :class:`Table` as ``<table id=key>`` with its caption and notes."""
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cls = f' class="{table.classes[i]}"' if i in table.classes else ""
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if _is_number(c) else f"<td>{esc(c)}</td>" for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    parts = [
        f'<div class="scroll"><table id="{esc(table.key)}"><caption>{esc(table.title)}</caption>',
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>",
    ]
    if table.caption:
        parts.append(f'<p class="tablecaption">{esc(table.caption)}</p>')
    if table.notes:
        parts.append(
            '<ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in table.notes) + "</ul>"
        )
    return "\n".join(parts)


def render_figure(figure: SavedFigure, page_dir: Path) -> str:
    """``<figure>`` with the embedded PNG and links to the PNG and SVG files."""
    png = _relative(figure.png, page_dir)
    svg = _relative(figure.svg, page_dir)
    return (
        f'<figure id="{esc(figure.key)}">'
        f'<img src="{figure.data_uri}" alt="{esc(figure.title)}">'
        f"<figcaption><b>{esc(figure.title)}.</b> {esc(figure.caption)} "
        f'[<a href="{esc(png)}">PNG</a>, <a href="{esc(svg)}">SVG</a>]</figcaption></figure>'
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:
        return path.as_posix()


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


EVIDENCE_COLUMNS = (
    "model",
    "metric",
    "baseline",
    "other",
    "mean baseline",
    "mean other",
    "n",
    "mean diff [95% CI]",
    "t (df)",
    "p",
    "Holm p",
    "sign test",
    "d_z",
    "per-seed sign",
    "verdict",
)

#: Evidence columns holding numbers (right-aligned on the page).
NUMERIC_EVIDENCE_COLUMNS = frozenset(EVIDENCE_COLUMNS[4:13])

EVIDENCE_CAPTION = (
    "diff = other − baseline, paired by seed; 95% CI of the mean diff from the t "
    "distribution; t (df) and p: paired t-test, two-sided; Holm p: p corrected by Holm's "
    "method over the claim's tested comparisons (the verdict uses it); sign test: seeds "
    "with the claimed sign / seeds without a tie, exact two-sided binomial p; d_z: mean "
    "diff / sd diff; per-seed sign: + where the difference has the claimed sign, − where "
    "it is opposite, 0 for a tie."
)


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def evidence_cells(e: PairedComparison, labels: dict[tuple[str, str], str]) -> list[str]:
    """One evidence row as text cells (shared with the Markdown renderer)."""
    s = e.statistics
    diff = _fmt(e.mean_difference)
    if s.ci_low is not None and s.ci_high is not None:
        diff += f" [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]"
    sign_test = f"{e.agree}/{e.untied}, p = {_p(s.sign_p)}" if e.untied else "—"
    return [
        e.context,
        e.metric,
        labels.get((e.context, e.baseline), e.baseline),
        labels.get((e.context, e.other), e.other),
        _fmt(e.mean_baseline),
        _fmt(e.mean_other),
        str(s.n),
        diff,
        f"{s.t:.2f} ({s.df})" if s.t is not None else "—",
        _p(s.p),
        _p(e.p_corrected),
        sign_test,
        _fmt(s.d_z, 3) if s.d_z is not None else "—",
        "".join(e.signs) or "—",
        f"{e.verdict} ({e.reason})",
    ]


def render_claim(claim: ClaimResult, labels: dict[tuple[str, str], str]) -> str:
    """A claim: statement, verdict with counts, evidence table and missing comparisons."""
    rows = []
    for e in claim.evidence:
        cells = evidence_cells(e, labels)
        cls = {"supported": "", "not supported": ' class="warn"', "inconclusive": ""}[e.verdict]
        rendered = "".join(
            f'<td class="num">{esc(c)}</td>'
            if column in NUMERIC_EVIDENCE_COLUMNS
            else f"<td>{esc(c)}</td>"
            for column, c in zip(EVIDENCE_COLUMNS, cells, strict=True)
        )
        rows.append(f"<tr{cls}>{rendered}</tr>")
    head = "".join(f"<th>{esc(c)}</th>" for c in EVIDENCE_COLUMNS)
    parts = [
        f'<div class="claim" id="{esc(claim.spec.key)}">',
        f"<h3>{esc(claim.spec.title)}</h3>",
        f"<p>{esc(claim.spec.statement)}</p>",
        f"<p>Verdict: {verdict_badge(claim.verdict)} "
        f'<span class="meta">{esc(claim.summary)}</span></p>',
    ]
    if rows:
        parts.append(
            f'<div class="scroll"><table id="{esc(claim.spec.key)}-evidence">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            f'<p class="tablecaption">{esc(EVIDENCE_CAPTION)}</p>'
        )
    if claim.missing:
        text = "; ".join(
            f"{c.model}: {c.other} vs {c.baseline} on {c.metric}" for c in claim.missing
        )
        parts.append(f'<p class="note">Not tested (runs missing): {esc(text)}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def _section(key: str, title: str, body: Sequence[str]) -> str:
    return f'<section id="{esc(key)}"><h2>{esc(title)}</h2>\n' + "\n".join(body) + "</section>"


def render_report(report: Report) -> str:
    """The whole page."""
    source, plan = report.source, report.plan
    page_dir = report.html_path.parent
    labels = {(r.model, r.method): r.label for r in source.runs}
    sections: list[tuple[str, str, list[str]]] = []

    meta = [
        f"Directory: <code>{esc(source.directory)}</code>",
        f"Generated {esc(report.generated)}",
    ]
    if source.recipe:
        meta.append(f"Recipe <code>{esc(source.recipe)}</code>")
    if source.profile:
        meta.append(f"profile <b>{esc(source.profile)}</b>")
    if source.seeds:
        meta.append(f"seeds {esc(', '.join(str(s) for s in source.seeds))}")
    if source.wall_time_s is not None:
        meta.append(f"wall time {esc(format_duration(source.wall_time_s))}")
    if source.started:
        meta.append(f"started {esc(source.started)}")
    finished = len(source.finished)
    meta.append(f"{finished} of {len(source.runs)} runs finished")
    header = [f"<h1>{esc(source.title)}</h1>", f'<p class="meta">{" · ".join(meta)}</p>']
    header += [f"<p>{esc(p)}</p>" for p in plan.intro]
    problems = [
        f"{m.get('model', '?')} / {m.get('method', '?')} seed {m.get('seed', '?')}: "
        f"{m.get('reason', '')}"
        for m in source.missing
    ] + [
        f"{r.model} / {r.method} seed {r.seed}: status {r.status}"
        for r in source.runs
        if r.status != "finished"
    ]
    if problems:
        header.append(
            '<div class="warning"><b>Runs missing or not finished</b> (left out of tables, '
            "figures and claims):" + _list(problems) + "</div>"
        )
    if report.warnings:
        header.append('<div class="warning"><b>Warnings</b>' + _list(report.warnings) + "</div>")

    if plan.claims:
        summary = [
            '<table id="claims-summary"><thead><tr><th>claim</th><th>verdict</th>'
            "<th>comparisons</th></tr></thead><tbody>"
            + "".join(
                f'<tr><td><a href="#{esc(c.spec.key)}">{esc(c.spec.title)}</a></td>'
                f"<td>{verdict_badge(c.verdict)}</td><td>{esc(c.summary)}</td></tr>"
                for c in plan.claims
            )
            + "</tbody></table>"
        ]
        sections.append(("summary", "Claims at a glance", summary))
    if plan.accuracy_tables:
        sections.append(
            ("accuracy", "Clean test accuracy", [render_table(t) for t in plan.accuracy_tables])
        )
    if plan.claims:
        body = [f'<p class="rule"><b>Verdict rule.</b> {esc(VERDICT_RULE)}</p>']
        body += [render_claim(c, labels) for c in plan.claims]
        sections.append(("claims", "Claims", body))
    if report.figures:
        sections.append(
            ("figures", "Figures", [render_figure(f, page_dir) for f in report.figures])
        )
    if plan.tables:
        sections.append(("final", "Final measurements", [render_table(t) for t in plan.tables]))
    if report.masking is not None:
        sections.append(
            ("masking-flags", "Gradient-masking checks", [render_table(report.masking)])
        )
    choices = []
    if source.choices:
        choices.append("<h3>Where the paper is silent, we chose</h3>" + _list(source.choices))
    choices.append(render_table(report.settings))
    sections.append(("choices", "Choices and run settings", choices))
    sections.append(("runs", "Runs", [render_table(report.runs_table)]))

    nav = "<nav><ul>" + "".join(
        f'<li><a href="#{esc(k)}">{esc(t)}</a></li>' for k, t, _ in sections
    )
    nav += "".join(
        f'<li><a href="#{esc(f.key)}">{esc(f.title.split(":")[0])}</a></li>' for f in report.figures
    )
    nav += "</ul></nav>"
    content = "\n".join(_section(k, t, b) for k, t, b in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(source.title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{''.join(header)}\n{nav}\n{content}\n</main></body></html>\n"
    )


def format_duration(seconds: float) -> str:
    """``1 h 02 min 03 s`` / ``4 min 05 s`` / ``12.3 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"

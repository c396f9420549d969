"""The written record of a reproduction: tables, claims and wall time as Markdown.

:func:`write_results_markdown` turns a reproduction directory (``manifest.json``)
into ``docs/results/<recipe>.md``: how it was run (profile, seeds, wall time, the
machine), the recipe's choices, the accuracy tables beside the paper's numbers, the
final fooling ratios, every claim with its evidence and verdict, the masking flags
that triggered, and a "where we differ from the paper" list computed from the data
(each item with a *why* line for the author to complete).
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from robustcompress.reporting.claims import VERDICT_RULE, ClaimResult
from robustcompress.reporting.html import (
    EVIDENCE_CAPTION,
    EVIDENCE_COLUMNS,
    evidence_cells,
    format_duration,
)
from robustcompress.reporting.loading import ReportSource, load_source
from robustcompress.reporting.report import planner_for
from robustcompress.reporting.tables import Table, masking_table

ACCURACY_GAP = 0.01
"""Accuracy differences from the paper larger than this are listed as differences."""

WHY_PLACEHOLDER = "_Why: to be written._"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_table(table: Table) -> str:
    parts = [f"**{table.title}**", "", markdown_table(table.columns, table.rows)]
    if table.caption:
        parts += ["", f"_{table.caption}_"]
    return "\n".join(parts)


def render_claim(claim: ClaimResult, labels: dict[tuple[str, str], str]) -> str:
    parts = [
        f"### {claim.spec.title}",
        "",
        claim.spec.statement,
        "",
        f"**Verdict: {claim.verdict}** ({claim.summary}).",
    ]
    if claim.evidence:
        rows = [evidence_cells(e, labels) for e in claim.evidence]
        parts += ["", markdown_table(EVIDENCE_COLUMNS, rows), "", f"_{EVIDENCE_CAPTION}_"]
    if claim.missing:
        missing = "; ".join(f"{c.model}: {c.other} vs {c.baseline}" for c in claim.missing)
        parts += ["", f"Not tested (runs missing): {missing}."]
    return "\n".join(parts)


def differences(
    source: ReportSource, plan_tables: Sequence[Table], claims: Sequence[ClaimResult]
) -> list[str]:
    """Where our numbers differ from the paper's, computed from the tables and claims."""
    items = []
    for table in plan_tables:
        if "ours − paper" not in table.columns:
            continue
        diff_col = table.columns.index("ours − paper")
        for row in table.rows:
            try:
                diff = float(row[diff_col].replace("−", "-"))
            except ValueError:
                continue
            if math.isfinite(diff) and abs(diff) > ACCURACY_GAP:
                items.append(
                    f"{table.title.split(':')[0]}, {row[0]}: clean accuracy {row[2]} vs the "
                    f"paper's {row[3]} ({row[diff_col]})."
                )
    for claim in claims:
        if claim.verdict != "supported":
            items.append(f"{claim.spec.title}: {claim.verdict} here ({claim.summary}).")
    subsampled = any((r.config.get("data") or {}).get("limit") for r in source.runs)
    if subsampled:
        items.append(
            f"Profile '{source.profile}' trains on subsampled data: numbers are a smoke "
            "test, not a reproduction."
        )
    return items


def results_markdown(source: ReportSource) -> str:
    """The Markdown record of a loaded reproduction."""
    planner = planner_for(source)
    plan = planner(source)
    labels = {(r.model, r.method): r.label for r in source.runs}
    name = source.recipe or source.directory.name
    lines = [f"# Results: {name}", ""]
    seeds = ", ".join(map(str, source.seeds)) or "?"
    wall = "not recorded" if source.wall_time_s is None else format_duration(source.wall_time_s)
    lines += [
        f"Generated from `{source.directory}` by "
        "`robustcompress.reporting.write_results_markdown`; the full page with figures is "
        f"`robustcompress report {source.directory}`.",
        "",
        "## How it was run",
        "",
        f"- profile: **{source.profile or '?'}**; seeds: {seeds}",
        f"- wall time: **{wall}**" + (f" (started {source.started})" if source.started else ""),
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores visible, "
        f"Python {platform.python_version()}",
        f"- runs: {len(source.finished)} of {len(source.runs)} finished"
        + (f"; {len(source.missing)} missing from disk" if source.missing else ""),
        "",
    ]
    if source.choices:
        lines += ["## Where the paper is silent, we chose", ""]
        lines += [f"- {c}" for c in source.choices] + [""]
    if plan.accuracy_tables:
        lines += ["## Clean test accuracy", ""]
        for table in plan.accuracy_tables:
            lines += [render_table(table), ""]
    if plan.tables:
        lines += [f"## {plan.tables_title}", ""]
        for table in plan.tables:
            lines += [render_table(table), ""]
    if plan.claims:
        lines += ["## Claims", "", f"Verdict rule: {VERDICT_RULE}", ""]
        for claim in plan.claims:
            lines += [render_claim(claim, labels), ""]
    if source.masking or plan.masking_required:
        table = masking_table(source.masking, required=plan.masking_required, labels=labels)
        flagged = [table.rows[i] for i in sorted(table.classes)]
        lines += ["## Gradient-masking checks", ""]
        if flagged:
            lines += ["Rows with a triggered flag or no recorded check:", ""]
            lines += [markdown_table(table.columns, flagged), ""]
        else:
            lines += [f"No flag triggered in {len(table.rows)} checked models.", ""]
    lines += ["## Where our numbers differ from the paper's, and why", ""]
    found = differences(source, plan.accuracy_tables, plan.claims)
    if found:
        for item in found:
            lines += [f"- {item}", f"  {WHY_PLACEHOLDER}"]
    else:
        lines.append("- No accuracy differs by more than 0.01 and every claim is supported.")
    return "\n".join(lines).rstrip() + "\n"


def write_results_markdown(reproduction_dir: str | Path, path: str | Path) -> Path:
    """Write the Markdown record of ``reproduction_dir`` to ``path`` and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results_markdown(load_source(reproduction_dir)), encoding="utf-8")
    return path

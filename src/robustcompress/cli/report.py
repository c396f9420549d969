"""``robustcompress report DIR``: one HTML page with figures, tables and tested claims.

``DIR`` is a run directory, a sweep directory (``<runs>/sweeps/<name>``), a runs
root, a reproduction directory (``<runs>/reproductions/<recipe>-<profile>``) or a
search directory (``<runs>/searches/<name>``: the Pareto front, see
:mod:`robustcompress.reporting.search`).
The page is written to ``DIR/report.html`` (or ``--out``), its figures as PNG and
SVG to ``figures/`` beside it and its numbers as JSON beside the page (``report.json``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustcompress.cli.output import add_json_flag, print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="HTML report (figures, tables, claims) of a run, sweep, search or reproduction",
        description=(
            "Write a self-contained HTML page for a run, sweep, runs-root or reproduction "
            "directory: weight tiles, effective rank and sparsity, mutual information and "
            "fooling ratios over training, accuracy tables, and for a reproduction the "
            "paper's claims tested across seeds with the gradient-masking checks."
        ),
    )
    p.add_argument(
        "directory", metavar="DIR", help="run, sweep, search, runs-root or reproduction dir"
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        default=None,
        help="an .html file or a folder for report.html (default: DIR/report.html)",
    )
    p.add_argument(
        "--paper-grid",
        metavar="DIR",
        default=None,
        help="for a search directory: a Langenberg reproduction directory whose final "
        "models are plotted beside the front",
    )
    p.add_argument(
        "--markdown",
        metavar="FILE",
        default=None,
        help="for a search directory: also write its front and reference tables as Markdown",
    )
    add_json_flag(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from robustcompress.reporting import make_report
    from robustcompress.reporting.search import is_search_dir

    if is_search_dir(args.directory):
        return _search_report(args)
    if args.paper_grid is not None or args.markdown is not None:
        from robustcompress.errors import ConfigError

        flag = "--paper-grid" if args.paper_grid is not None else "--markdown"
        raise ConfigError(f"{flag} is for a search directory; {args.directory} is not one")
    report = make_report(args.directory, out=args.out)
    if args.json:
        print_json(report.to_dict())
        return 0
    source = report.source
    print_headlines(report)
    print(
        f"wrote {report.html_path} ({len(report.figures)} figures; "
        f"{len(source.finished)} of {len(source.runs)} runs finished)"
    )
    return 0


def _search_report(args: argparse.Namespace) -> int:
    from robustcompress.cli.search import show_search_report
    from robustcompress.reporting.search import make_search_report

    report = make_search_report(args.directory, paper_grid=args.paper_grid, out=args.out)
    done = f"wrote {report.html_path} ({len(report.trials)} completed trials)"
    return show_search_report(report, args, done, sys.stdout)


#: Tables of a report that are printed on the terminal too (the rest is on the page).
HEADLINE_SUFFIX = "-final-robustness"


def print_headlines(report: Any) -> None:
    """Print a report's final accuracy/fooling-ratio tables and its claims' verdicts."""
    for table in report.plan.tables:
        if table.key.endswith(HEADLINE_SUFFIX):
            rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
            print(table.title)  # a plain line: a table title wraps to the table's width
            print_table(rows, table.columns)
    if report.plan.claims:
        rows = [
            {"claim": c.spec.title, "verdict": c.verdict, "comparisons": c.summary}
            for c in report.plan.claims
        ]
        print_table(rows, ["claim", "verdict", "comparisons"])

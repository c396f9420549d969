"""Reports: one HTML page with figures, tables and tested claims for any run directory.

* :mod:`~robustcompress.reporting.loading`: runs of a run, sweep, runs-root or
  reproduction directory, labelled by model, method and seed;
* :mod:`~robustcompress.reporting.figures`: weight tiles on a shared diverging
  scale, metrics over training (Matplotlib, Agg), saved as PNG and SVG;
* :mod:`~robustcompress.reporting.tables`: accuracy (mean ± std over seeds, beside
  the paper's), final metrics, run settings, masking flags;
* :mod:`~robustcompress.reporting.claims`: paired comparisons across seeds and the
  verdict rule;
* :mod:`~robustcompress.reporting.sections`: which figure shows what, the generic plan;
* :mod:`~robustcompress.reporting.plans`: shared blocks of a paper's report (claims on a
  source, the paper's values beside ours, :func:`~.plans.standard_plan`); each paper's
  own plan lives in its package under :mod:`robustcompress.papers`;
* :mod:`~robustcompress.reporting.html` / :mod:`~robustcompress.reporting.markdown`:
  the page and the written record (``docs/results/<recipe>.md``);
* :mod:`~robustcompress.reporting.report`: :func:`build_report`.
"""

from robustcompress.reporting.claims import (
    VERDICT_RULE,
    ClaimResult,
    ClaimSpec,
    ComparisonSpec,
    PairedComparison,
    PairedStatistics,
    combine_verdicts,
    decide,
    evaluate_claim,
    paired_comparison,
    paired_statistics,
)
from robustcompress.reporting.loading import ReportRun, ReportSource, load_source
from robustcompress.reporting.markdown import results_markdown, write_results_markdown
from robustcompress.reporting.report import Report, build_report, make_report

__all__ = [
    "VERDICT_RULE",
    "ClaimResult",
    "ClaimSpec",
    "ComparisonSpec",
    "PairedComparison",
    "PairedStatistics",
    "Report",
    "ReportRun",
    "ReportSource",
    "build_report",
    "combine_verdicts",
    "decide",
    "evaluate_claim",
    "load_source",
    "make_report",
    "paired_comparison",
    "paired_statistics",
    "results_markdown",
    "write_results_markdown",
]

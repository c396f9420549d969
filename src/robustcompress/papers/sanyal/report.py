"""The report of the Sanyal et al. recipe (filled in below)."""

from __future__ import annotations

from robustcompress.reporting.loading import ReportSource
from robustcompress.reporting.sections import ReportPlan

PAPER = "Robustness via deep low-rank representations (Sanyal et al.)"


def plan(source: ReportSource) -> ReportPlan:
    return ReportPlan()

"""Shared blocks of a paper's report: claims evaluated on a source, the paper's values
beside ours, the tracked attacks' settings as the runs stored them, a standard plan.

A paper's ``report(source)`` function (see ``robustcompress.papers``) returns a
:class:`~robustcompress.reporting.sections.ReportPlan`. The simplest one is
:func:`standard_plan` with the paper's claims and values; a paper that reproduces
specific figures adds its own :class:`~robustcompress.reporting.sections.FigureRequest` s
and uses :func:`evaluate_claims` and :func:`masking_required` for the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from robustcompress import catalogue
from robustcompress.reporting.claims import ClaimResult, ClaimSpec, evaluate_claim
from robustcompress.reporting.loading import ReportSource
from robustcompress.reporting.sections import (
    FigureRequest,
    ReportPlan,
    final_tables,
    generic_figures,
)
from robustcompress.reporting.tables import Table, accuracy_table

PaperValues = Mapping[str, Mapping[str, Mapping[str, float]]]
"""A paper's published numbers: ``{model: {metric key: {method id: value}}}``."""


def evaluate_claims(source: ReportSource, specs: Sequence[ClaimSpec]) -> list[ClaimResult]:
    """Each claim tested on the final values of the source's finished runs.

    A run of a compared method that did not finish (``diverged``, ``failed``,
    ``incomplete``) never enters a comparison, and the claim's summary says which runs
    were left out and why, so a missing seed is never silent.
    """
    metrics = sorted({c.metric for s in specs for c in s.comparisons})
    values = source.value_lookup(metrics)
    results = []
    for spec in specs:
        result = evaluate_claim(spec, values)
        pairs = {(c.model, m) for c in spec.comparisons for m in (c.baseline, c.other)}
        left_out = [
            f"{r.model} {r.method} seed {r.seed} ({r.status})"
            for r in source.runs
            if (r.model, r.method) in pairs and r.status != "finished"
        ]
        if left_out:
            result = dataclasses.replace(
                result, summary=f"{result.summary}; left out: {', '.join(sorted(left_out))}"
            )
        results.append(result)
    return results


def masking_required(source: ReportSource, specs: Sequence[ClaimSpec]) -> list[tuple[str, str]]:
    """(model, method) pairs whose robustness a claim uses: they need a masking check.

    A comparison uses robustness when its metric is in the catalogue's ``robustness``
    group (e.g. a fooling ratio).
    """
    pairs = {
        (c.model, method)
        for spec in specs
        for c in spec.comparisons
        if catalogue.is_group(c.metric, "robustness")
        for method in (c.baseline, c.other)
    }
    return sorted((model, method) for model, method in pairs if source.runs_of(model, method))


def tracked_attacks_text(source: ReportSource, model: str) -> str:
    """``"FGSM ℓ∞ ε = 0.05; PGD ℓ∞ ε = 0.05, T = 20, α = 0.005"``: the attacks the runs
    of ``model`` tracked, with the settings stored in their configs."""
    runs = [r for r in source.finished if r.model == model] or [
        r for r in source.runs if r.model == model
    ]
    if not runs:
        return ""
    config = runs[0].config
    labels = (config.get("tracking") or {}).get("attacks") or {}
    texts = [catalogue.attack_text(catalogue.attack_settings(config, label)) for label in labels]
    return "; ".join(t for t in texts if t)


def reference_accuracy_table(
    source: ReportSource,
    model: str,
    paper: PaperValues | None,
    *,
    key: str | None = None,
    title: str | None = None,
    reference_name: str = "paper",
) -> Table:
    """Clean accuracy per method beside the paper's (``paper[model]["accuracy"]``)."""
    reference = (paper or {}).get(model, {}).get(catalogue.ACCURACY)
    return accuracy_table(
        source,
        model,
        key=key or f"{model}-accuracy",
        title=title or f"{model.upper()}: clean test accuracy",
        reference=reference,
        reference_name=reference_name,
    )


def standard_plan(
    source: ReportSource,
    *,
    claims: Sequence[ClaimSpec] = (),
    paper: PaperValues | None = None,
    intro: Sequence[str] = (),
    figures: Sequence[FigureRequest] | None = None,
) -> ReportPlan:
    """A paper's report from shared parts: every figure kind per model (or ``figures``),
    accuracy beside the paper's values, final-metric tables, the claims tested, and the
    masking checks the robustness claims need."""
    plan = ReportPlan()
    plan.intro = list(intro)
    models = source.models()
    plan.figures = list(figures) if figures is not None else generic_figures(source)
    plan.accuracy_tables = [reference_accuracy_table(source, m, paper) for m in models]
    plan.tables = [t for m in models for t in final_tables(source, m)]
    plan.claims = evaluate_claims(source, claims)
    plan.masking_required = masking_required(source, claims)
    return plan

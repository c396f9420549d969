"""Sanyal et al., *Robustness via deep low-rank representations*: N-LR, 1-LR and 2-LR
ResNet-18s against weight-space compression (:mod:`.recipe`), the measurements of every
final model (:mod:`.evaluation`) and the report (:mod:`.report`), registered as
``sanyal``."""

from __future__ import annotations

from robustcompress.experiments.recipes import Recipe, register_recipe
from robustcompress.papers.sanyal import evaluation, recipe, report

RECIPE = register_recipe(
    Recipe(
        name=recipe.NAME,
        title="Robustness via deep low-rank representations (Sanyal et al.)",
        profiles=recipe.PROFILES,
        choices=recipe.CHOICES,
        plan=recipe.plan,
        measure=evaluation.measure_final,
        report=report.plan,
        paper=report.PAPER,
    )
)

__all__ = ["RECIPE", "evaluation", "recipe", "report"]

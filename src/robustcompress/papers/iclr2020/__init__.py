"""The ICLR 2020 submission on the regularization of adversarial robustness: the AR
strength sweep (:mod:`.recipe`), the measurements of every final model
(:mod:`.evaluation`) and the report (:mod:`.report`), registered as ``iclr2020``."""

from __future__ import annotations

from robustcompress.experiments.recipes import Recipe, register_recipe
from robustcompress.papers.iclr2020 import evaluation, recipe, report

RECIPE = register_recipe(
    Recipe(
        name=recipe.NAME,
        title="Adversarial robustness as regularization (ICLR 2020 submission)",
        profiles=recipe.PROFILES,
        choices=recipe.CHOICES,
        plan=recipe.plan,
        measure=evaluation.measure_final,
        report=report.plan,
        paper=report.PAPER,
    )
)

__all__ = ["RECIPE", "evaluation", "recipe", "report"]

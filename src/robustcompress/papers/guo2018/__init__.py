"""Guo, Zhang, Zhang & Chen 2018, *Sparse DNNs with Improved Adversarial Robustness*:
the MNIST grid of §4 (:mod:`.recipe`), the evaluation of every kept model
(:mod:`.evaluation`) and the report (:mod:`.report`), registered as ``guo2018``."""

from __future__ import annotations

from robustcompress.experiments.recipes import Recipe, register_recipe
from robustcompress.papers.guo2018 import evaluation, recipe, report

RECIPE = register_recipe(
    Recipe(
        name=recipe.NAME,
        title="Guo et al. 2018: Sparse DNNs with improved adversarial robustness",
        profiles=recipe.PROFILES,
        choices=recipe.CHOICES,
        plan=recipe.plan,
        measure=evaluation.measure_snapshots,
        report=report.plan,
        paper=report.PAPER,
    )
)

__all__ = ["RECIPE", "evaluation", "recipe", "report"]

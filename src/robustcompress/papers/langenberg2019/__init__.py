"""Langenberg, Balda, Behboodi & Mathar 2019, *On the Effect of Low-Rank Weights on
Adversarial Robustness of Neural Networks*: the grid of §5 (:mod:`.recipe`) and its
report (:mod:`.report`), registered as the recipe ``langenberg2019``."""

from __future__ import annotations

from robustcompress.experiments.recipes import Recipe, register_recipe
from robustcompress.papers.langenberg2019 import recipe, report

RECIPE = register_recipe(
    Recipe(
        name=recipe.NAME,
        title=(
            "Langenberg et al. 2019: On the effect of low-rank weights on adversarial "
            "robustness of neural networks"
        ),
        profiles=recipe.PROFILES,
        choices=recipe.CHOICES,
        plan=recipe.plan,
        report=report.plan,
        paper=report.PAPER,
    )
)

__all__ = ["RECIPE", "recipe", "report"]

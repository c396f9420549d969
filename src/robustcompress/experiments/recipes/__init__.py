"""Reproduction recipes: a paper's grid of runs by name (``robustcompress reproduce``).

A recipe (:class:`~robustcompress.experiments.recipes.base.Recipe`) plans every run
of a paper for a profile and a list of seeds; :func:`reproduce` runs the plan
through the cached runner and writes a reproduction directory whose
``manifest.json`` the report reads. To add a recipe, write a module like
:mod:`~robustcompress.experiments.recipes.langenberg2019` that defines a
``RECIPE`` and list it in :data:`RECIPES`.
"""

from __future__ import annotations

from robustcompress.errors import ConfigError
from robustcompress.experiments.recipes import langenberg2019
from robustcompress.experiments.recipes.base import (
    MANIFEST_FILE,
    MaskingCheck,
    PlannedRun,
    Profile,
    Recipe,
    Reproduction,
    reproduce,
    reproduction_dir,
    seed_list,
)

RECIPES: dict[str, Recipe] = {langenberg2019.RECIPE.name: langenberg2019.RECIPE}
"""Every registered recipe by name."""


def list_recipes() -> list[str]:
    """Names of the registered recipes."""
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``, or a one-line :class:`ConfigError` listing the others."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(
            f"unknown recipe {name!r} (available: {', '.join(list_recipes())})"
        ) from None


__all__ = [
    "MANIFEST_FILE",
    "RECIPES",
    "MaskingCheck",
    "PlannedRun",
    "Profile",
    "Recipe",
    "Reproduction",
    "get_recipe",
    "list_recipes",
    "reproduce",
    "reproduction_dir",
    "seed_list",
]

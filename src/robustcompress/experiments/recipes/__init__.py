"""Reproduction recipes: each paper's grid of runs by name (``robustcompress reproduce``).

A paper is one package under :mod:`robustcompress.papers` that builds a
:class:`~robustcompress.experiments.recipes.base.Recipe` — profiles, methods, the
planner and its report — from the shared blocks here
(:mod:`~robustcompress.experiments.recipes.methods`: methods, schedules, fine-tune-from
links, run configs; :mod:`robustcompress.reporting`: figures, tables, claims).
:func:`reproduce` runs the plan through the cached runner and writes a reproduction
directory whose ``manifest.json`` the report reads.

There is one registry: :func:`register_recipe` adds a recipe (a paper package does
so when imported, and :data:`BUILTIN_PAPERS` lists the packages imported on first
lookup), :func:`get_recipe` and :func:`list_recipes` read it, and both
``reproduce`` and ``report`` look recipes up here.
"""

from __future__ import annotations

import importlib

from robustcompress.errors import ConfigError
from robustcompress.experiments.recipes.base import (
    MANIFEST_FILE,
    EnsembleCheck,
    MaskingCheck,
    Measurement,
    PlannedRun,
    Profile,
    Recipe,
    Reproduction,
    paper_cifar_missing,
    refuse_paper_cifar,
    reproduce,
    reproduction_dir,
    run_jobs,
    seed_list,
)
from robustcompress.experiments.recipes.methods import (
    Method,
    ModelEntry,
    Phase,
    Schedule,
    method_config,
    plan_grid,
    track_every,
)

BUILTIN_PAPERS: tuple[str, ...] = (
    "robustcompress.papers.langenberg2019",
    "robustcompress.papers.guo2018",
    "robustcompress.papers.iclr2020",
    "robustcompress.papers.sanyal",
)
"""Packages that register the shipped recipes (a new paper adds its line here)."""

RECIPES: dict[str, Recipe] = {}
"""Every registered recipe by name (fill it through :func:`register_recipe`)."""

_loaded = False


def register_recipe(recipe: Recipe, *, replace: bool = False) -> Recipe:
    """Make ``recipe`` available to ``reproduce`` and ``report`` under its name."""
    known = RECIPES.get(recipe.name)
    if known is not None and known is not recipe and not replace:
        raise ConfigError(f"a recipe named {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


def unregister_recipe(name: str) -> None:
    """Remove a recipe (for tests that register a temporary one)."""
    RECIPES.pop(name, None)


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_PAPERS:
            importlib.import_module(module)


def list_recipes() -> list[str]:
    """Names of the registered recipes."""
    _load_builtin()
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``, or a one-line :class:`ConfigError` listing the others."""
    _load_builtin()
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(
            f"unknown recipe {name!r} (available: {', '.join(list_recipes())})"
        ) from None


def find_recipe(name: str | None) -> Recipe | None:
    """The recipe called ``name`` if one is registered (``None`` otherwise)."""
    if not name:
        return None
    _load_builtin()
    return RECIPES.get(name)


__all__ = [
    "BUILTIN_PAPERS",
    "MANIFEST_FILE",
    "RECIPES",
    "EnsembleCheck",
    "MaskingCheck",
    "Measurement",
    "Method",
    "ModelEntry",
    "Phase",
    "PlannedRun",
    "Profile",
    "Recipe",
    "Reproduction",
    "Schedule",
    "find_recipe",
    "get_recipe",
    "list_recipes",
    "method_config",
    "paper_cifar_missing",
    "plan_grid",
    "refuse_paper_cifar",
    "register_recipe",
    "reproduce",
    "reproduction_dir",
    "run_jobs",
    "seed_list",
    "track_every",
    "unregister_recipe",
]

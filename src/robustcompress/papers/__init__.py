"""The papers robustcompress reproduces, one package each.

A paper package (e.g. :mod:`robustcompress.papers.langenberg2019`) holds

* ``recipe.py``: its profiles (typed :class:`~robustcompress.experiments.recipes.Schedule`
  per model), methods (:class:`~robustcompress.experiments.recipes.Method`), the
  models it trains and the planner (usually
  :func:`~robustcompress.experiments.recipes.plan_grid`), the design choices where the
  paper is silent, and the paper's published values;
* ``report.py``: the report plan — figures, tables beside the paper's values, claims
  as paired comparisons (:mod:`robustcompress.reporting.plans`);
* ``__init__.py``: one :class:`~robustcompress.experiments.recipes.Recipe` bundling
  both, registered with
  :func:`~robustcompress.experiments.recipes.register_recipe`.

The shipped papers are listed in
:data:`robustcompress.experiments.recipes.BUILTIN_PAPERS` (one line per paper).
"""

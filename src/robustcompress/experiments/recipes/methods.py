"""Building blocks of a paper's grid: methods, schedules, fine-tune-from links, run configs.

A paper's recipe names its **methods** (:class:`Method`: an id, a display label, an
open-ended group such as ``"natural"``, ``"adversarial"``, ``"regularized"`` or
``"pruned"``, and what it changes in a run config), a **schedule** per model and
profile (:class:`Schedule`: how much data, how many epochs, how often and on how
many inputs to track), and the **models** it trains (:class:`ModelEntry`: data set,
optimiser per phase, methods). :func:`plan_grid` turns them into
:class:`~robustcompress.experiments.recipes.base.PlannedRun` rows — every method
that starts from scratch first, then the methods that fine-tune another method's
run of the same model and seed — and :func:`method_config` builds one validated
run config.

Everything paper-specific (which methods, which optimiser, which λ) stays in the
paper's package; see ``robustcompress.papers.langenberg2019`` for a whole example
and ``CONTRIBUTING.md`` for the recipe.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from robustcompress.errors import ConfigError
from robustcompress.experiments.config import RunConfig, parse_config
from robustcompress.experiments.recipes.base import PlannedRun, Profile

NATURAL_GROUP = "natural"


@dataclass(frozen=True)
class Method:
    """One method of a grid.

    ``starts_from`` is the id of the method whose run (same model and seed) this one
    fine-tunes; ``None`` trains from scratch. ``adversarial`` is a
    ``training.adversarial`` section, ``regularizers`` a ``regularizers`` section, and
    ``overrides`` any other config keys (deep-merged last: model options, training
    extras, tracking).
    """

    id: str
    label: str
    group: str = NATURAL_GROUP
    starts_from: str | None = None
    adversarial: Mapping[str, Any] | None = None
    regularizers: Mapping[str, Any] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ConfigError(f"method id {self.id!r} must be non-empty without '/'")
        if not self.group:
            raise ConfigError(f"method {self.id!r}: group must be a non-empty name")


def regularized(id: str, label: str, *, starts_from: str = "natural", **lams: Any) -> Method:
    """A fine-tuning method with regularizers ``{name: λ or {W_i: λ}}``, group ``regularized``."""
    return Method(
        id,
        label,
        "regularized",
        starts_from=starts_from,
        regularizers={name: {"lam": lam} for name, lam in lams.items()},
    )


def adversarial(
    id: str, label: str, attack: Mapping[str, Any], *, starts_from: str | None = "natural"
) -> Method:
    """Adversarial training (fine-tuning ``starts_from`` by default), group ``adversarial``."""
    return Method(id, label, "adversarial", starts_from=starts_from, adversarial=dict(attack))


@dataclass(frozen=True)
class Phase:
    """One training phase of a schedule: epochs and about how many tracking events.

    Runs track at every epoch end and ``track_points`` spread over the steps
    (:func:`track_every`); ``every_epochs = k > 1`` thins the epoch ends out to every
    k-th and the last (``tracking.every_epochs``), for long phases where tracking
    passes would cost more than training.
    """

    epochs: int
    track_points: int
    every_epochs: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.track_points < 0 or self.every_epochs < 1:
            raise ConfigError(
                f"a phase needs epochs ≥ 1, track_points ≥ 0 and every_epochs ≥ 1 (got "
                f"{self.epochs}, {self.track_points}, {self.every_epochs})"
            )


@dataclass(frozen=True)
class Schedule:
    """One model's size within a profile.

    ``scratch`` is the phase of methods trained from scratch, ``finetune`` that of
    methods that start from another run. ``eval_size`` inputs are tracked;
    ``mi_eval_size`` turns the mutual-information bounds on (on that many inputs);
    ``tracked_attacks`` replaces the config's default tracked attacks (e.g. cheaper
    attacks in fast tests). A paper that needs more fields subclasses it.
    """

    train_limit: int | None
    scratch: Phase
    finetune: Phase
    eval_size: int
    mi_eval_size: int | None = None
    tracked_attacks: Mapping[str, Mapping[str, Any]] | None = None
    optimizer: Mapping[str, Mapping[str, Any]] | None = None
    """Replaces the model entry's optimiser per phase (``scratch``, ``finetune``)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config keys deep-merged into every run of this model (e.g. ``model.init``)."""
    scratch_extras: Sequence[Mapping[str, Any]] = ()
    """Training extras of the runs trained from scratch (e.g. a target accuracy)."""
    max_seeds: int | None = None
    """Run this model on the first ``max_seeds`` seeds only (an expensive model may get
    fewer seeds than a cheap one; the profile states the count per model)."""

    def phase(self, fine_tuning: bool) -> Phase:
        return self.finetune if fine_tuning else self.scratch


@dataclass(frozen=True)
class ModelEntry:
    """A model of a grid: its data set, optimiser per phase and methods.

    ``optimizer`` maps ``"scratch"`` and ``"finetune"`` to ``optimizer`` config
    sections (``lr``, ``batch_size``, ``momentum``, ``name``…); ``epochs`` comes from
    the schedule. ``model_init`` is the runs' ``model.init`` (written into the configs
    only when it is not the default, so existing grids keep their hashes).
    """

    dataset: str
    optimizer: Mapping[str, Mapping[str, Any]]
    methods: Sequence[Method]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    model_init: str = "torch_default"

    def method(self, id: str) -> Method:
        for m in self.methods:
            if m.id == id:
                return m
        raise ConfigError(f"no method {id!r} (methods: {', '.join(m.id for m in self.methods)})")


@cache
def train_size(dataset: str) -> int:
    """Training examples of ``dataset``: the catalogue's split size, else by loading it."""
    from robustcompress.data import load_dataset
    from robustcompress.data.locate import dataset_info

    try:
        return int(dataset_info(dataset).split_sizes["train"])
    except Exception:  # a generated data set: no catalogue entry
        return len(load_dataset(dataset, "train").labels)


def track_every(limit: int | None, dataset: str, batch_size: int, phase: Phase) -> int:
    """Steps between tracking events for about ``phase.track_points`` events over the phase.

    ``ceil(steps / points)`` with ``steps = epochs · ceil(n / batch_size)``; 0 (epoch
    ends only) when the points are no more than the epochs. The trainer also tracks at
    every epoch end and before the first step.
    """
    if phase.track_points <= phase.epochs:
        return 0
    steps = phase.epochs * math.ceil((limit or train_size(dataset)) / batch_size)
    return max(1, math.ceil(steps / phase.track_points))


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested mappings key by key (``overrides`` win)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def method_config(
    *,
    name: str,
    model: str,
    entry: ModelEntry,
    schedule: Schedule,
    method: Method,
    seed: int,
    start: str | None,
    source: str,
) -> RunConfig:
    """The validated run config of one method at one seed (``start``: the run it fine-tunes)."""
    fine_tuning = start is not None
    phase = schedule.phase(fine_tuning)
    optimizers = schedule.optimizer or entry.optimizer
    optimizer = dict(optimizers["finetune" if fine_tuning else "scratch"])
    every = track_every(schedule.train_limit, entry.dataset, int(optimizer["batch_size"]), phase)
    tracking: dict[str, Any] = {"every": every, "eval_size": schedule.eval_size}
    if phase.every_epochs > 1:
        tracking["every_epochs"] = phase.every_epochs
    if schedule.tracked_attacks is not None:
        tracking["attacks"] = {k: dict(v) for k, v in schedule.tracked_attacks.items()}
    if schedule.mi_eval_size:
        tracking["mutual_information"] = {
            "enabled": True,
            "eval_size": schedule.mi_eval_size,
            "noise_variance": 0.1,
        }
    training: dict[str, Any] = {"mode": "natural"}
    if method.adversarial is not None:
        training = {"mode": "adversarial", "adversarial": dict(method.adversarial)}
    if start is not None:
        training["init_from"] = start
    model_section: dict[str, Any] = {"name": model}
    if entry.model_kwargs:
        model_section["kwargs"] = dict(entry.model_kwargs)
    if entry.model_init != "torch_default":
        model_section["init"] = entry.model_init
    data = {
        "name": name,
        "data": {"dataset": entry.dataset, "limit": schedule.train_limit, "seed": 0},
        "model": model_section,
        "training": training,
        "optimizer": {**optimizer, "epochs": phase.epochs},
        "regularizers": dict(method.regularizers or {}),
        "tracking": tracking,
        "seed": seed,
        "device": "cpu",
    }
    if schedule.scratch_extras and not fine_tuning:
        data["extras"] = [dict(e) for e in schedule.scratch_extras]
    data = deep_merge(deep_merge(data, schedule.overrides), method.overrides)
    return parse_config(data, source)


RunNamer = Callable[[Profile, str, str, int], str]


def plan_grid(
    recipe: str,
    profile: Profile,
    seeds: Sequence[int],
    models: Mapping[str, ModelEntry],
    *,
    order: Sequence[str] | None = None,
    first: Sequence[str] = (),
) -> list[PlannedRun]:
    """Every run of a grid: per model (in ``order``) and seed, the methods trained from
    scratch, then the fine-tuning methods once the run they start from is planned.

    Only models the profile has a schedule for are planned. A process pool starts
    runs in the returned order, so the runs from scratch come first; among the
    fine-tunings, methods listed in ``first`` (the longest, e.g. PGD training) lead.
    Run names are ``<recipe>-<profile>-<model>-<method>-s<seed>``.
    """
    names = [m for m in (order or list(models)) if m in profile.settings]
    where = f"<recipe {recipe} {profile.name}>"
    levels = {model: method_levels(recipe, model, models[model].methods) for model in names}
    planned: list[PlannedRun] = []
    by_id: dict[tuple[str, str, int], PlannedRun] = {}
    depth = max((len(v) for v in levels.values()), default=0)
    for level in range(depth):
        for model in names:
            if level >= len(levels[model]):
                continue
            entry, schedule = models[model], profile.settings[model]
            methods = sorted(levels[model][level], key=lambda m: level > 0 and m.id not in first)
            model_seeds = list(seeds)[: schedule.max_seeds] if schedule.max_seeds else seeds
            for method in methods:
                for seed in model_seeds:
                    start = by_id[model, method.starts_from, seed] if method.starts_from else None
                    config = method_config(
                        name=f"{recipe}-{profile.name}-{model}-{method.id}-s{seed}",
                        model=model,
                        entry=entry,
                        schedule=schedule,
                        method=method,
                        seed=seed,
                        start=start.config.name if start is not None else None,
                        source=where,
                    )
                    run = PlannedRun(
                        model,
                        entry.dataset,
                        method.id,
                        method.label,
                        method.group,
                        seed,
                        config,
                        starts_from=start,
                    )
                    by_id[model, method.id, seed] = run
                    planned.append(run)
    return planned


def method_levels(recipe: str, model: str, methods: Sequence[Method]) -> list[list[Method]]:
    """Methods by depth of their fine-tune-from chain: from scratch, fine-tuning those, …"""
    ids = {m.id for m in methods}
    if len(ids) != len(methods):
        raise ConfigError(f"recipe {recipe}: two methods of {model} share an id")
    for m in methods:
        if m.starts_from is not None and m.starts_from not in ids:
            raise ConfigError(
                f"recipe {recipe}: method {m.id!r} of {model} starts from "
                f"{m.starts_from!r}, which is not a method of that model"
            )
    levels: list[list[Method]] = []
    placed: set[str] = set()
    pending = list(methods)
    while pending:
        ready = [m for m in pending if m.starts_from is None or m.starts_from in placed]
        if not ready:
            raise ConfigError(f"recipe {recipe}: the methods of {model} start from each other")
        levels.append(ready)
        placed |= {m.id for m in ready}
        pending = [m for m in pending if m.id not in placed]
    return levels

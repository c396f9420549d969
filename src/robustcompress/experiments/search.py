"""``robustcompress search SPACE.yaml``: a multi-objective search over training settings.

Langenberg et al. 2019 end with an open question: which mix of sparsity and low rank
gives the most robust network at an acceptable accuracy. A search answers it for one
setting with Optuna (the extra ``pip install 'robustcompress[search]'``): every trial
is an ordinary run (its own run directory under the runs root, cached by config hash,
resumable), and the study keeps the Pareto front of the chosen objectives.

A space file::

    name: search-fcnn
    start: fcnn-natural.yaml        # optional: trained first; every trial fine-tunes it
    base:                           # the trials' run config (a mapping or a file)
      data: {dataset: mnist, limit: 4000}
      model: {name: fcnn}
      optimizer: {epochs: 2, lr: 0.01, momentum: 0.9}
      tracking: {eval_size: 500}
    parameters:
      l1.W1: {low: 1.0e-4, high: 0.1}          # λ of ℓ1 on W1, log-uniform, or off
      nuclear.W1: {low: 1.0e-4, high: 0.1}     # λ of the nuclear norm on W1
      joint: {low: 1.0e-5, high: 1.0e-3}       # λ_joint (eq. 7, FCNN only)
      pruning: {low: 0.0, high: 0.9}           # magnitude pruning to this sparsity
      adversarial: [off, fgsm, pgd]            # adversarial fine-tuning on/off
    objectives:                                # 2 or 3: metric → maximize / minimize
      accuracy: maximize
      fooling_ratio/pgd: minimize
      effective_rank/W1: minimize
    reference:                                 # optional points run beside the trials
      l1: {l1.W1: 0.01}                        # (e.g. the paper's grid, same setting)
    sampler: nsga2                             # nsga2 (default), tpe or random
    n_trials: 24
    seed: 0

**Parameters** (each an Optuna parameter of the same name):

* ``l1.<W>``, ``nuclear.<W>`` (``W``: a weight-matrix name, module path or index) and
  ``joint``: a regularizer's λ (``regularizers.<name>.lam``), log-uniform in
  ``[low, high]`` (``log: false`` for uniform) or, with ``off: true`` (the default),
  switched off by a second categorical parameter ``<name>/on``;
* ``pruning``: gradual magnitude pruning (the training extra ``magnitude_pruning``) of
  every weight matrix (``weights: [W1, …]`` to choose) to the sampled sparsity over the
  run's epochs; 0 (or off) trains dense;
* ``adversarial``: a list of choices, ``off`` or an attack label of ``attacks``
  (default: the paper's FGSM and PGD training at ε = 0.05,
  :mod:`robustcompress.papers.langenberg2019.recipe`);
* any other dotted config path (``optimizer.lr``): ``{low, high[, log][, int]}`` or
  ``{choices: [...]}``.

**Objectives** are final metrics of a run (``summary.json``): ``accuracy``,
``fooling_ratio/<attack label>``, ``<structure measure>/<W>`` (``effective_rank/W1``,
``effective_sparsity/W2``), or ``adversarial_accuracy/<attack label>`` =
accuracy · (1 − fooling ratio) (the fooling ratio is over the correctly classified
inputs). A run that fails or diverges is told to Optuna as ``FAIL``; so is a run whose
clean accuracy is at or near chance (≤ 1/K + :data:`~robustcompress.evaluation.masking.
CHANCE_MARGIN`): a model that has not learned is never counted robust.

**Storage and resuming.** The study lives in ``<runs root>/searches/<name>/study.db``
(SQLite); ``search.json`` beside it lists every trial with its settings, objectives and
run directory, and the report (``report.html``, ``report.json``) is written there too.
Running the same space again continues: finished trials are kept, trials that were in
flight when the search was killed are run again with the same settings (their runs
continue from their last checkpoint) under the same trial numbers (one stopped between
Optuna's ask and its sampling is sampled then), and new trials are asked until
``n_trials`` have ended. Every trial's run is named after the search, so its directory
is ``<search name>-<config hash>``: a trial (or reference point) whose settings were run
before by this search reuses that run instead of training again. The sampler is seeded
with ``seed`` plus the number of trials already in the study, so a resumed search does
not repeat the first trials' draws; a search stopped and resumed therefore samples
differently from one run in one go. One driver per search at a time (a lock file
refuses a second one).

Trials run through any executor (``--executor process|ray``), with up to ``--workers``
trials in flight (Optuna's ask-and-tell interface: a trial is asked when a worker is
free, so later trials see the results of earlier ones).
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robustcompress.errors import ConfigError, RobustCompressError
from robustcompress.experiments.config import (
    RunConfig,
    check_against_model,
    format_validation_error,
    parse_config,
    read_yaml,
)
from robustcompress.experiments.executor import Executor
from robustcompress.experiments.store import (
    RunRecord,
    jsonable,
    read_json,
    runs_root,
    write_json_atomic,
)

SEARCHES_DIR = "searches"
STUDY_FILE = "study.db"
SEARCH_FILE = "search.json"
LOCK_FILE = "search.lock"
OFF = "off"
SAMPLERS = ("nsga2", "tpe", "random")
REGULARIZER_PARAMETERS = ("l1", "nuclear")
DIRECTIONS = {"maximize": "maximize", "max": "maximize", "minimize": "minimize", "min": "minimize"}


def require_optuna() -> Any:
    """The ``optuna`` module, or a one-line error naming the extra to install."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "robustcompress search needs Optuna: pip install 'robustcompress[search]'"
        ) from None
    return optuna


def default_attacks() -> dict[str, dict[str, Any]]:
    """The paper's adversarial fine-tuning settings: FGSM and PGD at ε = 0.05."""
    from robustcompress.papers.langenberg2019.recipe import EPS, PGD_TRAINING

    return {"fgsm": {"attack": "fgsm", "eps": EPS}, "pgd": dict(PGD_TRAINING)}


# ----------------------------------------------------------------------- schema


class ParameterConfig(BaseModel):
    """One searched parameter: a range (``low``, ``high``) or ``choices``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool | None = Field(default=None, description="log-uniform (λ's default: true)")
    off: bool | None = Field(default=None, description="also try it switched off (λ's default)")
    integer: bool = Field(
        default=False, alias="int", description="integers (a generic config path)"
    )
    choices: list[Any] | None = None
    weights: list[str | int] | None = Field(default=None, description="pruning: which matrices")


class SpaceConfig(BaseModel):
    """Schema of a space file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$", max_length=80)
    base: str | dict[str, Any]
    start: str | dict[str, Any] | None = None
    attacks: dict[str, dict[str, Any]] = Field(default_factory=default_attacks)
    parameters: dict[str, ParameterConfig | list[Any]]
    objectives: dict[str, str]
    reference: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sampler: Literal["nsga2", "tpe", "random"] = "nsga2"
    population: int | None = Field(default=None, ge=2, description="NSGA-II population size")
    n_trials: int = Field(default=20, ge=1)
    seed: int = Field(default=0, ge=0)

    @field_validator("parameters", mode="before")
    @classmethod
    def _choices_shorthand(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: ({"choices": v} if isinstance(v, list) else v) for k, v in value.items()}
        return value


@dataclass(frozen=True)
class Parameter:
    """A validated parameter: its kind and range."""

    name: str
    kind: Literal["regularizer", "joint", "pruning", "adversarial", "path"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    off: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None
    weights: tuple[str | int, ...] | None = None

    @property
    def switch(self) -> str:
        """The name of the on/off parameter of a parameter that can be off."""
        return f"{self.name}/on"

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter's value from an Optuna trial (``0`` / ``"off"`` when off)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.off and not trial.suggest_categorical(self.switch, [False, True]):
            return 0.0
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = "log " if self.log else ""
        text = f"{scale}[{self.low:g}, {self.high:g}]"
        return f"{text} or off" if self.off else text


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Literal["maximize", "minimize"]

    @property
    def sign(self) -> float:
        """+1 when larger is better, −1 when smaller is."""
        return 1.0 if self.direction == "maximize" else -1.0


@dataclass
class Space:
    """A loaded space: its schema, source, resolved configs, parameters and objectives."""

    config: SpaceConfig
    source: str
    base: dict[str, Any]
    start: RunConfig | None
    parameters: list[Parameter]
    objectives: list[Objective]
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def start_name(self) -> str:
        return f"{self.name}-start"

    def digest(self) -> str:
        """What must not change while a study continues: base, start, attacks, the
        parameters and objectives (not ``n_trials``, the sampler or the references)."""
        payload = {
            "base": self.base,
            "start": self.start.to_dict() if self.start else None,
            "attacks": self.config.attacks,
            "parameters": {p.name: _param_dict(p) for p in self.parameters},
            "objectives": [(o.metric, o.direction) for o in self.objectives],
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sample(self, trial: Any) -> dict[str, Any]:
        """Every parameter's value for ``trial`` (an Optuna trial or ``FixedTrial``)."""
        return {p.name: p.suggest(trial) for p in self.parameters}

    def trial_config(self, values: Mapping[str, Any], where: str) -> RunConfig:
        """The run config of one point of the space (``values``: parameter → value)."""
        data = copy.deepcopy(self.base)
        data["name"] = self.name
        if self.start is not None:
            data.setdefault("training", {})["init_from"] = self.start_name
        by_name = {p.name: p for p in self.parameters}
        for name, value in values.items():
            parameter = by_name.get(name) or _parameter(name, ParameterConfig(), self.source)
            _apply(data, parameter, value, self, where)
        return parse_config(data, where)

    def dependencies(self) -> dict[str, RunConfig]:
        return {self.start_name: self.start} if self.start is not None else {}


def _param_dict(p: Parameter) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "low": p.low,
        "high": p.high,
        "log": p.log,
        "off": p.off,
        "int": p.integer,
        "choices": list(p.choices) if p.choices is not None else None,
        "weights": list(p.weights) if p.weights is not None else None,
    }


def _apply(data: dict[str, Any], p: Parameter, value: Any, space: Space, where: str) -> None:
    """Write one parameter's ``value`` into the run config ``data``."""
    from robustcompress.experiments.sweep import set_path

    if p.kind == "regularizer":
        kind, _, matrix = p.name.partition(".")
        if value:
            regs = data.setdefault("regularizers", {})
            lam = regs.setdefault(kind, {}).setdefault("lam", {})
            if not isinstance(lam, dict):
                raise ConfigError(
                    f"{where}: base regularizers.{kind}.lam is one λ for every matrix; "
                    f"give it per matrix ({{W1: ...}}) to search {p.name}"
                )
            lam[matrix] = float(value)
    elif p.kind == "joint":
        if value:
            data.setdefault("regularizers", {})["joint"] = {"lam": float(value)}
    elif p.kind == "pruning":
        if value:
            epochs = int((data.get("optimizer") or {}).get("epochs", 10))
            extra: dict[str, Any] = {
                "name": "magnitude_pruning",
                "sparsity": float(value),
                "start_epoch": 1,
                "end_epoch": epochs,
            }
            if p.weights is not None:
                extra["weights"] = list(p.weights)
            data.setdefault("extras", []).append(extra)
    elif p.kind == "adversarial":
        if value not in (OFF, None, False):
            settings = space.config.attacks.get(str(value))
            if settings is None:
                raise ConfigError(
                    f"{where}: adversarial: unknown attack label {value!r} (attacks: "
                    f"{', '.join(space.config.attacks) or 'none'}, or {OFF})"
                )
            training = data.setdefault("training", {})
            training["mode"] = "adversarial"
            training["adversarial"] = copy.deepcopy(settings)
    else:
        set_path(data, p.name, value, where)


# ---------------------------------------------------------------------- loading


def _parameter(name: str, spec: ParameterConfig, source: str) -> Parameter:
    """Validate one parameter entry; a one-line :class:`ConfigError` names the fix."""
    where = f"{source}: parameters.{name}"
    head, _, rest = name.partition(".")
    if name == "adversarial":
        choices = tuple(OFF if c is False else c for c in (spec.choices or [OFF, "fgsm", "pgd"]))
        return Parameter(name, "adversarial", choices=choices)
    if head in REGULARIZER_PARAMETERS and rest:
        kind: Literal["regularizer", "joint", "pruning", "path"] = "regularizer"
        log, off = True, True
    elif name == "joint":
        kind, log, off = "joint", True, True
    elif name == "pruning":
        kind, log, off = "pruning", False, False
    elif head in REGULARIZER_PARAMETERS:
        raise ConfigError(f"{where}: name the weight matrix: {name}.W1 (or a module path)")
    elif "." in name:
        kind, log, off = "path", False, False
    else:
        raise ConfigError(
            f"{where}: unknown parameter (use l1.<W>, nuclear.<W>, joint, pruning, "
            "adversarial, or a dotted config path such as optimizer.lr)"
        )
    if spec.choices is not None:
        if kind != "path":
            raise ConfigError(f"{where}: give low and high, not choices")
        if not spec.choices:
            raise ConfigError(f"{where}: choices: give at least one value")
        return Parameter(name, "path", choices=tuple(spec.choices))
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{where}: give low and high (e.g. {{low: 0.0001, high: 0.1}})")
    low, high = float(spec.low), float(spec.high)
    log = spec.log if spec.log is not None else log
    off = spec.off if spec.off is not None else off
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"{where}: need low ≤ high (got low {low:g}, high {high:g})")
    if log and low <= 0:
        raise ConfigError(
            f"{where}: a log-uniform range needs low > 0 (got {low:g}); "
            "use off: true for λ = 0, or log: false"
        )
    if kind in ("regularizer", "joint") and low < 0:
        raise ConfigError(f"{where}: λ must be ≥ 0 (got low {low:g})")
    if kind == "pruning" and not (low >= 0 and high < 1):
        raise ConfigError(f"{where}: sparsity must be in [0, 1) (got [{low:g}, {high:g}])")
    if spec.weights is not None and kind != "pruning":
        raise ConfigError(f"{where}: weights is a pruning setting")
    weights = tuple(spec.weights) if spec.weights is not None else None
    return Parameter(name, kind, low, high, log, off, spec.integer, None, weights)


def _objective(metric: str, direction: str, source: str) -> Objective:
    where = f"{source}: objectives.{metric}"
    resolved = DIRECTIONS.get(str(direction).lower())
    if resolved is None:
        raise ConfigError(f"{where}: direction must be maximize or minimize (got {direction!r})")
    return Objective(metric, "maximize" if resolved == "maximize" else "minimize")


def _check_objectives(objectives: list[Objective], config: RunConfig, source: str) -> None:
    """Every objective must be a metric the trials' runs record."""
    from robustcompress.models import create_model, weight_matrices

    labels = list(config.tracking.attacks)
    measures = list(config.tracking.structure)
    model = create_model(config.model.name, **config.model.kwargs)
    matrices = [w.name for w in weight_matrices(model)]
    allowed = (
        "accuracy, fooling_ratio/<attack>, adversarial_accuracy/<attack> (attacks tracked: "
        f"{', '.join(labels) or 'none'}), <measure>/<W> (measures: {', '.join(measures)}; "
        f"W: {', '.join(matrices)})"
    )
    for o in objectives:
        head, _, tail = o.metric.partition("/")
        ok = (o.metric == "accuracy") or (
            head in ("fooling_ratio", "adversarial_accuracy") and tail in labels
        )
        ok = ok or (head in measures and tail in matrices)
        if not ok:
            raise ConfigError(
                f"{source}: objectives.{o.metric}: not a metric the trials record (allowed: "
                f"{allowed}); add the attack to base tracking.attacks or the measure to "
                "tracking.structure"
            )


def _read_config_part(value: str | dict[str, Any], source: Path, what: str) -> tuple[Any, str]:
    if isinstance(value, str):
        path = source.parent / value if source.is_file() else Path(value)
        data = read_yaml(path)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the {what} run config must be a mapping")
        return dict(data), str(path)
    return copy.deepcopy(value), str(source)


def load_space(path: str | os.PathLike[str]) -> Space:
    """Read and validate a space file (see the module docstring)."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: a space file must be a mapping with name, base, parameters and objectives"
        )
    data = dict(data)
    data.setdefault("name", path.stem)
    return parse_space(data, path)


def parse_space(data: Mapping[str, Any], source: str | os.PathLike[str] = "<space>") -> Space:
    """Validate a space mapping; every error is one line naming the key and the fix."""
    source_path = Path(source)
    try:
        spec = SpaceConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(source), SpaceConfig)) from None
    src = str(source)
    base, base_source = _read_config_part(spec.base, source_path, "base")
    base.pop("name", None)
    start: RunConfig | None = None
    if spec.start is not None:
        start_data, start_source = _read_config_part(spec.start, source_path, "start")
        start_data["name"] = f"{spec.name}-start"
        if (start_data.get("training") or {}).get("init_from"):
            raise ConfigError(f"{start_source}: start: the starting run must train from scratch")
        start = parse_config(start_data, f"{start_source} [start]")
        check_against_model(start)
    if not spec.parameters:
        raise ConfigError(f"{src}: parameters: give at least one parameter to search")
    if not 2 <= len(spec.objectives) <= 3:
        raise ConfigError(
            f"{src}: objectives: give 2 or 3 (e.g. accuracy: maximize, fooling_ratio/pgd: "
            f"minimize), got {len(spec.objectives)}"
        )
    parameters = [
        _parameter(name, p if isinstance(p, ParameterConfig) else ParameterConfig(choices=p), src)
        for name, p in spec.parameters.items()
    ]
    objectives = [_objective(m, d, src) for m, d in spec.objectives.items()]
    for label, settings in spec.attacks.items():
        if label == OFF:
            raise ConfigError(f"{src}: attacks: {OFF!r} is reserved for no adversarial training")
        if not isinstance(settings.get("attack", label), str):
            raise ConfigError(f"{src}: attacks.{label}: name the attack (attack: pgd)")
    for p in parameters:
        if p.kind == "adversarial":
            unknown = [c for c in p.choices or () if c != OFF and c not in spec.attacks]
            if unknown:
                raise ConfigError(
                    f"{src}: parameters.adversarial: unknown attack label(s) "
                    f"{', '.join(map(str, unknown))} (attacks: {', '.join(spec.attacks)}; or "
                    f"{OFF}); define them under attacks:"
                )
    space = Space(spec, src, base, start, parameters, objectives, dict(spec.reference))
    # the space's widest point: every parameter on (regularizers at high, the last choice)
    widest = {p.name: (p.choices[-1] if p.choices else p.high) for p in parameters}
    config = space.trial_config(widest, f"{base_source} [parameters]")
    if start is not None:
        _check_same_model(config, start, src)
    check_against_model(config)
    _check_objectives(objectives, config, src)
    for label, values in space.reference.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{src}: reference.{label}: a mapping of parameter → value")
        point = space.trial_config(values, f"{src} [reference.{label}]")
        check_against_model(point)
    return space


def _check_same_model(config: RunConfig, start: RunConfig, source: str) -> None:
    if (config.model.name, config.model.kwargs) != (start.model.name, start.model.kwargs):
        raise ConfigError(
            f"{source}: base and start build different models ({config.model.name} "
            f"{config.model.kwargs} vs {start.model.name} {start.model.kwargs}); use the same"
        )


# ---------------------------------------------------------------- objectives


def objective_values(
    record: RunRecord, objectives: list[Objective]
) -> tuple[list[float] | None, str, str | None]:
    """``(values, status, reason)`` of a finished run: ``values`` is ``None`` when the
    trial must count as failed (near chance, or a metric missing)."""
    from robustcompress.evaluation.masking import CHANCE_MARGIN, run_near_chance

    final = record.final
    if run_near_chance(record.config, final):
        accuracy = final.get("accuracy")
        return (
            None,
            "near_chance",
            f"clean accuracy {accuracy} is at or near chance (≤ 1/K + {CHANCE_MARGIN}): "
            "its fooling ratios are not robustness",
        )
    values = []
    for o in objectives:
        value = metric_value(final, o.metric)
        if value is None:
            return None, "failed", f"final metric {o.metric} is missing or not finite"
        values.append(value)
    return values, "finished", None


def metric_value(final: Mapping[str, Any], metric: str) -> float | None:
    """A final metric, with ``adversarial_accuracy/<label>`` = accuracy · (1 − fooling ratio)."""
    head, _, label = metric.partition("/")
    if head == "adversarial_accuracy":
        accuracy, ratio = final.get("accuracy"), final.get(f"fooling_ratio/{label}")
        if not isinstance(accuracy, (int, float)) or not isinstance(ratio, (int, float)):
            return None
        value = float(accuracy) * (1.0 - float(ratio))
    else:
        raw = final.get(metric)
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            return None
        value = float(raw)
    return value if math.isfinite(value) else None


def pareto_front(points: list[list[float]], directions: list[str]) -> list[int]:
    """Indices of the non-dominated points (ascending), each objective maximised or
    minimised as ``directions`` says. A point dominates another when it is at least as
    good in every objective and better in one; equal points are all on the front."""
    signs = [1.0 if DIRECTIONS[d] == "maximize" else -1.0 for d in directions]
    scored = [[s * v for s, v in zip(signs, p, strict=True)] for p in points]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    return [
        i
        for i, p in enumerate(scored)
        if not any(dominates(q, p) for j, q in enumerate(scored) if j != i)
    ]


# ------------------------------------------------------------------- the driver


@dataclass
class Job:
    kind: Literal["start", "trial", "reference"]
    key: str | int
    values: dict[str, Any]
    config: RunConfig


@dataclass
class SearchResult:
    directory: Path
    summary: dict[str, Any]
    told: int
    """Trials told to the study in this session."""


def search_dir(space_name: str, runs_dir: str | os.PathLike[str] | None = None) -> Path:
    return runs_root(runs_dir) / SEARCHES_DIR / space_name


@contextmanager
def _driver_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{directory}: another `robustcompress search` is driving this search; "
                "wait for it or stop it first"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sampler(space: Space, offset: int) -> Any:
    """The space's sampler, seeded with ``seed + offset`` (``offset``: trials so far)."""
    optuna = require_optuna()
    seed = space.config.seed + offset
    if space.config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if space.config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    population = space.config.population or max(4, min(20, space.config.n_trials // 3))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def run_search(
    space: Space,
    executor: Executor,
    *,
    workers: int = 1,
    runs_dir: str | os.PathLike[str] | None = None,
    n_trials: int | None = None,
    on_event: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run (or continue) the search until ``n_trials`` (default: the space's) have ended.

    ``workers`` is how many runs are in flight at a time. ``on_event(line)`` receives a
    line per run that ends. Raises :class:`ConfigError` when the study in the search
    directory was started with another space.
    """
    optuna = require_optuna()
    from optuna.trial import Trial, TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = n_trials if n_trials is not None else space.config.n_trials
    if total < 1:
        raise ConfigError(f"--n-trials must be ≥ 1, got {total}")
    workers = max(1, workers)
    directory = search_dir(space.name, runs_dir)
    say = on_event or (lambda line: None)
    started = time.time()
    with _driver_lock(directory):
        storage = f"sqlite:///{(directory / STUDY_FILE).resolve()}"
        study = optuna.create_study(
            study_name=space.name,
            storage=storage,
            directions=[o.direction for o in space.objectives],
            load_if_exists=True,
        )
        digest = study.user_attrs.get("space_digest")
        if digest is None:
            study.set_user_attr("space_digest", space.digest())
            study.set_user_attr("objectives", [o.metric for o in space.objectives])
        elif digest != space.digest():
            raise ConfigError(
                f"{space.source}: the space changed since the study in {directory} began "
                "(base, start, attacks, parameters or objectives); give the search a new name "
                f"or delete {directory} to start over"
            )
        study.sampler = make_sampler(space, len(study.trials))
        state = _read_state(directory)
        dependencies = space.dependencies()
        if space.start is not None:
            say(f"start run {space.start_name}: training or reading it")
            start_record = executor.submit(space.start).result()
            state["start"] = _run_entry(start_record, space)
            say(f"start run: {start_record.status} ({start_record.run_dir})")
        references = [
            Job("reference", label, dict(v), space.trial_config(v, f"{space.source} [{label}]"))
            for label, v in space.reference.items()
            if state["references"].get(label, {}).get("status") != "finished"
        ]
        stale = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # parameters suggested before the stop keep their values; a trial stopped
            # between ask and sampling gets the rest drawn now (nothing of it ran)
            values = space.sample(Trial(study, t._trial_id))
            config = space.trial_config(values, f"{space.source} [trial {t.number}]")
            stale.append(Job("trial", t.number, values, config))
        if stale:
            say(f"continuing {len(stale)} trial(s) left in flight: {[j.key for j in stale]}")
        in_flight: dict[Future[RunRecord], Job] = {}
        told = 0

        def ended() -> int:
            return len(
                study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            )

        def next_job() -> Job | None:
            if references:
                return references.pop(0)
            if stale:
                return stale.pop(0)
            trials_in_flight = sum(1 for j in in_flight.values() if j.kind == "trial")
            if ended() + trials_in_flight >= total:
                return None
            trial = study.ask()
            values = space.sample(trial)
            where = f"{space.source} [trial {trial.number}]"
            try:
                config = space.trial_config(values, where)
            except RobustCompressError as exc:
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("reason", str(exc))
                study.tell(trial, state=TrialState.FAIL)
                say(f"trial {trial.number}: failed: {exc}")
                return next_job()
            return Job("trial", trial.number, values, config)

        while True:
            while len(in_flight) < workers:
                job = next_job()
                if job is None:
                    break
                future = executor.submit(job.config, dependencies=dependencies)
                in_flight[future] = job
            if not in_flight:
                break
            done, _ = wait(set(in_flight), return_when="FIRST_COMPLETED")
            for future in sorted(done, key=lambda f: str(in_flight[f].key)):
                job = in_flight.pop(future)
                error = future.exception()
                record = None if error is not None else future.result()
                entry = _run_entry(record, space, error)
                entry["values"] = job.values
                if job.kind == "reference":
                    state["references"][str(job.key)] = entry
                    say(f"reference {job.key}: {_describe(entry)}")
                    continue
                trial_id = _trial_id(study, int(job.key))
                live = Trial(study, trial_id)
                for key in ("run_dir", "status", "reason", "objectives", "final"):
                    live.set_user_attr(key, jsonable(entry.get(key)))
                if entry["status"] == "finished":
                    study.tell(int(job.key), entry["objectives"])
                else:
                    study.tell(int(job.key), state=TrialState.FAIL)
                told += 1
                say(f"trial {job.key} [{ended()}/{total}]: {_describe(entry)}")
            _write_state(directory, space, study, state, started, total)
        summary = _write_state(directory, space, study, state, started, total, final=True)
    return SearchResult(directory, summary, told)


def stored_values(space: Space, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored trial's parameter values (``None`` when some were never sampled)."""
    from optuna.trial import FixedTrial

    try:
        return space.sample(FixedTrial(dict(params)))
    except ValueError:
        return None


def _trial_id(study: Any, number: int) -> int:
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            return int(t._trial_id)
    raise ConfigError(f"trial {number} is not in study {study.study_name}")  # pragma: no cover


def _describe(entry: Mapping[str, Any]) -> str:
    if entry["status"] != "finished":
        return f"{entry['status']}: {entry.get('reason')}"
    objectives = entry.get("objectives") or []
    return f"finished {[round(v, 4) for v in objectives]} ({entry.get('run_dir')})"


def _run_entry(
    record: RunRecord | None, space: Space, error: BaseException | None = None
) -> dict[str, Any]:
    """What the search keeps of one run: directory, status, objectives, final metrics."""
    if record is None:
        from robustcompress.errors import DivergedError

        status = "diverged" if isinstance(error, DivergedError) else "failed"
        reason: str | None = (
            str(error)
            if isinstance(error, RobustCompressError)
            else f"{type(error).__name__}: {error}"
        )
        return {"run_dir": None, "status": status, "reason": reason, "objectives": None}
    entry: dict[str, Any] = {"run_dir": str(record.run_dir), "final": jsonable(record.final)}
    if record.status != "finished":
        entry.update(status=record.status, reason=record.reason, objectives=None)
        return entry
    values, status, reason = objective_values(record, space.objectives)
    entry.update(status=status, reason=reason, objectives=values)
    return entry


def _read_state(directory: Path) -> dict[str, Any]:
    previous = read_json(directory / SEARCH_FILE)
    return {
        "start": previous.get("start"),
        "references": dict(previous.get("references") or {}),
        "sessions": list(previous.get("sessions") or []),
    }


def _write_state(
    directory: Path,
    space: Space,
    study: Any,
    state: dict[str, Any],
    started: float,
    total: int,
    final: bool = False,
) -> dict[str, Any]:
    """Write ``search.json``: the space, every trial, the references and the sessions."""
    trials = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        values = stored_values(space, t.params) or dict(t.params)
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": values,
                "objectives": list(t.values) if t.values is not None else None,
                "run_dir": attrs.get("run_dir"),
                "status": attrs.get("status"),
                "reason": attrs.get("reason"),
                "final": attrs.get("final"),
            }
        )
    now = time.time()
    session = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_time_s": now - started,
    }
    sessions = [*state["sessions"], session]
    summary = {
        "name": space.name,
        "source": space.source,
        "sampler": space.config.sampler,
        "seed": space.config.seed,
        "n_trials": total,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in space.objectives],
        "parameters": {p.name: {**_param_dict(p), "range": p.describe()} for p in space.parameters},
        "base": space.base,
        "model": (space.base.get("model") or {}).get("name", "fcnn"),
        "start": state["start"],
        "references": state["references"],
        "trials": trials,
        "sessions": sessions,
        "wall_time_s": sum(float(s["wall_time_s"]) for s in sessions),
        "study": str(directory / STUDY_FILE),
    }
    write_json_atomic(directory / SEARCH_FILE, jsonable(summary))
    if final:
        state["sessions"] = sessions
    return summary

"""The run configuration: one validated YAML schema, and the one source of defaults.

A run config names a data set and subset, a model, how it is trained (natural or
adversarial, optionally fine-tuned from another run), the optimiser, the weight
regularizers of Langenberg et al. 2019, eq. (8) with λ per weight matrix, training
extras, what is tracked during training, a seed and a device::

    name: fcnn-nuclear
    data: {dataset: mnist, limit: 10000}
    model: {name: fcnn}
    training: {mode: natural}
    optimizer: {epochs: 10}            # lr 0.001, batch 128: the paper's FCNN setting
    regularizers:
      nuclear: {lam: {W1: 0.01}}
    proximal: false
    extras:                            # optional; none by default
      - {name: magnitude_pruning, sparsity: 0.5, start_epoch: 2, end_epoch: 6}
    tracking: {every: 100, eval_size: 500}
    seed: 0

The **optimizer** section (:class:`OptimizerConfig`) is SGD by default
(``name: sgd``: ``lr``, ``momentum``, ``nesterov``, ``weight_decay``), or Adam
(Kingma & Ba 2015; ``name: adam``: ``lr``, ``betas`` (default ``[0.9, 0.999]``),
``eps`` (default ``1e-8``), ``weight_decay`` as an L2 term added to the gradient,
as in :class:`torch.optim.Adam`); both share ``batch_size``, ``epochs`` and
``schedule``. SGD settings given to Adam (or the reverse) are errors.
:meth:`OptimizerConfig.build` is the one place these settings become a torch
optimiser; the runner hands it to the trainer.

**Extras** (``extras``, :class:`ExtraConfig`) are training callbacks from the
registry :mod:`robustcompress.training.extras` (``list_extras()``): each item is
``{name: <registered extra>, <setting>: <value>, ...}``, applied in list order.
Their state (masks, counters, RNG states) is saved in every checkpoint, so a
resumed run continues exactly.

Defaults that depend on the model follow §5 of the paper (:data:`PAPER_OPTIMIZER`):
FCNN lr 0.001, batch 128 (from scratch and fine-tuning); CNN lr 0.01 from scratch,
0.001 when fine-tuning, batch 64. The data set defaults to the model's
(``fcnn`` → MNIST, ``cnn`` → Fashion-MNIST). The tracked attacks default to the
paper's FGSM, PGD (T = 20, α = 0.005) and GNM (T = 5), all at ε = 0.05.

Every key is checked (``extra="forbid"``): an unknown key or an invalid value is a
one-line :class:`~robustcompress.errors.ConfigError` naming the file, the key path
and what is allowed, e.g. ``config.yaml: optimizer.lr: must be > 0 (got -1)``.
:func:`check_against_model` then checks what needs the model: weight-matrix names
in λ, regularizers that do not apply (joint on a CNN), model options, attack
settings, extra names and settings.

The **config hash** (:func:`config_hash`) names the run directory
``<name>-<hash>``: the first 10 hex digits of the SHA-256 of the resolved config as
canonical JSON (:func:`hash_payload`). It covers everything that changes results:
data, model, training (with ``init_from`` replaced by the starting run's own hash),
optimizer, regularizers, proximal, tracking and seed. It leaves out ``name`` (a
label), ``device`` (CPU and GPU runs of one config are the same experiment; their
numbers agree up to floating-point rounding) and ``checkpoint`` (how often state is
saved does not change results: resuming is exact).

New features must not rename stored runs. Every field or section added to the schema
after the hash was frozen is declared with :func:`added_field`, which marks it in its
JSON schema (:data:`HASH_ADDED`); the hash leaves a marked field out, at any depth,
while it holds its default, so a config that does not use the feature hashes as
before, and takes it in as soon as it is set. A marked section may name its on/off
field (``switch``): while that is off the section is left out whatever its other
settings. ``tracking.mutual_information`` is such a section (switch ``enabled``).
A test keeps the set of field paths the hash covered when it was frozen and fails
on any other field not declared with :func:`added_field`
(:func:`hashed_field_paths`).

The code version is not hashed: rerunning a finished config after changing the
library returns the stored run; delete the run directory to recompute.
"""

from __future__ import annotations

import collections.abc
import contextlib
import difflib
import functools
import hashlib
import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from robustcompress.errors import ConfigError, RobustCompressError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

PAPER_OPTIMIZER: dict[str, dict[str, float | int]] = {
    "fcnn": {"lr": 0.001, "finetune_lr": 0.001, "batch_size": 128},
    "cnn": {"lr": 0.01, "finetune_lr": 0.001, "batch_size": 64},
}
"""Langenberg et al. 2019, §5: SGD learning rates and batch sizes per architecture."""

FALLBACK_OPTIMIZER: dict[str, float | int] = {"lr": 0.01, "finetune_lr": 0.001, "batch_size": 64}
"""Models the paper does not train (LeNets, ResNet-18) get the CNN's setting."""

DEFAULT_TRACKED_ATTACKS: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": 0.05},
    "pgd": {"eps": 0.05, "steps": 20, "alpha": 0.005},
    "gnm": {"eps": 0.05, "steps": 5},
}
"""Langenberg et al. 2019, §5: FGSM, PGD with T = 20 and α = 0.005, GNM with T = 5; ε = 0.05."""

HASH_EXCLUDED = ("name", "device", "checkpoint")
"""Top-level keys that do not enter the config hash (see the module docstring)."""

HASH_LENGTH = 10


HASH_ADDED = "hash_added"
"""JSON-schema marker of a field added after the hash was frozen (see :func:`added_field`)."""

HASH_SWITCH = "hash_switch"
"""JSON-schema key naming the on/off field of an added section (see :func:`added_field`)."""


def added_field(
    default: Any = PydanticUndefined,
    *,
    switch: str | None = None,
    required: bool = False,
    **kwargs: Any,
) -> Any:
    """A config field added after runs were stored: ``Field(default, ...)`` marked so that
    :func:`config_hash` leaves it out while it holds its default.

    Every field or section added to the schema from now on must be declared with this
    (not plain ``Field``), so a new feature at its default keeps every stored run's hash;
    so must each field of a new section, so that a field added to the section later is
    caught too (``tests/experiments/test_experiments_hash_stability.py`` checks it).
    The default (or ``default_factory``) must be the value a resolved config holds when
    the feature is not used, i.e. what every run stored before the field existed did.

    ``switch`` names the on/off field of an added section (``"enabled"``): while that
    field holds its default the whole section is left out, whatever its other settings
    (they change nothing while the feature is off).

    ``required=True`` (and no default) is only for a field of an item of a new section
    (e.g. the ``name`` of each entry of ``extras``): a config without the section has
    no such field, so it is always hashed where it occurs.
    """
    if default is Ellipsis:
        default = PydanticUndefined
    if default is PydanticUndefined and "default_factory" not in kwargs and not required:
        raise TypeError("added_field() needs a default (or default_factory): old runs had none")
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[HASH_ADDED] = True
    if switch is not None:
        extra[HASH_SWITCH] = switch
    return Field(default, json_schema_extra=extra, **kwargs)


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """The training data: data set and a seeded, class-stratified subset."""

    dataset: str | None = Field(
        default=None, description="data set name; default: the model's data set (fcnn → mnist)"
    )
    limit: int | None = Field(
        default=None, gt=0, description="train on this many examples (None: all)"
    )
    seed: int = Field(default=0, ge=0, description="seed of the subset selection")


class ModelConfig(_Section):
    """The architecture: a registered model name and keyword options, and how its weights
    are initialised (:func:`robustcompress.models.initialize`; ``torch_default`` keeps the
    layers' own draws)."""

    name: str = Field(default="fcnn", description="registered model (see `robustcompress models`)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="options of the model")
    init: str = added_field(
        "torch_default",
        description="weight initialisation: torch_default, glorot_uniform (the Keras "
        "default), glorot_normal, he_normal or caffe_xavier (Caffe's xavier filler)",
    )

    @field_validator("init")
    @classmethod
    def _known_init(cls, value: str) -> str:
        from robustcompress.models.init import check_scheme

        return check_scheme(value)


class AdversarialConfig(_Section):
    """Adversarial training on examples of a fixed-ε attack (Madry et al. 2018).

    ``steps``, ``alpha`` and ``random_start`` are passed to the attack only when
    given (FGSM takes none of them). ``mix`` is the weight of the clean loss:
    ``(1 − mix)·CE(x_adv) + mix·CE(x)``; 0 is pure adversarial training (the paper).
    """

    attack: str = Field(
        default="fgsm", description="attack making the training examples (fgsm, pgd)"
    )
    eps: float = Field(default=0.05, gt=0, description="ℓ∞ budget ε (the paper: 0.05)")
    steps: int | None = Field(default=None, gt=0, description="iterations (PGD)")
    alpha: float | None = Field(default=None, gt=0, description="step size (PGD)")
    random_start: bool | None = Field(default=None, description="random start (PGD)")
    mix: float = Field(default=0.0, ge=0, lt=1, description="weight of the clean loss")

    def attack_params(self) -> dict[str, Any]:
        """The settings passed to :func:`robustcompress.attacks.get`."""
        given = {"steps": self.steps, "alpha": self.alpha, "random_start": self.random_start}
        return {"eps": self.eps, **{k: v for k, v in given.items() if v is not None}}


def _monitor_default(name: str) -> Any:
    """The default of a :class:`~robustcompress.training.divergence.DivergenceMonitor`
    setting: the monitor owns its defaults, the config section repeats none."""
    import dataclasses

    from robustcompress.training.divergence import DivergenceMonitor

    return next(f.default for f in dataclasses.fields(DivergenceMonitor) if f.name == name)


class DivergenceConfig(_Section):
    """When a run counts as diverged and is stopped (see
    :mod:`robustcompress.training.divergence`): an exploding loss or an accuracy that
    collapses to chance. Non-finite values always stop a run. Defaults are the monitor's."""

    enabled: bool = added_field(True, description="watch the run for divergence")
    loss_factor: float = added_field(
        _monitor_default("loss_factor"),
        gt=1,
        description="diverged when the loss's moving average exceeds this × its best",
    )
    ema_weight: float = added_field(
        _monitor_default("ema_weight"),
        gt=0,
        le=1,
        description="weight of each step in the loss's moving average",
    )
    warmup_steps: int = added_field(
        _monitor_default("warmup_steps"), ge=0, description="steps before the loss rule applies"
    )
    learned_margin: float = added_field(
        _monitor_default("learned_margin"),
        gt=0,
        lt=1,
        description="accuracy above chance that counts as having learned",
    )
    collapse_fraction: float = added_field(
        _monitor_default("collapse_fraction"),
        ge=0,
        lt=1,
        description="diverged when accuracy ≤ chance + this × (best − chance)",
    )
    min_eval_size: int = added_field(
        _monitor_default("min_eval_size"),
        ge=1,
        description="evaluation inputs the accuracy rule needs (fewer: loss rule only)",
    )

    def monitor_settings(self) -> dict[str, Any]:
        """The settings of :class:`~robustcompress.training.divergence.DivergenceMonitor`."""
        return self.model_dump(exclude={"enabled"})


class TrainingConfig(_Section):
    """Natural or adversarial training, optionally starting from another run's weights."""

    mode: Literal["natural", "adversarial"] = "natural"
    adversarial: AdversarialConfig | None = Field(
        default=None, description="attack settings; default FGSM ε = 0.05 when mode is adversarial"
    )
    init_from: str | None = Field(
        default=None,
        description="fine-tune from this run: a config file, a run directory or a run name",
    )
    divergence: DivergenceConfig = added_field(
        default_factory=DivergenceConfig,
        description="divergence detection (on by default; see robustcompress.training.divergence)",
    )

    @model_validator(mode="after")
    def _adversarial_matches_mode(self) -> TrainingConfig:
        if self.mode == "adversarial" and self.adversarial is None:
            self.adversarial = AdversarialConfig()
        if self.mode == "natural" and self.adversarial is not None:
            raise ValueError(
                "'adversarial' settings are given but mode is 'natural': "
                "set mode: adversarial or remove them"
            )
        return self


class ScheduleConfig(_Section):
    """Learning-rate schedule (see :func:`robustcompress.training.learning_rate`)."""

    name: Literal["none", "step", "cosine", "inv", "multistep"] = "none"
    step_size: int = Field(default=1, gt=0, description="epochs between decays (step)")
    gamma: float = Field(default=0.1, gt=0, le=1, description="decay factor (step); γ (inv)")
    power: float = added_field(0.75, gt=0, description="inv: η₀·(1 + γ·t)^(−power)")
    milestones: list[int] = added_field(
        default_factory=list,
        description="multistep: the epochs after which the rate is multiplied by gamma",
    )


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class OptimizerConfig(_Section):
    """SGD (default) or Adam, batch size, epochs and schedule (see the module docstring).

    ``lr`` and ``batch_size`` default to the paper's (:data:`PAPER_OPTIMIZER`).
    ``momentum`` and ``nesterov`` are SGD's; ``betas`` and ``eps`` are Adam's (they
    keep their defaults under SGD). :meth:`build` makes the torch optimiser.
    """

    name: Literal["sgd", "adam"] = "sgd"
    lr: float | None = Field(
        default=None, gt=0, description="learning rate; default from the paper"
    )
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    betas: tuple[float, float] = added_field(
        ADAM_BETAS, description="Adam: decay rates (β1, β2) of the moment estimates, in [0, 1)"
    )
    eps: float = added_field(ADAM_EPS, gt=0, description="Adam: ε added to the denominator")
    batch_size: int | None = Field(default=None, gt=0, description="default from the paper")
    epochs: int = Field(default=10, gt=0)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"both betas must be in [0, 1) (got {list(value)})")
        return value

    @model_validator(mode="after")
    def _settings_fit_the_optimizer(self) -> OptimizerConfig:
        if self.name == "adam" and (self.momentum or self.nesterov):
            raise ValueError(
                "momentum and nesterov are SGD settings (Adam's momentum is betas[0]): "
                "remove them or set name: sgd"
            )
        if self.name == "sgd" and (tuple(self.betas) != ADAM_BETAS or self.eps != ADAM_EPS):
            raise ValueError("betas and eps are Adam settings: set name: adam or remove them")
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov needs momentum > 0")
        return self

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The torch optimiser these settings describe, over ``parameters``.

        The one mapping from this section to torch (the runner passes this method to
        the trainer as its optimiser factory); the learning rate is the initial one,
        which the trainer's schedule then scales.
        """
        import torch

        if self.lr is None:
            raise ConfigError("optimizer.lr: no learning rate (a RunConfig fills in the paper's)")
        params = list(parameters)
        if self.name == "adam":
            return torch.optim.Adam(
                params,
                lr=self.lr,
                betas=(float(self.betas[0]), float(self.betas[1])),
                eps=self.eps,
                weight_decay=self.weight_decay,
            )
        return torch.optim.SGD(
            params,
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


class RegularizerConfig(_Section):
    """λ of one regularizer: a number for every W_i, or ``{W1: λ_1, ...}`` per matrix."""

    lam: float | dict[str, float]

    @field_validator("lam", mode="before")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        """λ ≥ 0 (eqs. 5–6 take λ in R_+); index keys ``1``/``"1"`` become ``"W1"``."""
        if isinstance(value, Mapping):
            out = {}
            for key, lam in value.items():
                name = _matrix_key(key)
                if name in out:
                    raise ValueError(f"weight matrix {name} is given twice")
                out[name] = _check_lambda(lam, f"λ for {key}")
            return out
        return _check_lambda(value, "λ")


def _matrix_key(key: Any) -> str:
    """A weight-matrix key as a string; a 1-based index ``i`` becomes its name ``W<i>``."""
    if isinstance(key, bool):
        raise ValueError(f"weight-matrix key {key!r} must be a name like W1, a path or an index")
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"W{int(key)}"
    return str(key)


def _check_lambda(value: Any, what: str) -> float:
    """``value`` as a float λ ≥ 0; numeric strings (YAML reads ``1e-3`` as one) are accepted."""
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(f"{what} must be a number ≥ 0 (got {value!r})")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be ≥ 0 (got {value})")
    return float(number)


class ExtraConfig(BaseModel):
    """One training extra: ``name`` (registered in :mod:`robustcompress.training.extras`)
    and its settings as the other keys, e.g. ``{name: magnitude_pruning, sparsity: 0.5}``.

    The settings are checked against the extra by :func:`check_against_model`.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = added_field(
        required=True, description="registered extra (robustcompress.training.list_extras())"
    )

    def settings(self) -> dict[str, Any]:
        """The extra's settings: every key but ``name``."""
        return dict(self.model_extra or {})


class MutualInformationConfig(_Section):
    """KDE bounds on I(X; T_i) and I(T_i; Y) per hidden layer over training (Figure 2).

    Off by default: the paper tracks it for the FCNN only, and the bounds mean little
    for wide layers (they saturate at log2 N). The sample is a fixed, seeded,
    class-stratified subset of the tracking split (``tracking.eval_split``, seed
    ``tracking.eval_seed``) of ``eval_size`` inputs: N enters the bounds
    (``I_up ≤ log2 N``), so it stays fixed within and across the runs compared.
    σ² = 0.1 is the paper's noise variance (§5).
    """

    enabled: bool = Field(default=False, description="track the mutual-information bounds")
    eval_size: int = Field(default=1000, gt=1, description="size N of the fixed sample of inputs")
    noise_variance: float = Field(
        default=0.1, gt=0, description="σ² of the Gaussian noise added to t_i (paper: 0.1)"
    )


class GeneralizationConfig(_Section):
    """Training and test loss, error rate, their gaps and margin statistics over training
    (the ICLR 2020 submission on AR as regularization, Figures 3 and 4).

    Off by default: it evaluates the model on two whole sets at every tracking event: the
    data the run trains on (``data.limit`` of the training split) and the test split.
    ``train_size`` / ``test_size`` limit them to seeded, class-stratified subsets
    (``null``: the whole sets, the paper's setting); the subsets stay fixed over the run.
    """

    enabled: bool = added_field(False, description="track GE gaps and margin statistics")
    train_size: int | None = added_field(
        None, gt=0, description="training images evaluated (null: all the run trains on)"
    )
    test_size: int | None = added_field(
        None, gt=0, description="test images evaluated (null: the whole test split)"
    )
    seed: int = added_field(0, ge=0, description="seed of the subsets")


class OperatorSpectraConfig(_Section):
    """The std and the top of every layer's singular values over training, a
    convolution's in one operator view (``docs/algorithms.md``, Layer spectra)."""

    enabled: bool = added_field(False, description="track per-layer operator spectra")
    operator: str = added_field(
        "circular",
        description="a convolution's operator: reshaped (the kernel matrix), circular (FFT "
        "on its input grid) or dense (its exact map; small inputs only)",
    )

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        from robustcompress.structure.operators import check_operator

        return check_operator(value)


class TrackingConfig(_Section):
    """What is measured on the fixed evaluation subset, and how often."""

    every: int = Field(default=0, ge=0, description="track every N steps; 0: at epoch ends only")
    every_epochs: int = added_field(
        1,
        ge=1,
        description="track at every k-th epoch end (and the last epoch's); 1: every epoch "
        "end. Tracking passes dominate long runs of small models: k > 1 thins them out",
    )
    eval_size: int = Field(default=500, gt=0, description="size of the evaluation subset")
    eval_split: Literal["test", "train"] = "test"
    eval_seed: int = Field(default=0, ge=0, description="seed of the evaluation subset")
    attacks: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TRACKED_ATTACKS.items()},
        description="fooling ratios to track: {label: settings}; the label is the attack's "
        "name unless the settings name it (attack: pgd), so one attack can be tracked at "
        "several settings (pgd-eps0.1: {attack: pgd, eps: 0.1})",
    )
    structure: list[str] = Field(
        default_factory=lambda: ["effective_rank", "effective_sparsity"],
        description="per-weight-matrix measures to track",
    )

    @field_validator("attacks")
    @classmethod
    def _attack_labels(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for label, params in value.items():
            if not label or "/" in label:
                raise ValueError(f"attack label {label!r} must be non-empty without '/'")
            name = params.get("attack", label)
            if not isinstance(name, str):
                raise ValueError(f"{label}.attack must be an attack name (got {name!r})")
        return value

    def attack_entries(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{label: (attack name, settings)}`` of the tracked attacks."""
        out = {}
        for label, params in self.attacks.items():
            settings = dict(params)
            out[label] = (str(settings.pop("attack", label)), settings)
        return out

    activation_sparsity: bool = added_field(
        False,
        description="track the share of zero activations feeding the last linear layer "
        "(Guo et al. 2018, Table 1)",
    )
    mutual_information: MutualInformationConfig = added_field(
        default_factory=MutualInformationConfig,
        switch="enabled",
        description="mutual-information bounds per hidden layer (off by default)",
    )
    operator_spectra: OperatorSpectraConfig = added_field(
        default_factory=OperatorSpectraConfig,
        switch="enabled",
        description="per-layer std and top of the operator's singular values (off by default)",
    )
    generalization: GeneralizationConfig = added_field(
        default_factory=GeneralizationConfig,
        switch="enabled",
        description="training vs test loss and error (GE gaps) and margin statistics "
        "(off by default)",
    )


class CheckpointConfig(_Section):
    """How often state is saved (never part of the config hash)."""

    every: int = Field(
        default=0, ge=0, description="also checkpoint every N steps; 0: epoch ends only"
    )


class RunConfig(_Section):
    """One training run. See the module docstring for the layout and defaults."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$", max_length=120)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    regularizers: dict[str, RegularizerConfig] = Field(default_factory=dict)
    proximal: bool = Field(default=False, description="apply ℓ1/nuclear as proximal steps")
    extras: list[ExtraConfig] = added_field(
        default_factory=list,
        description="training extras, in order: [{name: <extra>, <setting>: <value>, ...}]",
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    seed: int = Field(default=0, ge=0)
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")

    _source: str = PrivateAttr(default="<config>")

    @model_validator(mode="after")
    def _fill_paper_defaults(self) -> RunConfig:
        paper = PAPER_OPTIMIZER.get(self.model.name, FALLBACK_OPTIMIZER)
        if self.optimizer.lr is None:
            key = "finetune_lr" if self.training.init_from else "lr"
            self.optimizer.lr = float(paper[key])
        if self.optimizer.batch_size is None:
            self.optimizer.batch_size = int(paper["batch_size"])
        if self.data.dataset is None:
            from robustcompress.models import model_spec

            try:
                self.data.dataset = model_spec(self.model.name).default_dataset
            except RobustCompressError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def source(self) -> str:
        """Where the config came from (a file path, or ``<config>``), for messages."""
        return self._source

    def with_source(self, source: str | Path) -> RunConfig:
        self._source = str(source)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data (every default filled in)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------- loading


def parse_config(data: Any, source: str | Path = "<config>") -> RunConfig:
    """Validate a mapping as a :class:`RunConfig`; errors are one-line :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a run config must be a mapping of keys, got {_kind(data)}")
    try:
        config = RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, RunConfig)) from None
    return config.with_source(source)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; ``name`` defaults to the file's stem."""
    path = Path(path)
    data = read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return parse_config(data, path)


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a UTF-8 file; every way it can fail is a one-line :class:`ConfigError`.

    Missing or unreadable files, bytes that are not UTF-8 (a binary file), YAML syntax
    errors, and scalars YAML recognises but cannot build (a timestamp such as
    ``2024-13-45``, nesting deeper than Python's recursion limit) all name the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
            "a config is a YAML text file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # a path no file can have, e.g. one with a NUL byte
        raise ConfigError(f"{str(path)!r}: not a valid file path ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. datetime(2024, 13, 45)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: invalid YAML value: {first}") from None


def _kind(value: Any) -> str:
    return "nothing (empty file)" if value is None else type(value).__name__


# --------------------------------------------------------- error formatting


def format_validation_error(
    exc: ValidationError, source: str | Path, root: type[BaseModel] = RunConfig
) -> str:
    """One line for a pydantic :class:`ValidationError`: ``source: key.path: problem; ...``."""
    parts = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        parts.append(_describe_error(error, loc, root))
    return f"{source}: " + "; ".join(dict.fromkeys(parts))


def _describe_error(error: Mapping[str, Any], loc: list[str], root: type[BaseModel]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        where = ".".join(loc[:-1])
        near = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        text = f"unknown key '{loc[-1]}' ({hint}allowed: {', '.join(allowed)})"
        return f"{where}: {text}" if where else text
    path = ".".join(loc) if loc else "config"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": "≥",
        "less_than": "<",
        "less_than_equal": "≤",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{path}: must be {bounds[kind]} {limit:g} (got {value!r})"
    if kind == "literal_error":
        return f"{path}: must be one of {ctx.get('expected')} (got {value!r})"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "string_pattern_mismatch":
        return (
            f"{path}: {value!r} is not a valid name (letters, digits and _ . = + -, "
            "starting with a letter or digit)"
        )
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return f"{path}: {message[len('Value error, ') :]}"
    return f"{path}: {message[0].lower() + message[1:]} (got {value!r})"


def _model_at(root: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``loc`` from ``root``.

    A key inside a ``dict[str, Section]`` field (``regularizers.<name>``) steps into
    the value type.
    """
    current: Any = root
    for part in loc:
        origin = getattr(current, "__origin__", None)
        if origin is dict:
            current = _unwrap(current.__args__[1])
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = _unwrap(field.annotation)
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None``; other annotations unchanged."""
    args = [a for a in getattr(annotation, "__args__", ()) or () if a is not type(None)]
    if getattr(annotation, "__origin__", None) is not dict and len(args) == 1:
        return args[0]
    return annotation


# ------------------------------------------------------- model-level checks


def check_against_model(config: RunConfig) -> None:
    """Check what needs the model or the registries; raise a one-line :class:`ConfigError`.

    Model name and options, the data set name, each regularizer's name, λ keys
    (weight-matrix names W1…Wm, module paths or 1-based indices) and applicability
    (joint needs a chain of linear layers), the adversarial and tracked attacks and
    their settings, the structure measures, and each extra's name and settings
    (built and set up on a fresh model).
    """
    from robustcompress import attacks
    from robustcompress.attacks import FixedEpsilonAttack
    from robustcompress.catalogue import structure_measures
    from robustcompress.data import list_datasets
    from robustcompress.models import create_model
    from robustcompress.regularizers import build_regularizer
    from robustcompress.training.extras import SettingError, build_extra

    src = config.source

    def fail(path: str, exc: Exception | str) -> ConfigError:
        return ConfigError(f"{src}: {path}: {exc}")

    try:
        model = create_model(config.model.name, **config.model.kwargs)
    except RobustCompressError as exc:
        raise fail("model", exc) from None
    except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as exc:
        # an option of the wrong type or size reaches the factory (e.g. hidden: 5)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise fail(
            "model.kwargs",
            f"{config.model.name} cannot be built with {config.model.kwargs} ({reason})",
        ) from None
    if config.data.dataset not in list_datasets():
        raise fail(
            "data.dataset",
            f"unknown data set {config.data.dataset!r} (allowed: {', '.join(list_datasets())})",
        )
    for name, reg in config.regularizers.items():
        try:
            build_regularizer(name, lam=reg.lam).check(model)
        except RobustCompressError as exc:
            raise fail(f"regularizers.{name}", exc) from None
    adv = config.training.adversarial
    if adv is not None:
        try:
            attack = attacks.get(adv.attack, **adv.attack_params())
        except RobustCompressError as exc:
            raise fail("training.adversarial", exc) from None
        if not isinstance(attack, FixedEpsilonAttack):
            raise fail(
                "training.adversarial.attack",
                f"{adv.attack!r} is not a fixed-ε attack; use fgsm or pgd",
            )
    for label, (name, params) in config.tracking.attack_entries().items():
        try:
            attacks.get(name, **params)
        except RobustCompressError as exc:
            raise fail(f"tracking.attacks.{label}", exc) from None
    if config.tracking.mutual_information.enabled:
        from robustcompress.models import hidden_layer_names

        if not hidden_layer_names(model):
            raise fail(
                "tracking.mutual_information",
                f"model {config.model.name!r} has no hidden activation modules to measure; "
                "set enabled: false",
            )
    known = structure_measures()
    unknown = [m for m in config.tracking.structure if m not in known]
    if unknown:
        raise fail(
            "tracking.structure",
            f"unknown measure(s) {', '.join(unknown)} (allowed: {', '.join(known)})",
        )
    for index, extra in enumerate(config.extras):
        try:
            build_extra(extra.name, **extra.settings()).setup(model)
        except SettingError as exc:
            raise fail(f"extras.{index}.{exc.setting}", exc.problem) from None
        except RobustCompressError as exc:
            raise fail(f"extras.{index}", exc) from None


# ------------------------------------------------------------------ hashing


def config_hash(config: RunConfig, init_hash: str | None = None) -> str:
    """The run's identity: SHA-256 of the result-relevant config (see module docstring).

    ``init_hash`` is the hash of the run named by ``training.init_from``; it replaces
    the reference itself, so a starting run named by path or by name hashes the same.
    """
    text = _canonical(hash_payload(config, init_hash))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def hash_payload(config: RunConfig, init_hash: str | None = None) -> dict[str, Any]:
    """What :func:`config_hash` hashes: the JSON dump without :data:`HASH_EXCLUDED` and
    without every :func:`added_field` that holds its default (``init_from`` resolved)."""
    payload = config.model_dump(mode="json", exclude=set(HASH_EXCLUDED))
    _drop_added_defaults(config, payload)
    if config.training.init_from is not None:
        if init_hash is None:
            raise ConfigError(
                f"{config.source}: training.init_from: the starting run must be resolved "
                "before hashing"
            )
        payload["training"]["init_from"] = init_hash
    return payload


def _canonical(data: Any) -> str:
    """The JSON text the hash is taken of (also how values are compared with defaults)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _drop_added_defaults(section: BaseModel, dumped: dict[str, Any]) -> None:
    """Delete from ``dumped`` (``section``'s JSON dump) every :func:`added_field` that holds
    its default, at any depth; the other values are walked into."""
    for name, info in type(section).model_fields.items():
        if name not in dumped:
            continue
        value = getattr(section, name)
        if _is_added(info) and _is_off(type(section), name, value, dumped[name]):
            del dumped[name]
        else:
            _walk(value, dumped[name])


def _walk(value: Any, dumped: Any) -> None:
    """Follow ``value`` and its dump into sections, dicts and lists of sections."""
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        _drop_added_defaults(value, dumped)
    elif isinstance(value, Mapping) and isinstance(dumped, dict):
        for key, item in value.items():
            if isinstance(key, str) and key in dumped:
                _walk(item, dumped[key])
    elif isinstance(value, (list, tuple)) and isinstance(dumped, list):
        for item, dumped_item in zip(value, dumped, strict=False):
            _walk(item, dumped_item)


def _marker(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _is_added(info: FieldInfo) -> bool:
    return _marker(info).get(HASH_ADDED) is True


def _is_off(owner: type[BaseModel], name: str, value: Any, dumped: Any) -> bool:
    """Whether the added field ``owner.name`` is unused: its switch off, or at its default."""
    if owner.model_fields[name].is_required():
        return False
    switch = _marker(owner.model_fields[name]).get(HASH_SWITCH)
    if isinstance(switch, str) and isinstance(value, BaseModel) and isinstance(dumped, dict):
        return _canonical(dumped.get(switch)) == _default_json(type(value), switch)
    return _canonical(dumped) == _default_json(owner, name)


@functools.cache
def _default_json(owner: type[BaseModel], name: str) -> str:
    """The canonical JSON of the default of field ``owner.name``, as a dump would hold it."""
    info = owner.model_fields[name]
    default = info.get_default(call_default_factory=True)
    adapter: TypeAdapter[Any] = TypeAdapter(Any if info.annotation is None else info.annotation)
    with contextlib.suppress(ValidationError):
        default = adapter.validate_python(default)  # e.g. 0 → 0.0 for a float field
    return _canonical(adapter.dump_python(default, mode="json", warnings=False))


def hashed_field_paths(root: type[BaseModel] | None = None) -> dict[str, bool]:
    """Every dotted field path that can enter the config hash → whether that field is
    declared with :func:`added_field`.

    Sections are followed through ``X | None``, ``dict[str, X]`` and ``list[X]``
    (a dict key or list index is written ``*``: ``regularizers.*.lam``); the top-level
    :data:`HASH_EXCLUDED` keys are left out. Used by the test that keeps a field added
    without :func:`added_field` from silently changing stored runs' hashes.
    """
    paths: dict[str, bool] = {}
    model = RunConfig if root is None else root
    for name, info in model.model_fields.items():
        if name not in HASH_EXCLUDED:
            _field_paths(name, info, paths, (model,))
    return paths


def _field_paths(
    path: str, info: FieldInfo, paths: dict[str, bool], seen: tuple[type[BaseModel], ...]
) -> None:
    paths[path] = _is_added(info)
    for prefix, section in _sections(path, info.annotation):
        if section in seen:  # a recursive schema: stop
            continue
        for name, sub in section.model_fields.items():
            _field_paths(f"{prefix}.{name}", sub, paths, (*seen, section))


def _sections(path: str, annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The sections (model classes) an annotation holds, with the path prefix of each."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(path, annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _sections(path, args[0])
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return _sections(f"{path}.*", args[1])
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence):
        return [s for arg in args if arg is not Ellipsis for s in _sections(f"{path}.*", arg)]
    return [s for arg in args for s in _sections(path, arg)]  # unions, X | None


def config_schema() -> dict[str, Any]:
    """The JSON schema of :class:`RunConfig` (for editors and documentation)."""
    return RunConfig.model_json_schema()

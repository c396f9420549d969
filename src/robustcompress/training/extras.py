"""Training extras: stateful :class:`~robustcompress.training.trainer.Callback` s named in a config.

An *extra* is a callback registered under a name, so a run config can ask for it::

    extras:
      - {name: magnitude_pruning, sparsity: 0.9, start_epoch: 2, end_epoch: 8}

:func:`register_extra` registers a callback class (or a factory function) under a
name; :func:`build_extra` builds one from its settings, checking them first: an
unknown name, an unknown or missing setting, or a value of the wrong type is a
one-line :class:`~robustcompress.errors.ConfigError` naming what is allowed
(:class:`SettingError` also names the setting, so the config check can say
``extras.0.sparsity: ...``). Settings are the factory's keyword parameters; their
type annotations are enforced with pydantic (YAML ``1e-3`` strings become floats,
``[a, b]`` lists become tuples where a tuple is declared); range checks belong in
the factory and raise :class:`SettingError`. :func:`list_extras` lists the names.

The hooks an extra may override, and how its state is checkpointed, are described
on :class:`~robustcompress.training.trainer.Callback`.

Built in:

* ``magnitude_pruning`` (:class:`MagnitudePruning`): gradual magnitude pruning
  (Zhu & Gupta 2017, "To prune, or not to prune", eq. 1), masks re-applied after
  every optimiser step; the masks are its checkpointed state.
* ``progressive_pruning`` (:class:`ProgressivePruning`): iterative prune-and-retrain
  (Guo et al. 2018 §4.1): each round masks a fraction of every weight tensor's
  remaining entries, then retrains; every round's model is kept as a snapshot.
* ``activation_l1`` (:class:`ActivationL1`): an ℓ1 penalty on hidden activations
  (Guo et al. 2018, Table 1), to make them sparse.
* ``snapshots`` (:class:`Snapshots`): keep the model every k epochs (e.g. the control
  of a pruning run, kept at the rounds' epochs).
* ``target_accuracy`` (:class:`TargetAccuracy`): stop once the tracked accuracy reaches
  a target (e.g. a paper's reported clean accuracy), the epochs being a cap.
* ``spectral_normalization`` (:class:`SpectralNormalization`): keep every layer's
  operator norm (a convolution's real operator, by power iteration) at or below a target
  by rescaling its weight after every step or epoch.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from robustcompress.errors import ConfigError, RobustCompressError
from robustcompress.models import hidden_layer_names, resolve_weight_matrix, weight_matrices
from robustcompress.training.trainer import Callback, Trainer

__all__ = [
    "ActivationL1",
    "MagnitudePruning",
    "ProgressivePruning",
    "SettingError",
    "Snapshots",
    "SpectralNormalization",
    "TargetAccuracy",
    "build_extra",
    "extra_settings",
    "list_extras",
    "register_extra",
    "write_snapshot",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_EXTRAS: dict[str, Callable[..., Callback]] = {}

F = TypeVar("F", bound=Callable[..., Callback])


class SettingError(ConfigError):
    """A bad setting of an extra: ``setting`` names it, ``problem`` says what is wrong."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def register_extra(name: str) -> Callable[[F], F]:
    """Class (or factory) decorator: make ``name`` buildable by :func:`build_extra`.

    ``name`` is lower case (letters, digits, ``_``, ``-``); the factory's keyword
    parameters are the extra's settings (``name`` is reserved for the config key).
    """
    if not _NAME.match(name):
        raise ValueError(f"extra name {name!r} must match {_NAME.pattern}")

    def decorate(factory: F) -> F:
        if name in _EXTRAS and _EXTRAS[name] is not factory:
            raise ValueError(f"extra {name!r} is already registered ({_EXTRAS[name]!r})")
        if "name" in _parameters(factory):
            raise ValueError(f"extra {name!r}: a setting may not be called 'name'")
        _EXTRAS[name] = factory
        return factory

    return decorate


def list_extras() -> list[str]:
    """The registered extra names, sorted."""
    return sorted(_EXTRAS)


def extra_settings(name: str) -> list[str]:
    """The setting names extra ``name`` accepts (its factory's parameters)."""
    return list(_parameters(_factory(name)))


def build_extra(name: str, **settings: Any) -> Callback:
    """Build the extra registered as ``name`` from ``settings`` (checked; see the module doc)."""
    factory = _factory(name)
    parameters = _parameters(factory)
    allowed = ", ".join(parameters) or "none"
    for key in settings:
        if key not in parameters:
            near = difflib.get_close_matches(key, list(parameters), n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise SettingError(key, f"unknown setting of extra {name!r} ({hint}allowed: {allowed})")
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in settings:
            raise SettingError(key, f"required setting of extra {name!r} is missing")
    annotations = _type_hints(factory)
    values: dict[str, Any] = {}
    for key, value in settings.items():
        annotation = annotations.get(key)
        if annotation is None:
            values[key] = value
            continue
        try:
            values[key] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise SettingError(key, f"{message[0].lower()}{message[1:]} (got {value!r})") from None
    try:
        extra = factory(**values)
    except RobustCompressError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"extra {name!r}: {exc}") from None
    if not isinstance(extra, Callback):
        raise TypeError(f"extra {name!r} built a {type(extra).__name__}, not a Callback")
    extra.name = name
    return extra


def _factory(name: str) -> Callable[..., Callback]:
    if name not in _EXTRAS:
        near = difflib.get_close_matches(name, list(_EXTRAS), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise SettingError(
            "name", f"unknown extra {name!r} ({hint}allowed: {', '.join(list_extras()) or 'none'})"
        )
    return _EXTRAS[name]


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(factory)
    return {k: p for k, p in signature.parameters.items() if p.kind in kinds}


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except (NameError, TypeError):  # unresolvable annotations: leave the values unchecked
        return {}


# ------------------------------------------------------------------ built in


def pruned_weights(model: nn.Module, weights: list[str | int] | None) -> dict[str, nn.Parameter]:
    """The weight tensors a pruning extra prunes, by name: those ``weights`` selects
    (names ``W1``, module paths or 1-based indices), default every weight matrix."""
    matrices = weight_matrices(model)
    chosen = (
        matrices
        if weights is None
        else [resolve_weight_matrix(matrices, k, what="pruned weight") for k in weights]
    )
    return {wm.name: wm.parameter for wm in chosen}


def restored_masks(
    extra: str, saved: dict[str, torch.Tensor], targets: dict[str, nn.Parameter]
) -> dict[str, torch.Tensor]:
    """Masks from a checkpoint, on their weights' device and dtype; a mask for a weight
    this run does not prune is a one-line ConfigError."""
    unknown = set(saved) - set(targets)
    if unknown:
        raise ConfigError(
            f"{extra}: the checkpoint has masks for {sorted(unknown)}, "
            f"this run prunes {sorted(targets)}"
        )
    return {k: v.to(targets[k].device, targets[k].dtype) for k, v in saved.items()}


def smallest_magnitude_mask(
    weight: torch.Tensor, count: int, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """A 0/1 mask of ``weight``'s shape that zeroes the ``count`` entries of smallest
    ``|w|`` among those ``keep`` marks (all when ``None``) and every entry ``keep``
    already zeroes. Ties break by position (a stable sort), so the mask is reproducible."""
    magnitude = weight.detach().abs().flatten()
    alive = torch.ones_like(magnitude) if keep is None else keep.detach().flatten().clone()
    candidates = alive.nonzero().squeeze(1)
    order = torch.argsort(magnitude[candidates], stable=True)
    alive[candidates[order[:count]]] = 0
    return alive.reshape(weight.shape)


def write_snapshot(trainer: Trainer, relative: Path, **meta: Any) -> Path:
    """Write the trainer's model as the checkpoint file ``<run>/<relative>``: weights,
    the model's name and settings, the run's config, epoch and step, and ``meta``
    (:func:`~robustcompress.training.load_model` and ``robustcompress attack`` read it)."""
    from robustcompress.training.checkpoint import write_checkpoint

    model = trainer.model
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    header = {
        "model": {
            "name": getattr(model, "registry_name", None),
            "kwargs": getattr(model, "model_kwargs", {}),
        },
        "config": trainer.metadata,
        "epoch": trainer.position.epoch,
        "step": trainer.position.step,
        **meta,
    }
    return write_checkpoint(trainer.run_dir / relative, tensors, header)


@register_extra("magnitude_pruning")
@dataclass
class MagnitudePruning(Callback):
    """Gradual magnitude pruning (Zhu & Gupta 2017, eq. 1), one weight matrix at a time.

    After the last optimiser step of each epoch ``e`` in ``start_epoch..end_epoch``
    every selected weight matrix masks the fraction

        s_e = sparsity · (1 − (1 − p)³),  p = (e − start_epoch + 1) / (end_epoch − start_epoch + 1)

    of its entries with the smallest |w| (s reaches ``sparsity`` at ``end_epoch``;
    masks only grow, so the epoch-end metrics already see the pruned weights). The
    masks are re-applied after every optimiser step, so pruned weights stay exactly
    zero whatever momentum or weight decay do. ``weights`` selects matrices by name
    (``W1``), module path or 1-based index; default: all. Biases are not pruned.

    State: the masks (checkpointed, so a resumed run keeps pruning the same entries).
    """

    sparsity: float
    start_epoch: int = 1
    end_epoch: int = 1
    weights: list[str | int] | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _targets: dict[str, nn.Parameter] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise SettingError("sparsity", f"must be in [0, 1) (got {self.sparsity})")
        if self.start_epoch < 1:
            raise SettingError("start_epoch", f"must be ≥ 1 (got {self.start_epoch})")
        if self.end_epoch < self.start_epoch:
            raise SettingError(
                "end_epoch", f"must be ≥ start_epoch = {self.start_epoch} (got {self.end_epoch})"
            )

    def setup(self, model: nn.Module) -> None:
        self._targets = pruned_weights(model, self.weights)

    def target_sparsity(self, epoch: int) -> float:
        """``s_e`` after epoch ``epoch`` (0 before ``start_epoch``)."""
        if epoch < self.start_epoch:
            return 0.0
        p = min(1.0, (epoch - self.start_epoch + 1) / (self.end_epoch - self.start_epoch + 1))
        return self.sparsity * (1.0 - (1.0 - p) ** 3)

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        pos = trainer.position
        if pos.batch == trainer.steps_per_epoch and self.start_epoch <= pos.epoch <= self.end_epoch:
            self.prune(self.target_sparsity(pos.epoch))
        for name, mask in self.masks.items():
            self._targets[name].mul_(mask)

    def prune(self, fraction: float) -> None:
        """Mask the ``fraction`` of smallest-|w| entries of every selected matrix (at least)."""
        with torch.no_grad():
            for name, weight in self._targets.items():
                mask = smallest_magnitude_mask(weight, round(fraction * weight.numel()))
                if name in self.masks:  # pruned entries stay pruned
                    mask = mask * self.masks[name]
                self.masks[name] = mask

    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = restored_masks("magnitude_pruning", state["masks"], self._targets)


@register_extra("progressive_pruning")
@dataclass
class ProgressivePruning(Callback):
    """Progressive magnitude pruning (Guo et al. 2018 §4.1): ``rounds`` rounds of
    prune-then-retrain, each ``epochs_per_round`` epochs long.

    Round ``r`` (1 … ``rounds``) starts by masking, in every selected weight tensor,
    ``round(fraction · n_r)`` of its ``n_r`` still unmasked entries, those of smallest
    ``|w|`` (layer-wise and uniform: every tensor reaches the same sparsity
    ``1 − (1 − fraction)^r`` up to rounding), then retrains for ``epochs_per_round``
    epochs. The run's epochs must be ``rounds · epochs_per_round``; start it from a
    trained dense model (a fine-tuning run). Masks are re-applied after every
    optimiser step, so pruned entries stay exactly zero and never come back; they are
    the checkpointed state with the number of rounds begun, so ``resume`` continues
    exactly. Paper: ``rounds = 16``, ``fraction = 1/3``: final sparsity 1 − (2/3)¹⁶ ≈ 99.85 %
    (the paper prints 99.74 % for the same formula).

    Every round's model is kept: ``<run>/rounds/round-RR.safetensors`` (round 0 is the
    dense starting model, round ``r`` the model after its retraining), checkpoint files
    that :func:`~robustcompress.training.load_model` and ``robustcompress attack``
    read, so one run yields ``rounds + 1`` models on a sparsity axis; the epoch-end
    metrics of epoch ``r · epochs_per_round`` are those of round ``r``'s model.
    ``weights`` selects tensors by name (``W1``), module path or 1-based index;
    default: every weight matrix and convolution kernel. Biases are not pruned.

    ``torch.nn.utils.prune`` is not used: it re-parametrises each weight as
    ``weight_orig · weight_mask``, which renames the parameters in the state dict that
    checkpoints, structure measures and regularizers read, and leaves the stored
    weights non-zero (the mask acts in the forward pass). Here the parameter itself
    holds the zeros.
    """

    rounds: int = 16
    fraction: float = 1 / 3
    epochs_per_round: int = 1
    weights: list[str | int] | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    begun: int = field(default=0, init=False)
    _targets: dict[str, nn.Parameter] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise SettingError("rounds", f"must be ≥ 1 (got {self.rounds})")
        if not 0.0 < self.fraction < 1.0:
            raise SettingError("fraction", f"must be in (0, 1) (got {self.fraction})")
        if self.epochs_per_round < 1:
            raise SettingError("epochs_per_round", f"must be ≥ 1 (got {self.epochs_per_round})")

    def setup(self, model: nn.Module) -> None:
        self._targets = pruned_weights(model, self.weights)

    def on_train_start(self, trainer: Trainer) -> None:
        epochs = self.rounds * self.epochs_per_round
        if trainer.settings.epochs != epochs:
            raise ConfigError(
                f"progressive_pruning: {self.rounds} rounds of {self.epochs_per_round} "
                f"epoch(s) need training.epochs = {epochs} (got {trainer.settings.epochs}); "
                "set the epochs or change rounds / epochs_per_round"
            )
        if self.begun == 0:  # a fresh run: keep the dense model, then begin round 1
            self.snapshot(trainer, 0)
            self.prune_round()

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        for name, mask in self.masks.items():
            self._targets[name].mul_(mask)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if epoch % self.epochs_per_round:
            return
        finished = epoch // self.epochs_per_round
        self.snapshot(trainer, finished)
        if finished < self.rounds:
            self.prune_round()

    def prune_round(self) -> None:
        """Begin the next round: mask ``fraction`` of each tensor's unmasked entries."""
        with torch.no_grad():
            for name, weight in self._targets.items():
                keep = self.masks.get(name)
                alive = weight.numel() if keep is None else int(keep.sum())
                mask = smallest_magnitude_mask(weight, round(self.fraction * alive), keep)
                self.masks[name] = mask
                weight.mul_(mask)
        self.begun += 1

    def sparsity(self) -> dict[str, float]:
        """The share of masked entries of each selected tensor."""
        return {
            name: 1.0 - float(self.masks[name].mean()) if name in self.masks else 0.0
            for name in self._targets
        }

    def snapshot(self, trainer: Trainer, round_: int) -> Path:
        """Write the model as ``rounds/round-RR.safetensors`` (a checkpoint file)."""
        return write_snapshot(
            trainer,
            Path("rounds") / f"round-{round_:02d}.safetensors",
            pruning={"round": round_, "sparsity": self.sparsity()},
        )

    def state_dict(self) -> dict[str, Any]:
        return {"masks": dict(self.masks), "begun": self.begun}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = restored_masks("progressive_pruning", state["masks"], self._targets)
        self.begun = int(state["begun"])


@register_extra("activation_l1")
@dataclass
class ActivationL1(Callback):
    """An ℓ1 penalty on hidden activations (Guo et al. 2018, §4.2 "Activation
    sparsity", Table 1): the loss gains

        lam · Σ_l (1/B) Σ_b ‖a_l(x_b)‖₁

    over the outputs ``a_l`` of the chosen modules on the training batch (``B``
    inputs; the sum over a layer's units, the mean over the batch; a step with two
    training passes, adversarial training with a clean mix, penalises both). ``layers``:
    module paths; default every activation module (every hidden representation). The paper
    gives neither the strengths nor the reduction; this one keeps ``lam`` independent
    of the batch size. Only training forward passes (the model in train mode, autograd
    on) are penalised: tracking and attack passes are not. No state: the penalty is a
    function of the current batch.
    """

    lam: float
    layers: list[str] | None = None
    _outputs: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    _handles: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise SettingError("lam", f"must be ≥ 0 (got {self.lam})")

    def setup(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        names = hidden_layer_names(model) if self.layers is None else list(self.layers)
        missing = [n for n in names if n not in modules]
        if missing or not names:
            raise SettingError(
                "layers",
                f"no module(s) {', '.join(missing)} in the model; choose from "
                f"{', '.join(n for n in modules if n)}"
                if missing
                else "the model has no activation modules; name the modules to penalise",
            )
        self._model = model
        for handle in self._handles:
            handle.remove()
        self._handles = [modules[n].register_forward_hook(self._keep) for n in names]

    def _keep(self, module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if self._model.training and torch.is_grad_enabled():
            self._outputs.append(output)

    def loss_term(self, trainer: Trainer) -> torch.Tensor | None:
        outputs, self._outputs = self._outputs, []
        if not outputs:
            return None
        per_layer = [a.flatten(1).abs().sum(dim=1).mean() for a in outputs]
        return self.lam * torch.stack(per_layer).sum()

    def on_train_end(self, trainer: Trainer, result: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@register_extra("snapshots")
@dataclass
class Snapshots(Callback):
    """Keep the model every ``every_epochs`` epochs and at the last:
    ``<run>/snapshots/epoch-EEE.safetensors`` (epoch 0 is the starting model), checkpoint
    files that :func:`~robustcompress.training.load_model` and ``robustcompress attack``
    read.

    A run's model at several points of training, evaluated afterwards like the rounds of
    ``progressive_pruning``: e.g. the control of a pruning run (the same retraining
    without pruning, kept at the same epochs). No state: a resumed run only rewrites the
    snapshot of the epoch it resumes from, with the same weights.
    """

    every_epochs: int = 1

    def __post_init__(self) -> None:
        if self.every_epochs < 1:
            raise SettingError("every_epochs", f"must be ≥ 1 (got {self.every_epochs})")

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.position.step == 0:
            self.snapshot(trainer, 0)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if epoch % self.every_epochs == 0 or epoch == trainer.settings.epochs:
            self.snapshot(trainer, epoch)

    def snapshot(self, trainer: Trainer, epoch: int) -> Path:
        """Write the model as ``snapshots/epoch-EEE.safetensors``."""
        return write_snapshot(trainer, Path("snapshots") / f"epoch-{epoch:03d}.safetensors")


@register_extra("target_accuracy")
@dataclass
class TargetAccuracy(Callback):
    """Stop training once the tracked accuracy reaches ``accuracy`` (an epoch cap stays
    ``optimizer.epochs``): "train until the paper's clean accuracy is reached".

    Checked at each epoch end from ``epoch >= min_epochs`` on the evaluation subset's
    ``metric`` (default ``accuracy``); training ends after that epoch's checkpoint and
    the run's summary records ``stopped_early`` and the epochs actually trained. State:
    the epoch it stopped at, so a run killed after deciding resumes to the same end.
    """

    accuracy: float
    min_epochs: int = 1
    metric: str = "accuracy"
    stopped_at: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.accuracy <= 1.0:
            raise SettingError("accuracy", f"must be in (0, 1] (got {self.accuracy})")
        if self.min_epochs < 1:
            raise SettingError("min_epochs", f"must be ≥ 1 (got {self.min_epochs})")

    def _reason(self) -> str:
        return f"{self.metric} reached {self.accuracy:g} at epoch {self.stopped_at}"

    def on_train_start(self, trainer: Trainer) -> None:
        if self.stopped_at is not None:
            trainer.request_stop(self._reason())

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        value = trainer.latest.get(self.metric)
        if epoch >= self.min_epochs and value is not None and value >= self.accuracy:
            self.stopped_at = epoch
            trainer.request_stop(self._reason())

    def state_dict(self) -> dict[str, Any]:
        return {} if self.stopped_at is None else {"stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopped_at = state.get("stopped_at")


@register_extra("spectral_normalization")
@dataclass
class SpectralNormalization(Callback):
    """Keep every selected layer's operator norm at (``mode: normalize``) or below
    (``mode: clip``) ``target`` by rescaling its weight, ``W ← W · target / σ̂``.

    σ̂ is the power-iteration estimate of Miyato et al. 2018 (Algorithm 1), run on each
    layer's real linear map: a convolution's on the feature-map size it receives in
    training (recorded by a forward hook), with Aᵀ by autograd, so padding and stride
    are those of the layer (:func:`robustcompress.structure.operators.power_iteration`);
    ``power_iterations`` per update from a persistent vector per layer. ``every: step``
    rescales after every optimiser step (Miyato's frequency, with one iteration);
    ``every: epoch`` after each epoch's last step, as the ICLR 2020 submission on AR as
    regularization does (its Appendix A, after Sedghi et al. 2019: "we clip the spectral
    norm every epoch"), where more iterations are affordable.

    This is the *projection* form: the weights themselves are rescaled, so a stored model
    is the normalised one and needs nothing at load time. Miyato et al. instead divide by
    σ̂ inside the forward pass, which also changes the gradients; the two keep the same
    norms. ``weights`` selects layers (``W1``, module paths, 1-based indices); default all.
    Biases are left alone. State: the power-iteration vectors (checkpointed, so ``resume``
    continues exactly).
    """

    target: float = 1.0
    mode: typing.Literal["clip", "normalize"] = "clip"
    every: typing.Literal["step", "epoch"] = "step"
    power_iterations: int = 1
    weights: list[str | int] | None = None
    seed: int = 0
    vectors: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _layers: dict[str, nn.Module] = field(default_factory=dict, init=False, repr=False)
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)
    _handles: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.target > 0:
            raise SettingError("target", f"must be > 0 (got {self.target})")
        if self.power_iterations < 1:
            raise SettingError("power_iterations", f"must be ≥ 1 (got {self.power_iterations})")

    def setup(self, model: nn.Module) -> None:
        matrices = weight_matrices(model)
        chosen = (
            matrices
            if self.weights is None
            else [
                resolve_weight_matrix(matrices, k, what="normalised weight") for k in self.weights
            ]
        )
        self._layers = {wm.name: wm.module for wm in chosen}
        for handle in self._handles:
            handle.remove()
        self._handles = [
            module.register_forward_pre_hook(self._size_hook(name))
            for name, module in self._layers.items()
            if isinstance(module, nn.Conv2d)
        ]

    def _size_hook(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self._sizes.setdefault(name, (int(inputs[0].shape[-2]), int(inputs[0].shape[-1])))

        return hook

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        if self.every == "epoch" and trainer.position.batch != trainer.steps_per_epoch:
            return
        self.rescale()

    def rescale(self) -> dict[str, float]:
        """One update of every layer: estimate σ̂, rescale; returns the estimates."""
        from robustcompress.structure.operators import power_iteration

        estimates = {}
        for i, (name, module) in enumerate(self._layers.items()):
            if isinstance(module, nn.Conv2d) and name not in self._sizes:
                continue  # not reached by a forward pass yet
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            sigma, self.vectors[name] = power_iteration(
                module,
                self._sizes.get(name),
                self.power_iterations,
                self.vectors.get(name),
                generator=generator,
            )
            estimates[name] = sigma
            if sigma > 0 and (self.mode == "normalize" or sigma > self.target):
                weight = module.weight
                assert isinstance(weight, torch.Tensor)
                with torch.no_grad():
                    weight.mul_(self.target / sigma)
        return estimates

    def state_dict(self) -> dict[str, Any]:
        return {
            "vectors": dict(self.vectors),
            "sizes": {k: list(v) for k, v in self._sizes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state["vectors"]) - set(self._layers)
        if unknown:
            raise ConfigError(
                f"spectral_normalization: the checkpoint has vectors for {sorted(unknown)}, "
                f"this run normalises {sorted(self._layers)}"
            )
        self.vectors = {
            k: v.to(self._layers[k].weight.device, self._layers[k].weight.dtype)
            for k, v in state["vectors"].items()
        }
        self._sizes = {k: (int(v[0]), int(v[1])) for k, v in state["sizes"].items()}

    def on_train_end(self, trainer: Trainer, result: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


# the LR virtual layer lives in its own module; importing it registers ``lr_layer``
from robustcompress.training import lr_layer as _lr_layer  # noqa: E402

del _lr_layer

"""The trainer: natural, adversarial, regularized and fine-tuning runs.

Set-up of Langenberg et al. 2019, §5: stochastic gradient descent on the
cross-entropy plus the weight regularizers of eq. (8); FCNN on MNIST with learning
rate 0.001 and batch size 128, CNN on Fashion-MNIST with batch size 64 and learning
rate 0.01 from scratch or 0.001 when fine-tuning. The trainer takes the optimiser
as a factory ``optimizer(parameters) -> torch.optim.Optimizer``; in experiments it
is :meth:`robustcompress.experiments.config.OptimizerConfig.build` (SGD or Adam,
the one place where the config's optimiser settings meet torch). The
learning-rate schedule and the number of epochs are :class:`TrainingSettings`
(defaults live in the experiment config schema,
:mod:`robustcompress.experiments.config`).

One optimiser step at global step ``t`` (1-based):

1. adversarial training only: ``x_adv = attack(model, x, y)`` with the attack seeded
   by ``derive_seed(seed, "adversarial", t)``; the examples come from
   :mod:`robustcompress.attacks` (Madry et al. 2018 train on the adversarial
   examples alone, ``mix = 0``; ``mix = μ > 0`` trains on
   ``(1 − μ)·CE(x_adv) + μ·CE(x)``, Goodfellow et al. 2015 use μ = 0.5);
2. ``L = CE + Σ_r penalty_r(W) + Σ_c loss_term_c`` (eq. 8) with every regularizer
   used as a loss term, plus the loss terms of the callbacks (training extras);
3. ``optimizer.step()``, then, with ``proximal=True``, ``W ← prox_{η·λR}(W)`` for every
   regularizer that has a closed-form proximal operator (ℓ1: soft-thresholding,
   nuclear: singular-value thresholding); such regularizers are then left out of
   step 2 so λ is applied once. Regularizers without a prox (joint, eq. 7) stay in
   the loss;
4. masks (if any) are re-applied, ``W ← W ⊙ M``, so pruned weights stay exactly zero
   whatever momentum or weight decay do;
5. every callback's :meth:`Callback.after_optimizer_step` (pruning masks, projections).

Callbacks (:class:`Callback`) are the seam for *training extras*: stateful additions
such as pruning schedules that a run config names in its ``extras`` list (registry:
:mod:`robustcompress.training.extras`). Their hooks and how their state is saved are
described on :class:`Callback`.

Every ``track_every`` steps, at every epoch end (every ``track_every_epochs``-th and
the last, when that is set) and before the first step the
trackers (:mod:`robustcompress.training.trackers`) are evaluated on the fixed
evaluation subset and their rows appended to ``metrics.jsonl``. A checkpoint is
written at every epoch end and every ``checkpoint_every`` steps
(:mod:`robustcompress.training.checkpoint`).

Resuming is exact on the CPU: each epoch's data order is a pure function of
``(seed, epoch)``, a mid-epoch resume skips the batches already done, attack seeds
are a function of ``(seed, step)``, and the global RNG states, optimiser buffers,
the callbacks' states, the running training-loss average and the length of
``metrics.jsonl`` at the time of the checkpoint are restored. A run killed at any
moment and resumed therefore writes the same metrics as a run never interrupted.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.attacks import Attack
from robustcompress.catalogue import headline
from robustcompress.errors import CheckpointError, ConfigError, DivergedError
from robustcompress.models import resolve_weight_matrix, weight_matrices
from robustcompress.regularizers import Regularizer, regularized_loss
from robustcompress.training.checkpoint import (
    Checkpoint,
    apply_weights,
    checkpoint_name,
    is_epoch_end,
    list_checkpoints,
    newest_good_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    remove_checkpoint,
    state_from_checkpoint,
    state_to_checkpoint,
    write_checkpoint,
)
from robustcompress.training.progress import Reporter, RunLog
from robustcompress.training.rng import (
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
)
from robustcompress.training.trackers import (
    EvaluationContext,
    MetricRecord,
    MetricsWriter,
    Tracker,
    latest_values,
    read_metrics,
    truncate_metrics,
)

SCHEDULES = ("none", "step", "cosine", "inv", "multistep")

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
"""Builds the optimiser over the trainable parameters (model's first, then the callbacks')."""


def learning_rate(
    base_lr: float,
    step: int,
    *,
    schedule: str = "none",
    steps_per_epoch: int = 1,
    total_steps: int = 1,
    step_size: int = 1,
    gamma: float = 0.1,
    power: float = 0.75,
    milestones: tuple[int, ...] = (),
) -> float:
    """The learning rate η_t of the optimiser step taken after ``step`` completed steps.

    * ``none``: η_t = η₀;
    * ``step``: η_t = η₀·γ^⌊e / step_size⌋ with e = ⌊t / steps_per_epoch⌋ the number of
      completed epochs (decay every ``step_size`` epochs);
    * ``cosine``: η_t = η₀·(1 + cos(π t / T))/2 with T the total number of steps
      (Loshchilov & Hutter 2017, without restarts), updated every step;
    * ``inv``: η_t = η₀·(1 + γ·t)^(−power), updated every step: Caffe's ``inv`` policy,
      which its LeNet solvers use (γ = 10⁻⁴, power = 0.75; Guo et al. 2018 §4.2);
    * ``multistep``: η_t = η₀·γ^m with m the number of ``milestones`` (epochs) already
      completed (PyTorch's ``MultiStepLR``; He et al.'s ResNet schedule divides by 10 at
      fixed epochs).

    A pure function of the step, so a resumed run needs no scheduler state.
    """
    if schedule == "none":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** ((step // steps_per_epoch) // step_size)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "inv":
        return base_lr * (1.0 + gamma * step) ** (-power)
    if schedule == "multistep":
        epochs_done = step // steps_per_epoch
        return base_lr * gamma ** sum(1 for m in milestones if epochs_done >= m)
    raise ConfigError(f"unknown learning-rate schedule {schedule!r}: choose one of {SCHEDULES}")


@dataclass(frozen=True)
class TrainingSettings:
    """The loop's settings of one training run (the optimiser's own are in its factory).

    ``schedule``, ``step_size``, ``gamma`` and ``power`` scale each parameter group's initial
    learning rate (:func:`learning_rate`). ``track_every`` and ``checkpoint_every``
    count optimiser steps; 0 means "at epoch ends only". ``track_every_epochs = k``
    tracks at every k-th epoch end and at the last epoch's only (1: every epoch end).
    The defaults here are neutral; the paper's defaults are in the experiment config
    schema.
    """

    epochs: int
    batch_size: int
    schedule: str = "none"
    step_size: int = 1
    gamma: float = 0.1
    power: float = 0.75
    milestones: tuple[int, ...] = ()
    proximal: bool = False
    seed: int = 0
    track_every: int = 0
    checkpoint_every: int = 0
    track_every_epochs: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "track_every_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training: {name} must be ≥ 1, got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"training: unknown schedule {self.schedule!r}: choose one of {SCHEDULES}"
            )


@dataclass(frozen=True)
class AdversarialTraining:
    """Train on adversarial examples of ``attack`` (Madry et al. 2018).

    ``mix`` is the weight μ of the clean loss: the data term is
    ``(1 − μ)·CE(f(x_adv), y) + μ·CE(f(x), y)``; μ = 0 (default) is pure adversarial
    training as in Madry et al. and Langenberg et al. §5.
    """

    attack: Attack
    mix: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix < 1.0:
            raise ConfigError(f"adversarial training: mix must be in [0, 1), got {self.mix}")

    def examples(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
    ) -> torch.Tensor:
        """Adversarial examples for one batch; ``seed`` fixes any random start."""
        return self.attack.replace(seed=seed)(model, x, y)


class Callback:
    """Hooks into the training loop, and the base of training extras.

    Every hook is a no-op here; override what you need. In the order they run:

    * :meth:`setup` ``(model)``: once, in ``Trainer.__init__``, right after the model
      is moved to its device and before regularizers, masks and the optimiser see
      it. May change the model in place (e.g. a spectral-normalisation
      parametrisation; the checkpoints then hold the changed model's ``state_dict``)
      and create tensors the extra owns.
    * :meth:`parameters` ``()``: when the optimiser is built; extra trainable tensors
      the callback owns (e.g. the factors of a low-rank virtual layer). The optimiser
      trains them after the model's parameters; their values must be part of
      :meth:`state_dict` and restored *in place* (``copy_``) by
      :meth:`load_state_dict`, since the optimiser holds these very tensors.
    * :meth:`on_train_start` ``(trainer)``: when :meth:`Trainer.fit` starts, fresh or
      resumed; on a resumed run after :meth:`load_state_dict`, so do not reset state
      here. ``trainer.model`` and ``trainer.optimizer`` are final.
    * :meth:`loss_term` ``(trainer)``: every step, after the forward pass; a scalar
      tensor added to the loss before ``backward()`` (reported in the step's terms as
      ``extra/<name>``), or ``None``.
    * :meth:`after_optimizer_step` ``(trainer, step)``: every step, under
      ``torch.no_grad()``, after ``optimizer.step()``, the proximal steps and the
      trainer's masks; the place to change weights (apply pruning masks, project).
      ``trainer.position`` already counts this step; ``trainer.position.batch ==
      trainer.steps_per_epoch`` at the last step of an epoch.
    * :meth:`on_step_end` ``(trainer, step, terms)``: every step, before tracking
      and checkpointing; for observing (the weights are final for this step).
    * :meth:`on_track` ``(trainer, step, values)``: after every tracking event, with
      the values just written to ``metrics.jsonl`` (``metric`` or ``metric/layer``
      keys), before any checkpoint of that step; raising here (e.g.
      :class:`~robustcompress.errors.DivergedError`) keeps the model out of the
      checkpoints.
    * :meth:`on_epoch_end` ``(trainer, epoch)``: after the epoch-end tracking (its
      values are in ``trainer.latest``) and before the epoch-end checkpoint.
    * :meth:`on_train_end` ``(trainer, result)``: after the last epoch.

    **State.** :meth:`state_dict` returns what a resumed run needs to continue
    exactly (counters, RNG states, masks, running averages): dicts with string keys,
    lists, tensors and JSON scalars. It is written into every checkpoint (tensors as
    safetensors, the rest as JSON, see :mod:`~robustcompress.training.checkpoint`)
    and handed back to :meth:`load_state_dict` on resume (tensors on the CPU, lists
    for tuples), after :meth:`setup`. A callback with an empty state (the default) is
    not saved. Callbacks are matched to saved states by :attr:`name` (the registry
    name of an extra, else the class name; ``name#2`` for the second of one name).
    """

    name: str = ""
    """Key of the callback's state in checkpoints and of its loss term; set by
    :func:`~robustcompress.training.extras.build_extra`. Empty: the class name."""

    state_optional: bool = False
    """True for a watcher that every run gets and that older checkpoints may lack (the
    divergence monitor): resuming from a checkpoint without its state starts it fresh
    instead of refusing. An extra that changes training must keep this False."""

    def setup(self, model: nn.Module) -> None: ...

    def parameters(self) -> Iterable[nn.Parameter]:
        return ()

    def on_train_start(self, trainer: Trainer) -> None: ...

    def loss_term(self, trainer: Trainer) -> torch.Tensor | None:
        return None

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None: ...

    def on_track(self, trainer: Trainer, step: int, values: Mapping[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None: ...

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise CheckpointError(
                f"{type(self).__name__} got a saved state but does not implement load_state_dict"
            )


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    steps: int
    epochs: int
    final: dict[str, float | None]
    timing: dict[str, Any]
    checkpoint: Path | None
    resumed_from_step: int | None = None
    stopped_early: str | None = None
    """Why training ended before the last epoch (:meth:`Trainer.request_stop`), or None."""


@dataclass
class _Position:
    """Where training stands: ``batch`` batches of epoch ``epoch`` are done."""

    step: int = 0
    epoch: int = 1
    batch: int = 0
    loss_sum: float = 0.0
    ce_sum: float = 0.0
    loss_count: int = 0
    timing: dict[str, Any] = field(
        default_factory=lambda: {"training_s": 0.0, "tracking_s": 0.0, "checkpointing_s": 0.0}
    )


class Trainer:
    """Trains ``model`` on ``train_data`` and writes metrics and checkpoints to ``run_dir``.

    Args:
        model: built with :func:`robustcompress.models.create_model` (its registry
            name and kwargs go into checkpoints so :func:`~.checkpoint.load_model` works).
        train_data: an :class:`~robustcompress.data.ArrayDataset`.
        settings: the loop's settings (epochs, batch size, schedule, bookkeeping).
        optimizer: builds the optimiser from the list of trainable parameters, e.g.
            ``OptimizerConfig(name="adam", lr=1e-3).build`` or
            ``lambda ps: torch.optim.SGD(ps, lr=0.1)``; the schedule scales the
            learning rate each parameter group starts with.
        run_dir: receives ``metrics.jsonl`` and ``checkpoints/``; an existing
            checkpoint there is resumed.
        eval_data: ``(images, labels)`` of the fixed evaluation subset.
        regularizers: weight regularizers (eq. 8).
        adversarial: adversarial-training settings, or ``None`` for natural training.
        trackers: measured on ``eval_data`` (see :mod:`~.trackers`).
        callbacks: :class:`Callback` hooks and training extras (their state is
            checkpointed).
        masks: optional ``{weight matrix (name, path or index): 0/1 tensor}`` re-applied
            after every optimiser step (pruning).
        device: where to train.
        metadata: JSON-able run description stored in every checkpoint (``config``).
        reporter: progress/log sink (default: log to ``run_dir/log.txt`` only).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        settings: TrainingSettings,
        *,
        optimizer: OptimizerFactory,
        run_dir: str | Path,
        eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
        regularizers: Sequence[Regularizer] = (),
        adversarial: AdversarialTraining | None = None,
        trackers: Sequence[Tracker] = (),
        callbacks: Sequence[Callback] = (),
        masks: Mapping[str | int, torch.Tensor] | None = None,
        device: str | torch.device = "cpu",
        metadata: Mapping[str, Any] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.callbacks = list(callbacks)
        self.callback_keys = _callback_keys(self.callbacks)
        """Each callback's key in checkpoints and loss terms (see :class:`Callback`)."""
        for callback in self.callbacks:
            callback.setup(self.model)
        self.train_data = train_data
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.regularizers = list(regularizers)
        for reg in self.regularizers:
            reg.check(self.model)
        self.prox_regularizers = [r for r in self.regularizers if settings.proximal and r.has_prox]
        self.loss_regularizers = [
            r for r in self.regularizers if not any(r is p for p in self.prox_regularizers)
        ]
        self.adversarial = adversarial
        self.trackers = list(trackers)
        self.masks: dict[str, torch.Tensor] = {}
        for key, mask in (masks or {}).items():
            wm = resolve_weight_matrix(weight_matrices(self.model), key, what="masked weight")
            if mask.shape != wm.parameter.shape:
                raise ConfigError(
                    f"mask for {wm.name} has shape {tuple(mask.shape)}, "
                    f"the weight has {tuple(wm.parameter.shape)}"
                )
            self.masks[wm.name] = mask.to(self.device, wm.parameter.dtype)
        if eval_data is not None:
            self.eval_images = eval_data[0].to(self.device)
            self.eval_labels = eval_data[1].to(self.device)
        elif self.trackers:
            raise ConfigError("trackers need eval_data (images, labels) to measure on")
        self.metadata = dict(metadata or {})
        self.reporter = reporter or Reporter(RunLog(self.run_dir / "log.txt"))
        parameters = list(self.model.parameters())
        parameters += [p for callback in self.callbacks for p in callback.parameters()]
        self.optimizer = optimizer(parameters)
        self.base_lrs = [float(group["lr"]) for group in self.optimizer.param_groups]
        self.steps_per_epoch = math.ceil(len(train_data) / settings.batch_size)
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.position = _Position()
        self.stop_reason: str | None = None
        self.last_checkpoint: Path | None = None
        self._writer: MetricsWriter | None = None
        self._latest: dict[str, float] = {}

    # ------------------------------------------------------------------ public

    def fit(self) -> TrainResult:
        """Train to the last epoch, resuming from the latest checkpoint in ``run_dir``."""
        resumed = self._start()
        pos = self.position
        self._writer = MetricsWriter(self.metrics_path)
        try:
            self.reporter.start(self.settings.epochs, self.steps_per_epoch, pos.epoch)
            for callback in self.callbacks:
                callback.on_train_start(self)
            if resumed is None:
                self._track()
            while pos.epoch <= self.settings.epochs and self.stop_reason is None:
                self._run_epoch()
                pos.epoch += 1
                pos.batch = 0
            if self.stop_reason is not None:
                self.reporter.message(f"stopped after epoch {pos.epoch - 1}: {self.stop_reason}")
            result = TrainResult(
                steps=pos.step,
                epochs=pos.epoch - 1,
                final=latest_values(read_metrics(self.metrics_path)),
                timing=self._timing_summary(),
                checkpoint=self.last_checkpoint,
                resumed_from_step=resumed,
                stopped_early=self.stop_reason,
            )
            for callback in self.callbacks:
                callback.on_train_end(self, result)
            t = result.timing
            self.reporter.message(
                f"done: {pos.step} steps; time training {t['training_s']:.1f} s, tracking "
                f"{t['tracking_s']:.1f} s ({100 * t['tracking_fraction']:.0f}% of the total), "
                f"checkpoints {t['checkpointing_s']:.1f} s"
            )
            return result
        finally:
            self._writer.close()

    def request_stop(self, reason: str) -> None:
        """End training after the current epoch (its tracking and checkpoint still run).

        For callbacks, e.g. stopping once a target accuracy is reached. A callback that
        stops must keep the decision in its state and ask again in
        :meth:`Callback.on_train_start`, so a resumed run stops at the same epoch.
        """
        self.stop_reason = reason

    @property
    def latest(self) -> dict[str, float]:
        """The values of the latest tracking event (``metric`` or ``metric/layer`` keys)."""
        return dict(self._latest)

    def current_lr(self) -> float:
        """η for the next optimiser step (of the first parameter group)."""
        return self._scheduled_lr(self.base_lrs[0])

    def _scheduled_lr(self, base_lr: float) -> float:
        s = self.settings
        return learning_rate(
            base_lr,
            self.position.step,
            schedule=s.schedule,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            step_size=s.step_size,
            gamma=s.gamma,
            power=s.power,
            milestones=s.milestones,
        )

    def apply_masks(self) -> None:
        """``W ← W ⊙ M`` for every masked weight matrix."""
        if not self.masks:
            return
        with torch.no_grad():
            for wm in weight_matrices(self.model):
                if wm.name in self.masks:
                    wm.parameter.mul_(self.masks[wm.name])

    # ----------------------------------------------------------------- the loop

    def _run_epoch(self) -> None:
        from robustcompress.data import make_loader

        pos, s = self.position, self.settings
        loader = make_loader(
            self.train_data,
            s.batch_size,
            shuffle=True,
            seed=derive_seed(s.seed, "data-order", pos.epoch),
        )
        self.reporter.epoch_started(pos.epoch, pos.batch)
        epoch_loss, epoch_steps = 0.0, 0
        for x, y in itertools.islice(iter(loader), pos.batch, None):
            start = time.perf_counter()
            terms = self._train_step(x.to(self.device), y.to(self.device))
            pos.timing["training_s"] += time.perf_counter() - start
            epoch_loss += terms["total"]
            epoch_steps += 1
            self.reporter.step_done(pos.step, terms["total"])
            for callback in self.callbacks:
                callback.on_step_end(self, pos.step, terms)
            epoch_end = pos.batch == self.steps_per_epoch
            tracked_end = epoch_end and (
                pos.epoch % s.track_every_epochs == 0 or pos.epoch == s.epochs
            )
            if tracked_end or (s.track_every and pos.step % s.track_every == 0):
                self._track()
            if epoch_end:
                for callback in self.callbacks:
                    callback.on_epoch_end(self, pos.epoch)
            if epoch_end or (s.checkpoint_every and pos.step % s.checkpoint_every == 0):
                self._checkpoint(epoch_end)
        if epoch_steps:
            self._log_epoch(epoch_loss / epoch_steps)
        self.reporter.epoch_done(pos.epoch)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pos = self.position
        lr = self.current_lr()
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self._scheduled_lr(base_lr)
        step = pos.step + 1
        x_adv = None
        if self.adversarial is not None:
            seed = derive_seed(self.settings.seed, "adversarial", step)
            x_adv = self.adversarial.examples(self.model, x, y, seed)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, terms = self._loss(x, y, x_adv)
        if self.callbacks:
            loss = self._extra_loss_terms(loss, terms)
        if not torch.isfinite(loss):
            raise DivergedError(
                f"non-finite loss at step {step} (epoch {pos.epoch}): "
                + ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
                + f"; the last good checkpoint is {self._last_good()}; "
                "lower optimizer.lr or the regularization strengths"
            )
        loss.backward()
        self.optimizer.step()
        for reg in self.prox_regularizers:
            reg.prox(self.model, lr)
        self.apply_masks()
        pos.step = step
        pos.batch += 1
        pos.loss_sum += terms["total"]
        pos.ce_sum += terms["ce"]
        pos.loss_count += 1
        if self.callbacks:
            with torch.no_grad():
                for callback in self.callbacks:
                    callback.after_optimizer_step(self, step)
        return terms

    def _extra_loss_terms(self, loss: torch.Tensor, terms: dict[str, float]) -> torch.Tensor:
        """``loss + Σ_c loss_term_c``; each term is reported as ``extra/<name>``."""
        added = False
        for key, callback in zip(self.callback_keys, self.callbacks, strict=True):
            term = callback.loss_term(self)
            if term is not None:
                loss = loss + term
                terms[f"extra/{key}"] = float(term.detach())
                added = True
        if added:
            terms["total"] = float(loss.detach())
        return loss

    def _loss(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. (8) on the clean or adversarial batch, with the optional clean mix."""
        logits = self.model(x if x_adv is None else x_adv)
        loss, terms = regularized_loss(self.model, logits, y, self.loss_regularizers)
        mix = self.adversarial.mix if self.adversarial is not None else 0.0
        if x_adv is not None and mix > 0:
            ce_adv = F.cross_entropy(logits, y)
            ce_clean = F.cross_entropy(self.model(x), y)
            loss = loss + mix * (ce_clean - ce_adv)
            terms["ce"] = float((1 - mix) * ce_adv.detach() + mix * ce_clean.detach())
            terms["total"] = float(loss.detach())
        return loss, terms

    # ---------------------------------------------------------------- tracking

    def _track(self) -> None:
        if self._writer is None:
            return
        pos = self.position
        start = time.perf_counter()
        records: list[MetricRecord] = []
        epoch = pos.epoch if pos.step > 0 else 0
        if pos.loss_count:
            records += [
                MetricRecord(pos.step, epoch, "train/loss", pos.loss_sum / pos.loss_count),
                MetricRecord(pos.step, epoch, "train/ce", pos.ce_sum / pos.loss_count),
            ]
            pos.loss_sum, pos.ce_sum, pos.loss_count = 0.0, 0.0, 0
        records.append(MetricRecord(pos.step, epoch, "lr", self.current_lr()))
        if self.trackers:
            was_training = self.model.training
            self.model.eval()
            context = EvaluationContext(
                self.model, self.eval_images, self.eval_labels, pos.step, epoch, self.regularizers
            )
            self.reporter.tracking_started(len(self.trackers))
            per_tracker = pos.timing.setdefault("per_tracker_s", {})
            for tracker in self.trackers:
                t0 = time.perf_counter()
                for m in tracker.measure(context):
                    records.append(MetricRecord(pos.step, epoch, m.metric, m.value, m.layer))
                per_tracker[tracker.name] = per_tracker.get(tracker.name, 0.0) + (
                    time.perf_counter() - t0
                )
                self.reporter.tracker_done()
            self.reporter.tracking_done()
            self.model.train(was_training)
        self._writer.write(records)
        self._latest = {r.key: r.value for r in records}
        pos.timing["tracking_s"] += time.perf_counter() - start
        pos.timing["tracking_events"] = pos.timing.get("tracking_events", 0) + 1
        for callback in self.callbacks:
            callback.on_track(self, pos.step, self._latest)

    def _log_epoch(self, mean_loss: float) -> None:
        pos, t = self.position, self.position.timing
        shown = [f"train loss {mean_loss:.4f}"]
        for key, value in self._latest.items():
            if headline(key):
                shown.append(f"{key} {value:.4f}")
        total = t["training_s"] + t["tracking_s"] + t["checkpointing_s"]
        share = t["tracking_s"] / total if total else 0.0
        self.reporter.message(
            f"epoch {pos.epoch}/{self.settings.epochs} (step {pos.step}): "
            + ", ".join(shown)
            + f"; time so far: training {t['training_s']:.1f} s, tracking "
            f"{t['tracking_s']:.1f} s ({100 * share:.0f}%), "
            f"checkpoints {t['checkpointing_s']:.2f} s"
        )

    def _timing_summary(self) -> dict[str, Any]:
        t = dict(self.position.timing)
        total = t["training_s"] + t["tracking_s"] + t["checkpointing_s"]
        t["total_s"] = total
        t["tracking_fraction"] = t["tracking_s"] / total if total else 0.0
        return t

    # ------------------------------------------------------------- checkpoints

    def _last_good(self) -> str:
        return str(self.last_checkpoint) if self.last_checkpoint else "none (no checkpoint yet)"

    def _checkpoint(self, epoch_end: bool) -> None:
        pos = self.position
        start = time.perf_counter()
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise DivergedError(
                    f"non-finite weights in {name} at step {pos.step} (epoch {pos.epoch}); "
                    f"not checkpointed, the last good checkpoint is {self._last_good()}; "
                    "lower optimizer.lr or the regularization strengths"
                )
        optim_tensors, optim_scalars = optimizer_to_checkpoint(self.optimizer)
        rng_tensors, rng_scalars = capture_rng_state(cuda=self.device.type == "cuda")
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(optim_tensors)
        tensors.update({f"rng.{k}": v for k, v in rng_tensors.items()})
        tensors.update({f"mask.{k}": v for k, v in self.masks.items()})
        callback_states: dict[str, Any] = {}
        for key, callback in zip(self.callback_keys, self.callbacks, strict=True):
            state = callback.state_dict()
            if state:
                state_tensors, callback_states[key] = state_to_checkpoint(f"callback.{key}", state)
                tensors.update(state_tensors)
        assert self._writer is not None
        meta = {
            "model": {
                "name": getattr(self.model, "registry_name", None),
                "kwargs": getattr(self.model, "model_kwargs", {}),
            },
            "config": self.metadata,
            "epoch": pos.epoch,
            "step": pos.step,
            "batch_in_epoch": pos.batch,
            "steps_per_epoch": self.steps_per_epoch,
            "data_order_seed": derive_seed(self.settings.seed, "data-order", pos.epoch),
            "epoch_end": epoch_end,
            "optimizer": optim_scalars,
            "rng": rng_scalars,
            "callbacks": callback_states,
            "trainer": {
                "metrics_offset": self._writer.offset(),
                "loss_sum": pos.loss_sum,
                "ce_sum": pos.ce_sum,
                "loss_count": pos.loss_count,
                "latest": self._latest,
                "timing": pos.timing,
            },
        }
        name = checkpoint_name(pos.step, pos.epoch if epoch_end else None)
        path = write_checkpoint(self.checkpoint_dir / name, tensors, meta)
        for old in list_checkpoints(self.checkpoint_dir):
            if old != path and not is_epoch_end(old):
                remove_checkpoint(old)
        self.last_checkpoint = path
        pos.timing["checkpointing_s"] += time.perf_counter() - start

    def _restore_callbacks(self, checkpoint: Checkpoint) -> None:
        saved = dict(checkpoint.meta.get("callbacks") or {})
        for key, callback in zip(self.callback_keys, self.callbacks, strict=True):
            if key in saved:
                state = state_from_checkpoint(saved.pop(key), checkpoint.tensors, f"callback.{key}")
                try:
                    callback.load_state_dict(state)
                except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                    raise CheckpointError(
                        f"{checkpoint.path}: cannot restore the state of callback {key!r}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            elif callback.state_dict() and not callback.state_optional:
                raise CheckpointError(
                    f"{checkpoint.path} holds no state for callback {key!r}: the run that "
                    "wrote it had other callbacks (extras); resume with the same ones"
                )
        if saved:
            raise CheckpointError(
                f"{checkpoint.path} holds the state of callbacks {', '.join(sorted(saved))} "
                "this run does not have; resume with the same callbacks (extras)"
            )

    def _start(self) -> int | None:
        """Restore the latest checkpoint (returns its step) or start fresh (returns None)."""
        for leftover in self.checkpoint_dir.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        corrupt: list[str] = []
        checkpoint = newest_good_checkpoint(
            self.checkpoint_dir,
            on_corrupt=lambda path, reason: corrupt.append(
                f"{reason}; set aside as {path.name}.corrupt"
            ),
        )
        for line in corrupt:
            self.reporter.message(line)
        if corrupt:
            self.reporter.message(
                f"falling back to the newest good checkpoint, {checkpoint.path.name}"
                if checkpoint
                else "no good checkpoint left: training again from step 0"
            )
        if checkpoint is None:
            truncate_metrics(self.metrics_path, 0)
            seed_everything(derive_seed(self.settings.seed, "global"))
            self.apply_masks()
            self.reporter.message(
                f"starting at step 0 (no checkpoint yet): {self.settings.epochs} epochs × "
                f"{self.steps_per_epoch} steps on {self.device}"
            )
            return None
        meta = checkpoint.meta
        if meta["steps_per_epoch"] != self.steps_per_epoch:
            raise CheckpointError(
                f"{checkpoint.path} was written with {meta['steps_per_epoch']} steps per epoch, "
                f"this run has {self.steps_per_epoch}: the data or batch size changed; "
                "start a new run directory"
            )
        apply_weights(self.model, checkpoint)
        self._restore_callbacks(checkpoint)  # before the optimiser: it may own parameters
        optimizer_from_checkpoint(self.optimizer, checkpoint, self.device)
        restore_rng_state(checkpoint.group("rng"), meta["rng"])
        masks = checkpoint.group("mask")
        if masks:
            self.masks = {k: v.to(self.device) for k, v in masks.items()}
        trainer = meta["trainer"]
        truncate_metrics(self.metrics_path, int(trainer["metrics_offset"]))
        self.position = _Position(
            step=int(meta["step"]),
            epoch=int(meta["epoch"]),
            batch=int(meta["batch_in_epoch"]),
            loss_sum=float(trainer["loss_sum"]),
            ce_sum=float(trainer["ce_sum"]),
            loss_count=int(trainer["loss_count"]),
            timing=dict(trainer["timing"]),
        )
        self._latest = dict(trainer.get("latest", {}))
        if self.position.batch >= self.steps_per_epoch:
            self.position.epoch += 1
            self.position.batch = 0
        self.last_checkpoint = checkpoint.path
        self.reporter.message(
            f"resuming from {checkpoint.path.name}: step {checkpoint.step}, "
            f"epoch {self.position.epoch} batch {self.position.batch}/{self.steps_per_epoch}"
        )
        return checkpoint.step


def _callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Each callback's key: its name (else class name), ``#k`` for the k-th of a name."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    for callback in callbacks:
        base = (callback.name or type(callback).__name__).replace(".", "_")
        seen[base] = seen.get(base, 0) + 1
        keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return keys

"""Divergence detection: a run whose training blew up must stop as ``diverged``.

A diverged network can look robust: with a huge learning rate the tanh units of an
FCNN saturate, the loss reaches 1e7 while staying finite, the accuracy falls towards
chance, and a fooling ratio over the few inputs still classified correctly is 0. So
every run is watched (``training.divergence`` in the config; on by default) and
stopped with :class:`~robustcompress.errors.DivergedError` — before the bad model is
checkpointed — when any of these happens:

* **non-finite values**: a NaN/inf loss or weight (checked by the trainer itself);
* **exploding loss**: after ``warmup_steps`` steps (default: from the first), the
  exponential moving average
  (weight ``ema_weight`` per step) of the training loss exceeds ``loss_factor`` times
  the smallest such average seen in this run *and* ln K, the cross-entropy of a
  uniform guess over the K classes (so a small loss that grows, e.g. 0.001 → 0.2,
  is not called diverged);
* **accuracy collapse**: the tracked accuracy, after having reached
  ``chance + learned_margin`` at some tracking event of this run (for a fine-tuning
  run, the starting model's accuracy at step 0 counts), falls to
  ``chance + collapse_fraction · (best − chance)`` or below; ``chance`` is the share
  of the most frequent class among the evaluation labels. The rule needs at least
  ``min_eval_size`` evaluation inputs: on fewer, sampling noise alone moves the
  accuracy by more than the rule's margins (on 16 inputs of two classes one standard
  deviation at chance is 0.125), and only the loss rule applies.

Defaults: ``loss_factor = 100``, ``ema_weight = 0.1``, ``warmup_steps = 0``,
``learned_margin = 0.2``, ``collapse_fraction = 0.25``, ``min_eval_size = 50``. The
monitor's running values are checkpointed, so a resumed run decides exactly as an
uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from robustcompress.errors import ConfigError, DivergedError
from robustcompress.training.trainer import Callback

if TYPE_CHECKING:
    from robustcompress.training.trainer import Trainer


@dataclass
class DivergenceMonitor(Callback):
    """Stops training with :class:`DivergedError` when the loss explodes or the accuracy
    collapses to chance (see the module docstring for the rules and defaults)."""

    loss_factor: float = 100.0
    ema_weight: float = 0.1
    warmup_steps: int = 0
    learned_margin: float = 0.2
    collapse_fraction: float = 0.25
    min_eval_size: int = 50

    name = "divergence"
    state_optional = True  # runs stored before it existed resume with a fresh monitor

    def __post_init__(self) -> None:
        checks = {
            "loss_factor": self.loss_factor > 1,
            "ema_weight": 0 < self.ema_weight <= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "learned_margin": 0 < self.learned_margin < 1,
            "collapse_fraction": 0 <= self.collapse_fraction < 1,
            "min_eval_size": self.min_eval_size >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"divergence: {bad[0]} = {getattr(self, bad[0])!r} is out of range "
                "(loss_factor > 1, 0 < ema_weight ≤ 1, warmup_steps ≥ 0, "
                "0 < learned_margin < 1, 0 ≤ collapse_fraction < 1, min_eval_size ≥ 1)"
            )
        self.steps = 0
        self.ema: float | None = None
        self.best_ema = math.inf
        self.best_accuracy = -math.inf
        self.chance: float | None = None
        self.chance_loss: float | None = None

    # ----------------------------------------------------------------- hooks

    def on_train_start(self, trainer: Trainer) -> None:
        labels = trainer.eval_labels
        if labels is not None and len(labels):
            counts = torch.bincount(labels.detach().cpu().long())
            self.chance_loss = math.log(max(2, int(counts.numel())))
            if len(labels) >= self.min_eval_size:
                self.chance = float(counts.max()) / len(labels)

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
        loss = float(terms["total"])
        self.steps += 1
        self.ema = loss if self.ema is None else self.ema + self.ema_weight * (loss - self.ema)
        self.best_ema = min(self.best_ema, self.ema)
        if self.steps <= self.warmup_steps:
            return
        floor = self.chance_loss if self.chance_loss is not None else 0.0
        if self.ema > self.loss_factor * self.best_ema and self.ema > floor:
            raise DivergedError(
                f"training loss exploded at step {step}: its moving average {self.ema:.4g} is "
                f"{self.ema / self.best_ema:.3g}× its lowest value {self.best_ema:.4g} "
                f"(limit {self.loss_factor:g}×); {_last_good(trainer)}; lower optimizer.lr or "
                "the regularization strengths"
            )

    def on_track(self, trainer: Trainer, step: int, values: Mapping[str, float]) -> None:
        accuracy = values.get("accuracy")
        if accuracy is None or self.chance is None or not math.isfinite(accuracy):
            return
        self.best_accuracy = max(self.best_accuracy, accuracy)
        if self.best_accuracy < self.chance + self.learned_margin:
            return  # never learned: a model at chance, not a collapse
        limit = self.chance + self.collapse_fraction * (self.best_accuracy - self.chance)
        if accuracy <= limit:
            raise DivergedError(
                f"accuracy collapsed at step {step}: {accuracy:.3f} on the evaluation subset, "
                f"down from {self.best_accuracy:.3f} (chance {self.chance:.3f}, limit "
                f"{limit:.3f}); {_last_good(trainer)}; lower optimizer.lr or the "
                "regularization strengths"
            )

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "ema": self.ema,
            "best_ema": None if math.isinf(self.best_ema) else self.best_ema,
            "best_accuracy": None if math.isinf(self.best_accuracy) else self.best_accuracy,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.ema = state.get("ema")
        best_ema, best_accuracy = state.get("best_ema"), state.get("best_accuracy")
        self.best_ema = math.inf if best_ema is None else float(best_ema)
        self.best_accuracy = -math.inf if best_accuracy is None else float(best_accuracy)


def _last_good(trainer: Trainer) -> str:
    """Which checkpoint the run keeps (the diverged model is never checkpointed)."""
    if trainer.last_checkpoint is None:
        return "no checkpoint was written"
    return f"the newest checkpoint, from before this was detected, is {trainer.last_checkpoint}"

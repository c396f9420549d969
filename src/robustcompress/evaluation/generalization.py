"""Margins, estimated probabilities, per-example losses and generalization gaps.

The measures the ICLR 2020 submission "Towards understanding the regularization of
adversarial robustness on neural networks" reads its claims from:

* the **margin** of an example, ``f_y(x) − max_{i≠y} f_i(x)`` on the logits f (its
  Definition 3 and Figures 1b, 4): positive when the example is classified correctly;
* the **estimated probability** ``p(x)_y = softmax(f(x))_y`` and the per-example
  cross-entropy ``−log p(x)_y`` (Figures 5a, 5b);
* the **instance-space margin** ``v(x)``, the distance from x to the decision boundary
  (Definition 6), estimated by a minimal-perturbation attack;
* the **generalization (GE) gaps**: test minus training loss, and test minus training
  error rate, each over a whole set (Figure 3a), with the four values they come from
  (Figure 3b).

All are computed in eval mode without gradients, in batches, in float64 from the
model's logits; the model's train/eval mode is restored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcompress.errors import ConfigError


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``f_y − max_{i≠y} f_i`` per row of ``logits`` (N × K, K ≥ 2) for labels ``y``."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ConfigError(
            f"logits must be N × K with K ≥ 2 classes, got shape {tuple(logits.shape)}"
        )
    if labels.shape != (logits.shape[0],):
        raise ConfigError(
            f"labels must hold one class per row of the logits ({logits.shape[0]}), "
            f"got shape {tuple(labels.shape)}"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ConfigError(
            f"labels must lie in [0, {logits.shape[1]}) for {logits.shape[1]} classes"
        )
    f = logits.detach().double()
    true = f.gather(1, labels.view(-1, 1)).squeeze(1)
    others = f.scatter(1, labels.view(-1, 1), -math.inf)
    return true - others.max(dim=1).values


@dataclass(frozen=True)
class PredictionStats:
    """Per-example measures of a model on one labelled set (NumPy float64 / bool arrays)."""

    margins: np.ndarray
    probabilities: np.ndarray
    """``p(x)_y``, the softmax probability of the true class."""
    losses: np.ndarray
    """``−log p(x)_y``, the cross-entropy of each example."""
    correct: np.ndarray

    @property
    def loss(self) -> float:
        """Mean cross-entropy over the set (NaN for an empty set)."""
        return float(self.losses.mean()) if len(self.losses) else math.nan

    @property
    def error(self) -> float:
        """Error rate over the set (NaN for an empty set)."""
        return float(1.0 - self.correct.mean()) if len(self.correct) else math.nan


def prediction_stats(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 1000,
) -> PredictionStats:
    """Margins, true-class probabilities, losses and correctness of ``model`` on a set.

    ``images`` and ``labels`` are moved batch by batch to the model's device.
    """
    from robustcompress.evaluation.robustness import iterate_batches

    if len(images) != len(labels):
        raise ConfigError(
            f"{len(images)} images but {len(labels)} labels: give one label per image"
        )
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    parts: list[tuple[torch.Tensor, ...]] = []
    try:
        with torch.no_grad():
            for x, y in iterate_batches((images, labels), batch_size):
                x, y = x.to(device), y.to(device)
                logits = model(x).double()
                log_p = torch.log_softmax(logits, dim=1).gather(1, y.view(-1, 1)).squeeze(1)
                parts.append(
                    (
                        margins(logits, y).cpu(),
                        log_p.exp().cpu(),
                        (-log_p).cpu(),
                        (logits.argmax(dim=1) == y).cpu(),
                    )
                )
    finally:
        model.train(was_training)
    if not parts:
        empty = np.zeros(0)
        return PredictionStats(empty, empty, empty, np.zeros(0, dtype=bool))
    m, p, loss, correct = (torch.cat(column).numpy() for column in zip(*parts, strict=True))
    return PredictionStats(m, p, loss, correct.astype(bool))


@dataclass(frozen=True)
class GeneralizationGap:
    """Training and test loss and error rate, and the gaps test − training."""

    train_loss: float
    test_loss: float
    train_error: float
    test_error: float

    @classmethod
    def of(cls, train: PredictionStats, test: PredictionStats) -> GeneralizationGap:
        """The gaps between the statistics of a training and a test set."""
        return cls(train.loss, test.loss, train.error, test.error)

    @property
    def loss_gap(self) -> float:
        return self.test_loss - self.train_loss

    @property
    def error_gap(self) -> float:
        return self.test_error - self.train_error


def generalization_gap(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    batch_size: int = 1000,
) -> GeneralizationGap:
    """The GE gaps of ``model`` between a training set and a test set, each given as
    ``(images, labels)`` (the submission uses the whole sets)."""
    return GeneralizationGap.of(
        prediction_stats(model, *train, batch_size=batch_size),
        prediction_stats(model, *test, batch_size=batch_size),
    )


def instance_space_margins(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: Any = None,
) -> np.ndarray:
    """Per-example ℓ2 distance to the decision boundary as a minimal-perturbation attack
    finds it (the submission's instance-space margin v(x), Definition 6): ``‖x̃ − x‖₂``
    for each correctly classified input the attack moves across the boundary, NaN for a
    misclassified input (its margin is not defined) or one the attack fails on.

    ``attack``: a callable ``attack(model, x, y) -> x_adv``, default DeepFool (ℓ2,
    :func:`robustcompress.attacks.get`); C&W-L2 gives tighter distances at more cost.
    Distances are upper bounds on the true v(x): the attacks find a boundary point, not
    always the nearest.
    """
    from robustcompress import attacks

    if len(images) != len(labels):
        raise ConfigError(
            f"{len(images)} images but {len(labels)} labels: give one label per image"
        )
    attack = attack if attack is not None else attacks.get("deepfool")
    was_training = model.training
    model.eval()
    try:
        x_adv = attack(model, images, labels)
        with torch.no_grad():
            clean = model(images).argmax(dim=1)
            adv = model(x_adv).argmax(dim=1)
    finally:
        model.train(was_training)
    distance = (x_adv - images).flatten(1).norm(dim=1).double()
    valid = (clean == labels) & (adv != clean)
    return torch.where(valid, distance, torch.full_like(distance, math.nan)).cpu().numpy()

"""The anonymous ICLR 2020 submission *Towards understanding the regularization of
adversarial robustness on neural networks*: AR strength sweeps as one recipe.

Every method trains from scratch (§5, App. B.1):

``ar-0``
    natural training (AR strength 0).
``ar-<k>``
    ℓ∞ PGD adversarial training (Madry et al. 2018) at strength k ∈ {4, 8, 16}: the
    paper's ε = k/255 with 10 steps of 2/255 from a random start, every training example
    replaced by its adversarial example. ``AR_SCALE`` maps the paper's 0–255 scale to the
    data set (see :data:`CHOICES`).
``sn``
    natural training with every layer's spectral norm clipped to 1 at each epoch end
    (the ``spectral_normalization`` extra; the paper's App. A control of capacity).

After the runs every final model is measured once (:mod:`.evaluation`): losses, error
rates and GE gaps on the whole training and test sets, margin / probability / loss
distributions, the singular values of every layer (the reshaped kernel and the circular
operator of a convolution), PGD accuracy at the evaluation strength and each model's
training strength, and DeepFool boundary distances on a test sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robustcompress.errors import ConfigError
from robustcompress.experiments.recipes import (
    MaskingCheck,
    Method,
    ModelEntry,
    Phase,
    PlannedRun,
    Profile,
    Schedule,
    plan_grid,
)
from robustcompress.papers.iclr2020.evaluation import FinalCheck

NAME = "iclr2020"
STRENGTHS = (4, 8, 16)
"""AR strengths of the paper, on its 0–255 scale (App. B.1)."""
PGD_STEPS = 10
PGD_STEP = 2
"""10 PGD steps of size 2 (on the 0–255 scale), for training and evaluation (App. B.1, D)."""
EVAL_STRENGTH = 8
"""The evaluation adversary: PGD at strength 8 (App. D, Tables 3-5)."""

DATASET = {"resnet20": "fashion-mnist", "cnn": "fashion-mnist", "resnet56": "cifar10"}

SOLVER = {
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
}
"""SGD with momentum 0.9, as the paper trains (App. D: batch 256, lr 0.05 divided by 10
at 50 % and 75 % of training on CIFAR-10; weight decay is ours)."""


def strength_eps(k: float, scale: float) -> float:
    """ε on [0, 1] images of AR strength ``k`` (the paper's 0–255 scale) times ``scale``."""
    return k / 255.0 * scale


@dataclass(frozen=True)
class ArSchedule(Schedule):
    """A model's size within a profile, with its AR settings and measurements.

    ``scale`` multiplies the paper's ε (1: the paper's k/255); ``strengths`` are the
    AR strengths trained besides 0; ``spectral`` adds the ``sn`` method.
    """

    scale: float = 1.0
    strengths: tuple[int, ...] = STRENGTHS
    spectral: bool = True
    check: FinalCheck = field(default_factory=FinalCheck)


def attack_settings(k: float, scale: float) -> dict[str, Any]:
    """The PGD adversary of strength ``k``: 10 steps of 2 (paper scale), random start."""
    return {
        "attack": "pgd",
        "eps": strength_eps(k, scale),
        "steps": PGD_STEPS,
        "alpha": strength_eps(PGD_STEP, scale),
        "random_start": True,
    }


def methods(sched: ArSchedule) -> tuple[Method, ...]:
    out = [Method("ar-0", "natural (AR strength 0)", "natural")]
    for k in sched.strengths:
        out.append(
            Method(
                f"ar-{k}",
                f"PGD training, AR strength {k}",
                "adversarial",
                adversarial=attack_settings(k, sched.scale),
            )
        )
    if sched.spectral:
        out.append(
            Method(
                "sn",
                "spectral norms clipped to 1 each epoch",
                "regularized",
                overrides={
                    "extras": [
                        {
                            "name": "spectral_normalization",
                            "target": 1.0,
                            "mode": "clip",
                            "every": "epoch",
                            "power_iterations": 50,
                        }
                    ]
                },
            )
        )
    return tuple(out)


def schedule(
    train_limit: int | None,
    epochs: int,
    eval_size: int,
    *,
    scale: float,
    strengths: tuple[int, ...] = STRENGTHS,
    spectral: bool = True,
    check: FinalCheck | None = None,
    max_seeds: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> ArSchedule:
    """One model's :class:`ArSchedule`; the learning rate falls by 10 at 50 % and 75 %
    of the epochs (the paper's steps), tracked at epoch ends without attacks."""
    return ArSchedule(
        train_limit,
        Phase(epochs, 0),
        Phase(epochs, 0),
        eval_size,
        tracked_attacks={},
        max_seeds=max_seeds,
        overrides=overrides or {},
        scale=scale,
        strengths=strengths,
        spectral=spectral,
        check=check or FinalCheck(),
    )


def solver(epochs: int) -> dict[str, Any]:
    milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
    return {
        **SOLVER,
        "schedule": {"name": "multistep", "milestones": milestones, "gamma": 0.1},
    }


PROFILES: dict[str, Profile[ArSchedule]] = {}


FMNIST_SCALE = 0.1 / (8 / 255)
"""Strength 8 becomes ε = 0.1 on Fashion-MNIST, a standard budget there as 8/255 is on
CIFAR-10 (strengths 4, 8, 16 → ε ≈ 0.05, 0.1, 0.2; PGD steps 0.025)."""


def _register_profiles() -> None:
    check = FinalCheck(train_size=2000, test_size=1000, attack_size=200, scale=FMNIST_SCALE)
    PROFILES["quick"] = Profile(
        name="quick",
        description=(
            "smoke test: the CNN and ResNet-20 (width 8) on 2000 Fashion-MNIST training "
            "images for 3 epochs, AR strengths 0 and 8 (ε = 0.1) and spectral "
            "normalisation; measured on 2000 training / 1000 test images, PGD and "
            "DeepFool on 200; one seed"
        ),
        seeds=1,
        settings={
            "cnn": schedule(2000, 3, 500, scale=FMNIST_SCALE, strengths=(8,), check=check),
            "resnet20": schedule(
                2000,
                3,
                500,
                scale=FMNIST_SCALE,
                strengths=(8,),
                check=check,
                overrides={"model": {"kwargs": {"width": 8}}},
            ),
        },
        masking=MaskingCheck(size=200, eps=0.1),
    )


_register_profiles()


def models_for(profile: Profile[ArSchedule]) -> dict[str, ModelEntry]:
    out = {}
    for model, sched in profile.settings.items():
        opt = solver(sched.scratch.epochs)
        out[model] = ModelEntry(DATASET[model], {"scratch": opt, "finetune": opt}, methods(sched))
    return out


def plan(profile: Profile[ArSchedule], seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run, the PGD-trained ones first (the longest)."""
    for model in profile.settings:
        if model not in DATASET:
            raise ConfigError(f"iclr2020: no data set for model {model!r}")
    first = tuple(f"ar-{k}" for k in sorted(STRENGTHS, reverse=True))
    return plan_grid(NAME, profile, seeds, models_for(profile), first=first)


CHOICES: tuple[str, ...] = (
    "AR strength k trains with PGD at eps = scale * k/255 (10 steps of scale * 2/255, "
    "random start), the paper's 0-255 scale (App. B.1) multiplied by the profile's scale.",
    "Every method trains from scratch with SGD (momentum 0.9, lr 0.05 divided by 10 at "
    "50 % and 75 % of the epochs, as the paper's CIFAR-10 schedule) and weight decay 5e-4.",
    "Spectral normalisation ('sn'): every layer's operator norm clipped to 1 at each epoch "
    "end by power iteration on its real operator (the paper's App. A clips every epoch, "
    "following Sedghi et al.); batch-norm scales are not part of the clipped operators.",
)


__all__ = ["CHOICES", "NAME", "PROFILES", "MaskingCheck", "plan"]

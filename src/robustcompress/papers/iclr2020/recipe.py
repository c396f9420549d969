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
    natural training with every layer's operator norm clipped to :data:`SN_TARGET` at
    each epoch end (the ``spectral_normalization`` extra; the paper's App. A control of
    capacity).

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
    paper_cifar_missing,
    plan_grid,
    refuse_paper_cifar,
)
from robustcompress.experiments.recipes.methods import deep_merge
from robustcompress.papers.iclr2020.evaluation import FinalCheck

NAME = "iclr2020"
STRENGTHS = (4, 8, 16)
"""AR strengths of the paper, on its 0–255 scale (App. B.1)."""
PGD_STEPS = 10
PGD_STEP = 2
"""10 PGD steps of size 2 (on the 0–255 scale), for training and evaluation (App. B.1, D)."""
SN_TARGET = 3.0
"""The operator norm every layer is clipped to by the ``sn`` method: the paper's "SP 3"
(Table 6 clips at 1, 3 and 5). SP 1 collapsed the CNN: its accuracy on the 500 tracked
test images was 0.416 after epoch 1, 0.100 after epoch 2, 0.244 after 4 (quick setting,
divergence stop off)."""
EVAL_STRENGTH = 8
"""The evaluation adversary: PGD at strength 8 (App. D, Tables 3-5)."""

DATASET = {"resnet20": "fashion-mnist", "cnn": "fashion-mnist", "resnet56": "cifar10"}

SOLVER = {
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 256,
}
"""SGD with momentum 0.9, batch 256, lr 0.05 divided by 10 at 50 % and 75 % of training,
as the paper trains its CIFAR-10 ResNets (App. D.3); it names no weight decay, so none."""

CPU_BATCH = 128
"""The batch of the CPU profiles: half the paper's, for twice the steps (module
docstring of the profiles: a CPU budget allows a few hundred steps, not the paper's
~39,000)."""

PAPER_RESNET = {"norm": "none"}
"""The paper's ResNets have no batch norm and start from the Fixup initialisation without
its scalar layers (App. D.2-D.3), so that a layer's spectrum is its operator's own."""


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
    batch_size: int = int(SOLVER["batch_size"])


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
                f"spectral norms clipped to {SN_TARGET:g} each epoch",
                "regularized",
                overrides={
                    "extras": [
                        {
                            "name": "spectral_normalization",
                            "target": SN_TARGET,
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
    batch_size: int = int(SOLVER["batch_size"]),
) -> ArSchedule:
    """One model's :class:`ArSchedule`; the learning rate falls by 10 at 50 % and 75 %
    of the epochs (the paper's steps). Epoch ends track the GE gaps and margins on the
    whole training data and the whole test split (Figure 3), without attacks."""
    tracking = {"tracking": {"generalization": {"enabled": True}}}
    return ArSchedule(
        train_limit,
        Phase(epochs, 0),
        Phase(epochs, 0),
        eval_size,
        tracked_attacks={},
        max_seeds=max_seeds,
        overrides=deep_merge(tracking, overrides or {}),
        scale=scale,
        strengths=strengths,
        spectral=spectral,
        check=check or FinalCheck(train_size=train_limit),
        batch_size=batch_size,
    )


def solver(epochs: int, batch_size: int = int(SOLVER["batch_size"])) -> dict[str, Any]:
    milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
    return {
        **SOLVER,
        "batch_size": batch_size,
        "schedule": {"name": "multistep", "milestones": milestones, "gamma": 0.1},
    }


PROFILES: dict[str, Profile[ArSchedule]] = {}


FMNIST_SCALE = 0.1 / (8 / 255)
"""Strength 8 becomes ε = 0.1 on Fashion-MNIST, a standard budget there as 8/255 is on
CIFAR-10 (strengths 4, 8, 16 → ε ≈ 0.05, 0.1, 0.2; PGD steps 0.025)."""


def _cpu_models(limit: int, epochs: int, check: FinalCheck, **kw: Any) -> dict[str, ArSchedule]:
    """The CPU profiles' two models: the Langenberg CNN (with the ``sn`` method) and
    ResNet-20 at width 8 with batch norm (no ``sn``: a norm after each convolution undoes
    any clipping of its kernel), both at batch :data:`CPU_BATCH`."""
    resnet = {"model": {"kwargs": {"width": 8}}}
    return {
        "cnn": schedule(limit, epochs, 500, check=check, batch_size=CPU_BATCH, **kw),
        "resnet20": schedule(
            limit,
            epochs,
            500,
            check=check,
            overrides=resnet,
            spectral=False,
            batch_size=CPU_BATCH,
            **kw,
        ),
    }


def _register_profiles() -> None:
    PROFILES["quick"] = Profile(
        name="quick",
        description=(
            "smoke test: the CNN and ResNet-20 (width 8) on 2000 Fashion-MNIST training "
            "images for 4 epochs at batch 128, AR strengths 0 and 8 (ε = 0.1), spectral "
            "normalisation on the CNN; measured on those 2000 and 2000 test images, PGD "
            "and DeepFool on 200; one seed"
        ),
        seeds=1,
        settings=_cpu_models(
            2000,
            4,
            FinalCheck(2000, 2000, attack_size=200, scale=FMNIST_SCALE),
            scale=FMNIST_SCALE,
            strengths=(8,),
        ),
        masking=MaskingCheck(size=200, eps=0.1),
    )
    PROFILES["full"] = Profile(
        name="full",
        description=(
            "the CNN and ResNet-20 (width 8: 8, 16, 32 channels, batch norm) on 4000 "
            "Fashion-MNIST training images for 8 epochs at batch 128 (250 steps), AR "
            "strengths 0, 4, 8, 16 (ε = 0.05, 0.1, 0.2), spectral normalisation on the "
            "CNN; GE gaps and distributions on those 4000 and the whole test set, PGD and "
            "DeepFool on 500 test images; 3 seeds"
        ),
        seeds=3,
        settings=_cpu_models(
            4000,
            8,
            FinalCheck(4000, None, attack_size=500, scale=FMNIST_SCALE),
            scale=FMNIST_SCALE,
        ),
        masking=MaskingCheck(size=500, eps=0.1),
    )
    PROFILES["paper-cifar"] = Profile(
        name="paper-cifar",
        description=(
            "the paper's setting on a GPU: ResNet-56 (no batch norm, Fixup) on CIFAR-10 "
            "for 200 epochs at batch 256, AR strengths 0, 4, 8, 16 /255 and spectral "
            "normalisation; everything measured on the whole sets, PGD and DeepFool on "
            "1000 test images; 3 seeds; refused without a CUDA GPU and the CIFAR-10 files"
        ),
        seeds=3,
        settings={
            "resnet56": schedule(
                None,
                200,
                1000,
                scale=1.0,
                check=FinalCheck(None, None, attack_size=1000, scale=1.0),
                overrides={"model": {"kwargs": PAPER_RESNET}, "device": "cuda"},
            )
        },
        masking=MaskingCheck(size=500, eps=8 / 255),
    )


_register_profiles()


def models_for(profile: Profile[ArSchedule]) -> dict[str, ModelEntry]:
    out = {}
    for model, sched in profile.settings.items():
        opt = solver(sched.scratch.epochs, sched.batch_size)
        out[model] = ModelEntry(DATASET[model], {"scratch": opt, "finetune": opt}, methods(sched))
    return out


def plan(profile: Profile[ArSchedule], seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run, the PGD-trained ones first (the longest)."""
    for model in profile.settings:
        if model not in DATASET:
            raise ConfigError(f"iclr2020: no data set for model {model!r}")
    if any(DATASET[model] == "cifar10" for model in profile.settings):
        refuse_paper_cifar(
            profile.name,
            "ResNet-56, the paper's §5",
            "--profile quick or full for the Fashion-MNIST sweep",
            paper_cifar_missing(),
        )
    planned = plan_grid(NAME, profile, seeds, models_for(profile))
    # every run starts from scratch, so any order is valid: the strongest AR first
    return sorted(planned, key=lambda p: -(strength_of(p.method) or 0.0))


def strength_of(method: str) -> float | None:
    """The AR strength of a method id (``ar-8`` → 8; ``None`` for a method without AR,
    whose strength is 0)."""
    return float(method.split("-")[1]) if method.startswith("ar-") else None


CHOICES: tuple[str, ...] = (
    "AR strength k trains with PGD at eps = scale * k/255 (10 steps of scale * 2/255, "
    "random start), the paper's 0-255 scale (App. B.1) multiplied by the profile's scale: "
    "on Fashion-MNIST strength 8 is eps = 0.1 (strengths 4, 8, 16: eps 0.05, 0.1, 0.2).",
    "Every method trains from scratch with the paper's solver (App. D.3): SGD, momentum "
    "0.9, batch 256, lr 0.05 divided by 10 at 50 % and 75 % of the epochs; the paper "
    "names no weight decay and none is used.",
    "At CPU scale ResNet-20 (width 8) on Fashion-MNIST stands for ResNet-56 on CIFAR-10, "
    "beside the Langenberg CNN. The paper's ResNets have no batch norm (Fixup "
    "initialisation without its scalar layers, App. D.2-D.3; the paper-cifar profile); "
    "on the CPU budget such a ResNet-20 stayed at chance (its loss 2.27-2.32 over 128 "
    "steps of PGD training at strength 16, where the batch-norm one was at 1.62 after "
    "32), so the CPU "
    "profiles keep batch norm, read every spectrum with the norm's scale folded into its "
    "layer, and train 'sn' on the CNN only.",
    "CPU profiles train at batch 128, half the paper's 256: a CPU budget allows a few "
    "hundred steps (the paper's runs take about 39,000), and half the batch doubles them "
    "at the same cost.",
    "A convolution's singular values are reported for two operators: the reshaped kernel "
    "(out x in*k*k; what the paper's 'weight matrix of each layer' reads as, and the view "
    "of its Figures 1a and 5c-d) and the exact circular operator on the layer's input grid "
    "(by FFT); both are reported and the singular-value claim is tested in each.",
    "Spectral normalisation ('sn'): every layer's operator norm clipped to 3 at each epoch "
    "end by power iteration on its real operator (the paper's App. A clips every epoch, "
    "following Sedghi et al.; 3 is one of its Table 6 strengths). Clipping at 1 collapsed "
    "the CNN (tracked accuracy 0.416 after epoch 1, 0.100 after epoch 2, 0.244 after 4).",
)


__all__ = ["CHOICES", "NAME", "PROFILES", "MaskingCheck", "plan"]

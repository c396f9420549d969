"""Sanyal et al., *Robustness via deep low-rank representations*: N-LR, 1-LR and 2-LR
ResNet-18s beside weight-space compression, as one recipe.

Every method trains from scratch with the same solver and epochs, so each is compared
with the same training budget without its treatment (``n-lr``), except ``pruned``,
which needs a trained model and fine-tunes ``n-lr``:

``n-lr``
    plain training (no LR layer).
``1-lr``
    the LR virtual layer (:mod:`robustcompress.training.lr_layer`) on the pooled
    features, the input of the last linear layer (``pool``), at rank :data:`RANK_POOL`.
``2-lr``
    also on the output of the third residual stage, the input of the fourth block
    (``layers.5``), at rank :data:`RANK_STAGE3`, projected by ensembled Nyström.
``nuclear`` / ``l1``
    the project's nuclear-norm or ℓ1 regularizer on every weight matrix and kernel
    (compression of the weights, Table 2's comparison).
``pruned``
    magnitude pruning of ``n-lr``: rounds of 1/3 of the remaining entries of every
    weight, one retraining epoch each, to the paper's SNIP sparsity of about 0.7.
``sn``
    spectral normalisation (Miyato et al. 2018): every layer's operator norm clipped to
    :data:`SN_TARGET` after each step.

The LR layer starts after :attr:`LrSchedule.pretrain` epochs of plain training (the
paper pre-trains 50 of 350 epochs). After the runs every final model is measured once
(:mod:`.evaluation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
from robustcompress.papers.sanyal.evaluation import FinalCheck

NAME = "sanyal"

LR_POOL = "pool"
"""The module whose output feeds the last linear layer (1-LR's position)."""
LR_STAGE3 = "layers.5"
"""The last block of the third residual stage: its output is the fourth stage's input
(2-LR's second position, "before the fourth ResNet block")."""

SOLVER = {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 128}
"""The paper's solver (App. D): SGD at lr 0.1, batch 128, lr ÷ 10 at 150/350 and
250/350 of training. It names neither momentum nor weight decay, so neither is used."""
DROPS = (150 / 350, 250 / 350)

SN_TARGET = 1.0
"""Miyato et al.'s spectral norm."""
RETRAIN_LR = SOLVER["lr"] / 10
"""Pruning retrains at a constant lr 0.01, the solver's middle rate (at 0.001, the rate
``n-lr`` ends with, a pruning round of the quick profile fell from 0.744 to 0.232 on the
tracked inputs)."""
NO_ACCURACY_RULE = 10**9
"""``training.divergence.min_eval_size`` of every run: the divergence monitor's
accuracy-collapse rule never applies; its loss-explosion rule still does, and a final
model at or near chance is left out of the claims. The paper's solver (lr 0.1, no
momentum) makes the tracked eval-mode accuracy swing before the first drop: N-LR seed 1
read 0.498 and 0.440 after epochs 1 and 2 and 0.760 after epoch 3. With the rule on, the
first full run stopped 2-LR seed 1 at the end of epoch 4 (accuracy 0.100 while its training
loss stayed 0.61-0.76 over that epoch) and nuclear seed 0 in epoch 5 (0.224, down from
0.740); 2-LR seed 0 had gone 0.378 → 0.672 → 0.458 → 0.836 over epochs 3-6. Pruning
rounds lose accuracy by design as well."""
PRUNE_ROUNDS = 3
"""3 rounds of 1/3: (2/3)³ ≈ 0.30 of every weight kept, the paper's SNIP sparsity 0.7."""


@dataclass(frozen=True)
class LrSettings:
    """The LR layer of a profile: ranks at the two positions, λ₁ (``lam_c``), λ₂
    (``lam_n``), the projection period ``every`` (K) and the Nyström ensemble."""

    rank_pool: int = 10
    rank_stage3: int = 50
    lam_c: float = 0.01
    lam_n: float = 0.01
    every: int = 10
    nystrom_runs: int = 5
    exact_max: int = 1024
    """The largest m projected exactly: the pooled features (m = 8·width) exactly, the
    stage-3 output (m = 4·width·49 on 28×28 inputs, 1,568 at width 8) by Nyström."""

    def extra(self, layers: Sequence[str], start_epoch: int) -> dict[str, Any]:
        ranks = {LR_POOL: self.rank_pool, LR_STAGE3: self.rank_stage3}
        return {
            "name": "lr_layer",
            "layers": list(layers),
            "rank": [ranks[name] for name in layers],
            "lam_c": self.lam_c,
            "lam_n": self.lam_n,
            "every": self.every,
            "start_epoch": start_epoch,
            "projection": "auto",
            "exact_max": self.exact_max,
            "nystrom_runs": self.nystrom_runs,
            "input_shape": [1, 28, 28],
        }


@dataclass(frozen=True)
class LrSchedule(Schedule):
    """A model's size within a profile: ``pretrain`` epochs before the LR layer starts,
    the LR settings, the weight-space strengths and the final measurements."""

    pretrain: int = 1
    lr: LrSettings = field(default_factory=LrSettings)
    nuclear: float = 1e-2
    l1: float = 1e-3
    check: FinalCheck = field(default_factory=FinalCheck)
    dataset: str = "fashion-mnist"


def methods(sched: LrSchedule) -> tuple[Method, ...]:
    lr = sched.lr
    return (
        Method("n-lr", "N-LR", "natural"),
        Method(
            "1-lr",
            f"1-LR (rank {lr.rank_pool})",
            "lr",
            overrides={"extras": [lr.extra([LR_POOL], sched.pretrain)]},
        ),
        Method(
            "2-lr",
            f"2-LR (ranks {lr.rank_stage3}, {lr.rank_pool})",
            "lr",
            overrides={"extras": [lr.extra([LR_STAGE3, LR_POOL], sched.pretrain)]},
        ),
        Method(
            "nuclear",
            f"nuclear, λ = {sched.nuclear:g}",
            "weight-space",
            regularizers={"nuclear": {"lam": sched.nuclear}},
        ),
        Method(
            "l1",
            f"ℓ1, λ = {sched.l1:g}",
            "weight-space",
            regularizers={"l1": {"lam": sched.l1}},
        ),
        Method(
            "pruned",
            f"pruned N-LR (sparsity {1 - (2 / 3) ** PRUNE_ROUNDS:.2f})",
            "weight-space",
            starts_from="n-lr",
            overrides={
                "optimizer": {"lr": RETRAIN_LR, "schedule": {"name": "none"}},
                "extras": [
                    {
                        "name": "progressive_pruning",
                        "rounds": PRUNE_ROUNDS,
                        "fraction": 1 / 3,
                        "epochs_per_round": 1,
                    }
                ],
            },
        ),
        Method(
            "sn",
            f"SN (σ ≤ {SN_TARGET:g})",
            "weight-space",
            overrides={
                "extras": [
                    {
                        "name": "spectral_normalization",
                        "target": SN_TARGET,
                        "mode": "clip",
                        "every": "step",
                        "power_iterations": 1,
                    }
                ]
            },
        ),
    )


def solver(epochs: int) -> dict[str, Any]:
    milestones = sorted({max(1, round(epochs * d)) for d in DROPS})
    return {**SOLVER, "schedule": {"name": "multistep", "milestones": milestones, "gamma": 0.1}}


def schedule(
    train_limit: int | None,
    epochs: int,
    pretrain: int,
    *,
    check: FinalCheck,
    width: int | None,
    lr: LrSettings | None = None,
    max_seeds: int | None = None,
    overrides: dict[str, Any] | None = None,
    dataset: str = "fashion-mnist",
) -> LrSchedule:
    """One model's :class:`LrSchedule`: ResNet-18 on one grey channel, normalisation
    left to the data (``mean``/``std`` None), at ``width`` (``None``: the paper's 64)."""
    kwargs: dict[str, Any] = {"in_channels": 1, "mean": None, "std": None}
    if width is not None:
        kwargs["width"] = width
    model = {
        "model": {"kwargs": kwargs},
        "training": {"divergence": {"min_eval_size": NO_ACCURACY_RULE}},
    }
    return LrSchedule(
        train_limit,
        Phase(epochs, 0),
        Phase(PRUNE_ROUNDS, 0),
        500,
        tracked_attacks={},
        max_seeds=max_seeds,
        overrides=deep_merge(model, overrides or {}),
        pretrain=pretrain,
        lr=lr or LrSettings(),
        check=check,
        dataset=dataset,
    )


PROFILES: dict[str, Profile[LrSchedule]] = {}

WIDTH = 8
"""The CPU profiles' ResNet-18 width: 8, 16, 32, 64 channels (the paper's 64, 128, 256,
512 divided by 8; 0.18 M parameters instead of 11.2 M). One training step of a batch of
128 takes about 0.2 s on one core at width 8 and 0.7 s at width 16."""


def _register_profiles() -> None:
    PROFILES["quick"] = Profile(
        name="quick",
        description=(
            f"smoke test: ResNet-18 (width {WIDTH}) on 2000 Fashion-MNIST training images "
            "for 4 epochs (LR layer from epoch 2), all seven methods; measured on 500 test "
            "images (hybrids fitted on 1000 training images), PGD at 8, 16, 32 /255 on 50, "
            "minimum perturbations on 30; one seed"
        ),
        seeds=1,
        settings={
            "resnet18": schedule(
                2000,
                4,
                1,
                check=FinalCheck(
                    train_size=1000,
                    test_size=500,
                    attack_size=50,
                    rho_size=30,
                    rep_size=300,
                    radii=(8, 16, 32),
                    pca=(20, 5),
                ),
                width=WIDTH,
            )
        },
        masking=MaskingCheck(size=50, eps=0.1),
    )
    PROFILES["full"] = Profile(
        name="full",
        description=(
            f"ResNet-18 (width {WIDTH}: 8, 16, 32, 64 channels) on 10000 Fashion-MNIST "
            "training images for 12 epochs at batch 128 (lr 0.1 ÷ 10 at epochs 5 and 9), "
            "the LR layer from epoch 3; all seven methods; measured on 2000 test images (hybrids "
            "fitted on 3000 training images), PGD on 100, minimum perturbations on 50; 3 seeds"
        ),
        seeds=3,
        settings={
            "resnet18": schedule(
                10000,
                12,
                2,
                check=FinalCheck(
                    train_size=3000, test_size=2000, attack_size=100, rho_size=50, rep_size=500
                ),
                width=WIDTH,
            )
        },
        masking=MaskingCheck(size=200, eps=0.1),
    )
    PROFILES["paper-cifar"] = Profile(
        name="paper-cifar",
        description=(
            "the paper's setting on a GPU: ResNet-18 (width 64) on CIFAR-10 for 350 epochs "
            "at batch 128, lr 0.1 ÷ 10 at epochs 150 and 250, the LR layer from epoch 51 "
            "(ranks 100 before the classifier and 500 before the fourth block); "
            "measured on the whole sets, attacks on 1000 test images; 3 seeds; refused "
            "without a CUDA GPU and the CIFAR-10 files"
        ),
        seeds=3,
        settings={
            "resnet18": schedule(
                None,
                350,
                50,
                check=FinalCheck(train_size=None, test_size=None, attack_size=1000),
                width=None,
                lr=LrSettings(rank_pool=100, rank_stage3=500),
                overrides={"model": {"kwargs": {"in_channels": 3}}, "device": "cuda"},
                dataset="cifar10",
            )
        },
        masking=MaskingCheck(size=500, eps=8 / 255),
    )


_register_profiles()


def models_for(profile: Profile[LrSchedule]) -> dict[str, ModelEntry]:
    out = {}
    for model, sched in profile.settings.items():
        opt = solver(sched.scratch.epochs)
        out[model] = ModelEntry(sched.dataset, {"scratch": opt, "finetune": opt}, methods(sched))
    return out


def plan(profile: Profile[LrSchedule], seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run: the seven methods of each seed, ``pruned`` after its ``n-lr``."""
    if any(sched.dataset == "cifar10" for sched in profile.settings.values()):
        refuse_paper_cifar(
            profile.name,
            "ResNet-18, the paper's Tables 1-6",
            "--profile quick or full for the Fashion-MNIST ResNet-18",
            paper_cifar_missing(),
        )
    return plan_grid(NAME, profile, seeds, models_for(profile), first=("pruned",))


CHOICES: tuple[str, ...] = (
    "At CPU scale a ResNet-18 adapted to 28x28 grey images (one input channel, no input "
    "normalisation, width 8: 8, 16, 32, 64 channels, 0.18 M parameters) on Fashion-MNIST "
    "stands for the paper's ResNet-18 (width 64, 11.2 M) on CIFAR-10; the paper-cifar "
    "profile keeps the paper's network and data.",
    "The paper's solver (App. D): SGD at lr 0.1, batch 128, lr / 10 at 150/350 and 250/350 "
    "of training; it names neither momentum nor weight decay, so neither is used. The LR "
    "layer starts after a sixth of training (the paper: 50 of 350 epochs); every method "
    "trains the same epochs from scratch, so N-LR is the same budget without the layer.",
    "LR positions: 'pool' (the pooled features, the input of the last linear layer) for "
    "1-LR; 2-LR adds 'layers.5', the output of the third residual stage, which is the "
    "input of the fourth. Ranks 10 of 64 and 50 of 1,568 (the paper: 100 of 512 and 500 "
    "of 16,384). The pooled features are projected exactly, the stage-3 output by "
    "ensembled Nystrom (5 runs of 2r columns), as the paper does for its large layer.",
    "lambda_1 = lambda_2 = 0.01 (L_c and L_n): the paper does not give them.",
    "The divergence monitor's accuracy-collapse rule is off for every run (its "
    "loss-explosion rule stays): at lr 0.1 without momentum the tracked accuracy swings "
    "before the first drop (N-LR seed 1: 0.498, 0.440, 0.760 after epochs 1-3), and the "
    "rule stopped a 2-LR and a nuclear run whose training losses were fine. A final model "
    "at or near chance is left out of the claims.",
    "Weight-space comparison (Table 2): the paper used SNIP at sparsity 0.7, stable-rank "
    "and spectral normalisation. Here: the project's nuclear-norm (lambda 0.01) and l1 "
    "(lambda 0.001) penalties on every layer, magnitude pruning of N-LR (3 rounds of 1/3 "
    "of every weight, sparsity 0.70, one epoch at lr 0.01 each), and spectral "
    "normalisation of every layer to 1 after each step (Miyato et al.). With batch norm "
    "after each convolution a kernel's scale is undone by the norm; the classifier's is "
    "not.",
    "PGD of Table 1: radii 8, 16, 32, 64 /255, 7 and 20 steps of 2.5 eps/steps from the "
    "clean input (the paper gives radii and steps, not the step size); transferred "
    "examples come from the N-LR model of the next seed, a separately trained network.",
    "Minimum rho (Table 3): bisection on eps for the smallest budget at which BIM or "
    "BIM-LL (10 steps of eps/4) misclassifies 99 % of the correctly classified inputs; "
    "DeepFool's own minimal perturbations. Hybrids (Tables 5-6): standardise, optional "
    "PCA, then the paper's linear classifier (SGD on the hinge loss with l2 0.01).",
)

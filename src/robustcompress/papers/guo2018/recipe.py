"""Guo, Zhang, Zhang & Chen 2018, *Sparse DNNs with Improved Adversarial Robustness*
(NeurIPS 2018): the MNIST part of §4 as one recipe.

=====================  ===========================  ==========================================
model                  data                          paper
=====================  ===========================  ==========================================
``logistic_regression`` ``mnist-1v7`` (1 vs 7)       §4.1, Figure 1 (top): softplus loss
``softmax_regression`` ``mnist``                     §4.1, Figure 1 (bottom)
``lenet300100``        ``mnist``                     §4.2, Figure 2 (a, b), Table 1
``lenet5``             ``mnist``                     §4.2, Figure 2 (c, d), Table 1
=====================  ===========================  ==========================================

Methods of every model (ids as in the manifest):

``dense``
    the dense reference, trained from scratch (linear models: SGD with momentum; the
    LeNets: Caffe's LeNet solver, see :data:`CHOICES`).
``pruned``
    progressive magnitude pruning of ``dense`` (``progressive_pruning``: ``rounds``
    rounds, each masking ρ = 1/3 of every weight tensor's remaining entries, then one
    epoch of retraining). Every round's model is kept (``rounds/round-RR``) and
    evaluated: one run gives the ``rounds + 1`` points of a sparsity curve.
``continued``
    the control: ``dense`` retrained for the same epochs with the same optimiser and no
    pruning, kept at every epoch (``snapshots/epoch-EEE``), so round r of ``pruned`` can
    be compared with the same amount of retraining without pruning.
``act-l1-<λ>`` (LeNets)
    ``dense`` fine-tuned with an ℓ1 penalty λ on the hidden activations (Table 1), for
    ``activation_epochs`` epochs; its control is ``continued`` at the same epoch.

Robustness is not tracked during training: after the runs, every kept model (each
round, each control epoch, each final model) is evaluated once on the test set
(:mod:`robustcompress.papers.guo2018.evaluation`): r∞ (accuracy under FGS and rFGS at
ε = 0.1), r2 (DeepFool and C&W distances, eq. 5), weight and activation sparsity, and
CLEVER scores on a sample of rounds.
"""

from __future__ import annotations

import math
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
from robustcompress.experiments.recipes.methods import train_size
from robustcompress.papers.guo2018.evaluation import SnapshotCheck

NAME = "guo2018"
EPS = 0.1
"""The paper's ℓ∞ budget of FGS and rFGS (§4.1: "For l∞ attacks, we set ε = 0.1")."""

ROUNDS = 16
FRACTION = 1 / 3
"""m = 16 rounds of pruning ρ = 1/3 of the remaining entries (§4.1)."""

DATASET = {
    "logistic_regression": "mnist-1v7",
    "softmax_regression": "mnist",
    "lenet300100": "mnist",
    "lenet5": "mnist",
    "vgg_like": "cifar10",
    "resnet32": "cifar10",
}
"""Each model (a registered architecture) and its data set."""
LINEAR = ("logistic_regression", "softmax_regression")
DNNS = ("lenet300100", "lenet5")

INIT = {"lenet300100": "caffe_xavier", "lenet5": "caffe_xavier"}
"""The LeNets start as Caffe's LeNet examples do (xavier weights, zero biases), the
framework whose training policy the paper follows; other models keep PyTorch's default."""

CAFFE_LR = 0.01
CAFFE_GAMMA = 1e-4
CAFFE_POWER = 0.75
CAFFE_ITERATIONS = 50_000
"""Caffe's LeNet solver (``examples/mnist/lenet_solver.prototxt``): base lr 0.01,
momentum 0.9, weight decay 5·10⁻⁴, the ``inv`` policy with γ = 10⁻⁴ and power 0.75,
batch 64; the paper trains 50,000 iterations (§4.2)."""


def caffe_lr(iterations: int) -> float:
    """The ``inv`` policy's learning rate after ``iterations`` steps."""
    return CAFFE_LR * (1.0 + CAFFE_GAMMA * iterations) ** (-CAFFE_POWER)


def caffe_solver(lr: float, schedule: bool) -> dict[str, Any]:
    """An optimizer section with Caffe's LeNet settings at ``lr`` (``schedule``: the inv
    policy from that lr; else constant)."""
    solver: dict[str, Any] = {
        "lr": lr,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 64,
    }
    if schedule:
        solver["schedule"] = {"name": "inv", "gamma": CAFFE_GAMMA, "power": CAFFE_POWER}
    return solver


NO_ACCURACY_RULE = 10**9
"""``training.divergence.min_eval_size`` of the pruning runs: more evaluation inputs than
any test set, so the divergence monitor's accuracy-collapse rule never applies (its
loss-explosion rule still does)."""

LINEAR_SOLVER = {"lr": 0.01, "momentum": 0.9, "batch_size": 64}
"""The linear models' SGD with momentum (§4.1 names the method, not its settings)."""


@dataclass(frozen=True)
class GuoSchedule(Schedule):
    """A model's size within a profile, with the pruning and activation settings.

    ``rounds``: pruning rounds (one retraining epoch each); ``activation``: the ℓ1
    strengths λ of Table 1's rows (empty: none); ``activation_epochs``: how long each
    fine-tunes the dense model.
    """

    rounds: int = ROUNDS
    activation: tuple[float, ...] = ()
    activation_epochs: int = 0
    evaluation: SnapshotCheck = field(default_factory=SnapshotCheck)
    """How every kept model is measured (:mod:`.evaluation`)."""
    prune: tuple[int, ...] = ()
    """The weight tensors to prune (1-based indices; empty: all)."""
    retrain_limit: int | None = None
    """Training images of every retraining run (a seeded subset; ``None``: the
    reference's): one epoch of it is one pruning round."""


CIFAR_SOLVER = {
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "schedule": "cosine",
}
"""The CIFAR-10 references' SGD (the paper gives none; the usual ResNet/VGG setting with
a cosine schedule); retraining uses lr 0.001 without a schedule."""

CIFAR = ("vgg_like", "resnet32")


def solvers(model: str, sched: Schedule) -> dict[str, dict[str, Any]]:
    """The optimiser per phase: the reference (``scratch``) and the retraining
    (``finetune``: pruning rounds, the control, activation ℓ1)."""
    if model in CIFAR:
        retrain = {k: v for k, v in CIFAR_SOLVER.items() if k != "schedule"}
        return {"scratch": dict(CIFAR_SOLVER), "finetune": {**retrain, "lr": 0.001}}
    if model in LINEAR:
        return {"scratch": dict(LINEAR_SOLVER), "finetune": dict(LINEAR_SOLVER)}
    steps = math.ceil((sched.train_limit or train_size(DATASET[model])) / 64)
    final = caffe_lr(sched.scratch.epochs * steps)
    return {"scratch": caffe_solver(CAFFE_LR, True), "finetune": caffe_solver(final, False)}


def methods(model: str, schedule: GuoSchedule) -> tuple[Method, ...]:
    """The methods of ``model`` in a profile (see the module docstring)."""
    rounds = schedule.rounds
    dnn = model in DNNS
    tracking: dict[str, Any] = {"activation_sparsity": True} if dnn else {}
    data: dict[str, Any] = (
        {"limit": schedule.retrain_limit} if schedule.retrain_limit is not None else {}
    )
    out = [
        Method("dense", "dense reference", "natural", overrides={"tracking": tracking}),
        Method(
            "pruned",
            f"progressive pruning ({rounds} rounds of 1/3)",
            "pruned",
            starts_from="dense",
            overrides={
                "optimizer": {"epochs": rounds},
                "extras": [
                    {
                        "name": "progressive_pruning",
                        "rounds": rounds,
                        "fraction": FRACTION,
                        "epochs_per_round": 1,
                        **({"weights": list(schedule.prune)} if schedule.prune else {}),
                    }
                ],
                "tracking": tracking,
                "data": data,
                # accuracy falling at extreme sparsity is the measurement, not divergence:
                # keep the loss rule, switch off the accuracy-collapse rule (see CHOICES)
                "training": {"divergence": {"min_eval_size": NO_ACCURACY_RULE}},
            },
        ),
        Method(
            "continued",
            "continued training (control)",
            "control",
            starts_from="dense",
            overrides={
                "optimizer": {"epochs": rounds},
                "extras": [{"name": "snapshots", "every_epochs": 1}],
                "tracking": tracking,
                "data": data,
            },
        ),
    ]
    for lam in schedule.activation:
        out.append(
            Method(
                f"act-l1-{lam:g}",
                f"activation ℓ1, λ = {lam:g}",
                "regularized",
                starts_from="dense",
                overrides={
                    "optimizer": {"epochs": schedule.activation_epochs},
                    "extras": [
                        {"name": "activation_l1", "lam": lam, "layers": [ACTIVATION_LAYER[model]]}
                    ],
                    "tracking": tracking,
                    "data": data,
                },
            )
        )
    return tuple(out)


def schedule(
    train_limit: int | None,
    reference_epochs: int,
    rounds: int,
    eval_size: int,
    *,
    activation: tuple[float, ...] = (),
    activation_epochs: int = 0,
    max_seeds: int | None = None,
    evaluation: SnapshotCheck | None = None,
    retrain_limit: int | None = None,
) -> GuoSchedule:
    """One model's :class:`GuoSchedule`: tracked at epoch ends only, no tracked attacks
    (robustness is measured on the kept models afterwards)."""
    return GuoSchedule(
        train_limit,
        Phase(reference_epochs, 0),
        Phase(rounds, 0),
        eval_size,
        tracked_attacks={},
        max_seeds=max_seeds,
        rounds=rounds,
        activation=activation,
        activation_epochs=activation_epochs,
        evaluation=evaluation or SnapshotCheck(),
        retrain_limit=retrain_limit,
    )


LENET300_EPOCHS = 53
"""53 epochs of 938 steps: 49,714 iterations, the paper's 50,000 to within one epoch."""
LENET5_EPOCHS = 20
"""18,760 iterations: where the tracked test accuracy has stopped rising (measured
against a 53-epoch run; see CHOICES)."""
RETRAIN_LIMIT = 20_000
"""Retraining runs train on a seeded, class-stratified subset of 20,000 MNIST training
images (the same subset every epoch): one retraining epoch (one pruning round) is 313
steps of 64, a third of a full epoch (measured budget: a full-epoch round made LeNet-5's
pruning and control runs as long as its reference)."""
ACTIVATION_EPOCHS = 4
"""Epochs of activation-ℓ1 fine-tuning of the dense reference (Table 1)."""

ACTIVATION_LAYER = {"lenet300100": "5", "lenet5": "7"}
"""The module whose output the activation ℓ1 penalises: the ReLU feeding the last fully
connected layer, whose sparsity Table 1 reports. Penalising every hidden layer instead
(measured on LeNet-300-100, 4 passes over 20,000 images from the dense model) moved that
sparsity far less: 18.6 % → 57.5 % at λ = 10⁻² with accuracy 0.9754, where the last layer
alone reached 72.6 % at 0.9803."""

ACTIVATION_L1: dict[str, tuple[float, ...]] = {
    "lenet300100": (1.5e-2, 2e-1),
    "lenet5": (5e-3, 3e-2),
}
"""Table 1's two regularized rows per LeNet: λ picked by fine-tuning a seed-0 dense model
for 4 passes over the 20,000 images (test set, sparsity (a) / accuracy). Caffe networks
and initialisation (LeNet-300-100 trained 53 epochs, LeNet-5 10): LeNet-300-100 dense
21.0 % / 0.9833, λ = 10⁻² 71.4 % / 0.9803, 1.5·10⁻² 76.3 % / 0.9796, 5·10⁻² 88.8 % / 0.9762,
2·10⁻¹ 96.0 % / 0.9733 (targets 75.9 % and 95.2 %); LeNet-5 dense 53.0 % / 0.9905,
λ = 3·10⁻³ 95.3 % / 0.9869, 5·10⁻³ 97.0 % / 0.9868, 10⁻² 98.4 % / 0.9854, 3·10⁻² 99.44 % /
0.9808 (targets 97.5 % and 99.6 %)."""


CHOICES: tuple[str, ...] = (
    "Pruning retrains one epoch per round (the paper does not say how long; Han et al. "
    "retrain to recover accuracy): 16 epochs over the 16 rounds. The control "
    "'continued' retrains the dense model for the same 16 epochs with the same "
    "optimiser and no pruning, kept at every epoch, so each round is compared with the "
    "same retraining without pruning.",
    "Linear models: SGD with momentum 0.9, lr 0.01, batch 64, 10 epochs from a "
    "PyTorch-default initialisation (the paper names SGD with momentum only); the same "
    "settings for every retraining epoch.",
    "LeNets: Caffe's networks as the pruning papers the paper follows used them "
    "(LeNet-5 as Caffe's MNIST example: no ReLU after its two convolutions), Caffe's "
    "xavier initialisation with zero biases, and Caffe's LeNet solver, as the paper says "
    "it follows: lr 0.01 with the inv "
    "policy (gamma 1e-4, power 0.75), momentum 0.9, weight decay 5e-4, batch 64. "
    "Retraining (pruning rounds, the control, activation l1) uses a constant lr equal to "
    "the reference's final one, with the same momentum and weight decay.",
    "Pruned tensors: every weight matrix and convolution kernel, each pruned by the same "
    "fraction (layer-wise uniform, §4.2); biases stay dense.",
    "Pruning runs keep the divergence monitor's loss-explosion rule but not its "
    "accuracy-collapse rule: clean accuracy falling at extreme sparsity is what the paper "
    "measures (the first full run stopped LeNet-300-100 seed 0 at round 15, 99.8 % zero "
    "weights, accuracy 0.291). Rounds whose clean accuracy is near chance are marked in "
    "the report, and no claim compares beyond the rounds the accuracy range allows "
    "except the over-pruning claim, which is about that fall.",
    "r_inf: accuracy under FGS and rFGS (Tramer et al. 2018: a random sign step of "
    "alpha = eps/2, then FGSM with the rest; the paper keeps rFGS's settings fixed without "
    "giving them) at eps = 0.1, clipped to [0, 1], over the whole test set. r_2: the "
    "paper's eq. (5), E[1(y = y_hat) * ||x_adv - x||_2] over the evaluated inputs, with "
    "DeepFool (overshoot 0.02, 50 iterations) and C&W L2 (see the profile), iterates "
    "clipped to [0, 1]; a correctly classified input the attack fails on has no "
    "distance: it is left out of the mean and counted (failures are reported).",
)


QUICK_CHECK = SnapshotCheck(
    linf_size=500,
    l2_size=100,
    cw_size=50,
    cw_steps=50,
    cw_search_steps=3,
    clever_size=4,
    clever_rounds=(0, 4),
    clever_batches=5,
    clever_samples=32,
    control_epochs=(1, 4),
)
"""The quick profile's measurements: a smoke test of every one of them."""

LINEAR_CHECK = SnapshotCheck(l2_size=10_000, cw_size=1000, control_epochs=(4, 16))
"""Linear models: r∞ and DeepFool's r2 on the whole test set, C&W (100 Adam steps × 5
constants) on the first 1,000 images, CLEVER on 10 at rounds 0, 4, 8, 12, 16; the
control at epochs 4 and 16."""

LENET300_CHECK = SnapshotCheck(l2_size=2000, cw_size=500, cw_search_steps=3, control_epochs=(4, 16))
"""LeNet-300-100: r∞ on the whole test set, DeepFool on the first 2,000 images, C&W
(100 steps × 3 constants) on 500, CLEVER on 10 at rounds 0, 4, 8, 12, 16."""

LENET5_CHECK = SnapshotCheck(
    l2_size=500, cw_size=100, cw_search_steps=3, clever_size=5, control_epochs=(4, 16)
)
"""LeNet-5: r∞ on the whole test set, DeepFool on 500 images, C&W on 100, CLEVER on 5
(measured: one LeNet-5 model took 122 s with DeepFool on 1,000 and C&W 100 × 5 on 200,
two training workers sharing the cores, which would have made the measurements longer
than the training)."""

PROFILES: dict[str, Profile[GuoSchedule]] = {}


def _register_profiles() -> None:
    PROFILES["quick"] = Profile(
        name="quick",
        description=(
            "smoke test: 4 pruning rounds; linear models 5 epochs on 10000 (softmax) / "
            "all 13007 (1 vs 7) training images; LeNet-300-100 2 epochs and LeNet-5 1 "
            "epoch on 10000; one activation-l1 strength per LeNet for 1 epoch; "
            "evaluation on 500 test images (r2 on 100, C&W on 50, CLEVER on 4); one seed"
        ),
        seeds=1,
        settings={
            "logistic_regression": schedule(None, 5, 4, 500, evaluation=QUICK_CHECK),
            "softmax_regression": schedule(10000, 5, 4, 500, evaluation=QUICK_CHECK),
            "lenet300100": schedule(
                10000, 2, 4, 500, activation=(1e-2,), activation_epochs=1, evaluation=QUICK_CHECK
            ),
            "lenet5": schedule(
                10000, 1, 4, 500, activation=(1e-2,), activation_epochs=1, evaluation=QUICK_CHECK
            ),
        },
        masking=MaskingCheck(size=200, eps=EPS),
    )
    PROFILES["full"] = Profile(
        name="full",
        description=(
            "full training sets for the dense references; 16 pruning rounds of 1/3, each "
            "retraining one pass over a 20,000-image subset (313 steps), as do the controls "
            "and the activation-l1 runs; "
            f"LeNet-300-100 {LENET300_EPOCHS} epochs (≈ 50,000 iterations, the paper's), "
            f"LeNet-5 {LENET5_EPOCHS} epochs (the plateau; see CHOICES), linear models "
            "10 epochs; activation l1 for "
            f"{ACTIVATION_EPOCHS} epochs at two strengths per LeNet; accuracy tracked on the "
            "whole test set; every kept model evaluated on the whole test set (r_inf), "
            "r2 with DeepFool / C&W on the first 10000 / 1000 test images (linear), 2000 / "
            "500 (LeNet-300-100), 500 / 100 (LeNet-5), CLEVER on 10 (LeNet-5: 5) at rounds "
            "0, 4, 8, 12, 16, the control at epochs 4 and 16; 5 seeds (LeNet-5: 3)"
        ),
        seeds=5,
        settings={
            "logistic_regression": schedule(
                None, 10, ROUNDS, 10000, evaluation=LINEAR_CHECK, retrain_limit=RETRAIN_LIMIT
            ),
            "softmax_regression": schedule(
                None, 10, ROUNDS, 10000, evaluation=LINEAR_CHECK, retrain_limit=RETRAIN_LIMIT
            ),
            "lenet300100": schedule(
                None,
                LENET300_EPOCHS,
                ROUNDS,
                10000,
                activation=ACTIVATION_L1["lenet300100"],
                activation_epochs=ACTIVATION_EPOCHS,
                evaluation=LENET300_CHECK,
                retrain_limit=RETRAIN_LIMIT,
            ),
            "lenet5": schedule(
                None,
                LENET5_EPOCHS,
                ROUNDS,
                10000,
                activation=ACTIVATION_L1["lenet5"],
                activation_epochs=ACTIVATION_EPOCHS,
                max_seeds=3,
                evaluation=LENET5_CHECK,
                retrain_limit=RETRAIN_LIMIT,
            ),
        },
        masking=MaskingCheck(size=400, eps=EPS),
    )

    cifar = {
        model: GuoSchedule(
            None,
            Phase(160, 0),
            Phase(ROUNDS, 0),
            10000,
            tracked_attacks={},
            overrides={"device": "cuda"},
            rounds=ROUNDS,
            evaluation=SnapshotCheck(l2_size=1000, cw_size=500, control_epochs=(1, 4, 8, 16)),
            prune=tuple(range(2, n)),
        )
        for model, n in (("vgg_like", 14), ("resnet32", 34))
    }
    PROFILES["paper-cifar"] = Profile(
        name="paper-cifar",
        description=(
            "Figure 2 e-h on a GPU: VGG-like (12 convolutions, 2 linear layers) and ResNet-32 "
            "on CIFAR-10, dense references 160 epochs (SGD 0.1, momentum 0.9, weight decay "
            "5e-4, cosine; the paper gives no schedule), 16 rounds of 1/3 keeping the first "
            "and last layers dense (§4.2), one full retraining epoch per round at lr 0.001; "
            "r_inf on the whole test set, r2 on 1000 (DeepFool) and 500 (C&W); 10 seeds as "
            "the paper; refused without a CUDA GPU and the CIFAR-10 files"
        ),
        seeds=10,
        settings=cifar,
        masking=MaskingCheck(size=400, eps=EPS),
    )


_register_profiles()


def models_for(profile: Profile[GuoSchedule]) -> dict[str, ModelEntry]:
    """Each model's data set, optimiser per phase and methods in ``profile``."""
    out = {}
    for model, sched in profile.settings.items():
        out[model] = ModelEntry(
            DATASET[model],
            solvers(model, sched),
            methods(model, sched),
            model_init=INIT.get(model, "torch_default"),
        )
    return out


def plan(profile: Profile[GuoSchedule], seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run: the dense references (LeNet-300-100 first: short, then LeNet-5), then
    pruning, the controls and the activation-ℓ1 fine-tunings. The ``paper-cifar``
    profile is refused, in one line, where a GPU or the CIFAR-10 files are missing."""
    if any(model in CIFAR for model in profile.settings):
        refuse_paper_cifar(
            profile.name,
            "VGG-like and ResNet-32, Figure 2 e-h",
            "--profile quick or full for the MNIST part",
            paper_cifar_missing(),
        )
    return plan_grid(
        NAME,
        profile,
        seeds,
        models_for(profile),
        order=("lenet300100", "lenet5", "softmax_regression", "logistic_regression", *CIFAR),
        first=("pruned",),
    )

"""Langenberg, Balda, Behboodi & Mathar 2019, *On the Effect of Low-Rank Weights on
Adversarial Robustness of Neural Networks*: the whole grid of §5 as one recipe.

**FCNN on MNIST** (784 → 5×20 tanh → 10; Figures 1–3, 8, Table 1)

============================  ====================================================
method id                     what
============================  ====================================================
``natural``                   natural training from scratch
``fgsm``, ``pgd``             adversarial fine-tuning of ``natural`` at ε = 0.05
``l1``                        fine-tuning with λ_{1,1} = 0.01 (ℓ1 on W1, eq. 5)
``nuclear``                   λ_{*,1} = 0.01 (nuclear norm on W1, eq. 6)
``l1-nuclear``                λ_{1,1} = 0.01 and λ_{*,1} = 0.01
``l1-nuclear-0.03``           λ_{1,1} = 0.01 and λ_{*,1} = 0.03
``joint-l1``                  λ_joint = 3·10⁻⁴ (eq. 7) with λ_{1,1} = 0.01
============================  ====================================================

**CNN on Fashion-MNIST** (2 × [conv 3×3, 32 → max-pool 2×2] → 128 tanh → 10;
Figures 4–7, 9–10, Table 2): ``natural``, ``fgsm``, ``pgd``, and
``l1-nuclear-<λ>``: λ_{1,1} = λ_{1,2} = 0.01 (ℓ1 on the reshaped kernels W̃1, W̃2)
with λ_{*,2} = λ ∈ {0, 0.05, 0.1, 0.5} (nuclear norm on W̃2).

Every run tracks clean accuracy, the fooling ratios of FGSM, PGD (T = 20,
α = 0.005) and GNM (T = 5) at ε = 0.05 (the paper's attacks; the schema's defaults),
the effective rank (eq. 3) and effective sparsity (eq. 2) of every W_i, and, for
the FCNN, the KDE bounds on I(X; T_i) and I(T_i; Y) with σ² = 0.1 (Figure 2).

Where the paper is silent or its setting does not train in our budget, the choice
is written in :data:`CHOICES` (copied into every manifest) and explained there.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustcompress.experiments.recipes import (
    EnsembleCheck,
    MaskingCheck,
    Method,
    ModelEntry,
    Phase,
    PlannedRun,
    Profile,
    Schedule,
    plan_grid,
)
from robustcompress.experiments.recipes.methods import adversarial, regularized

NAME = "langenberg2019"
EPS = 0.05
"""The paper's ℓ∞ budget for adversarial training and every tracked attack (§5)."""

PGD_TRAINING = {"attack": "pgd", "eps": EPS, "steps": 10, "alpha": 0.01, "random_start": True}
"""PGD used to make adversarial *training* examples (see CHOICES)."""

OPTIMIZER: dict[str, dict[str, dict[str, float | int]]] = {
    "fcnn": {
        "scratch": {"lr": 0.05, "momentum": 0.9, "batch_size": 128},
        "finetune": {"lr": 0.01, "momentum": 0.9, "batch_size": 128},
    },
    "cnn": {
        "scratch": {"lr": 0.01, "momentum": 0.9, "batch_size": 64},
        "finetune": {"lr": 0.001, "momentum": 0.9, "batch_size": 64},
    },
}
"""SGD settings per model and phase: the paper's batch sizes, with momentum 0.9 (see CHOICES)."""

DATASET = {"fcnn": "mnist", "cnn": "fashion-mnist"}
JOINT_LAMBDA = 3e-4
"""λ_joint of eq. (7): the paper gives no value; see CHOICES for how 3·10⁻⁴ was picked."""

CHOICES: tuple[str, ...] = (
    "Regularized runs fine-tune the naturally trained model (same seed) like the "
    "adversarial runs, with the same optimiser and number of epochs: the paper's "
    "Figures 2-5 plot every method over the same fine-tuning iterations starting "
    "from the natural model's values, and a paired comparison needs one starting "
    "point per seed.",
    "Profile 'paper' follows §5 where the paper states a setting: plain SGD (no momentum), "
    "FCNN lr 0.001 batch 128 from scratch and for fine-tuning, CNN lr 0.01 from scratch and "
    "0.001 for fine-tuning, batch 64. Initialisation is Glorot-uniform (an assumption: the "
    "Keras default, which the paper most likely used; it does not say). Natural training "
    "stops at the paper's clean accuracy (Tables 1-2: FCNN 0.9508, CNN 0.9041) measured on "
    "the tracked test images, or at a cap of 300 (FCNN) / 30 (CNN) epochs. The paper does "
    "not give its fine-tuning length: 20 epochs (FCNN) and 1 epoch (CNN, for the budget). "
    "FCNN 5 seeds, CNN 3 (budget: a CNN training epoch took 51 s here, an FCNN epoch "
    "1.3 s). The paper profile tracks FGSM, PGD and GNM clipped to the image box [0, 1] "
    "(valid images; the default everywhere else, and what the claims use) and, on the "
    "FCNN, also unclipped (labels '<attack>-unclipped': the behaviour of the reference GNM "
    "code, which the paper's near-100% fooling ratios at eps = 0.05 most likely "
    "correspond to; the CNN tracks the clipped ones only, for the budget). Tracking runs "
    "every 10 (FCNN) / 5 (CNN) epochs of natural training and every 2 / 1 of fine-tuning: "
    "tracking passes, not training, dominated the profile's first run.",
    "Every model has a 'continued' method: natural training continued from the natural "
    "model with the fine-tuning methods' optimiser, epochs and data, clean loss only. It "
    "is the baseline of Claims 1 and 2 (the same training budget without the treatment); "
    "the comparison with the starting (natural) model is kept as a secondary claim row.",
    "Profiles 'quick' and 'full' (the first pass, the 'fast' recipe): "
    "FCNN: SGD with momentum 0.9, lr 0.05 from scratch and lr 0.01 for fine-tuning, "
    "batch 128 (paper: lr 0.001 for both, no momentum stated). The paper's lr barely "
    "trains the 5x20 tanh network in a few epochs (test accuracy 0.21 after 5 epochs "
    "on a 10k subset); this reaches the paper's ~0.95 natural accuracy within the "
    "time budget.",
    "CNN: SGD with momentum 0.9, lr 0.01 from scratch and 0.001 for fine-tuning, "
    "batch 64 (the paper's learning rates and batch size; momentum added so the "
    "natural model reaches ~0.90 in a few epochs).",
    "CNN convolution activation: ReLU (the paper states tanh only for the fully connected layer).",
    "Adversarial fine-tuning trains on adversarial examples only (no clean-loss mix), "
    "at eps = 0.05 as in the paper. FGSM as in the paper; PGD training examples use "
    "T = 10 steps of alpha = 0.01 (2 eps of travel, like the paper's tracked PGD with "
    "T = 20, alpha = 0.005) with a random start (Madry et al. 2018); the paper does "
    "not give its training PGD settings, and half the steps halves the dominant cost.",
    "Tracked attacks are the paper's: FGSM, PGD (T = 20, alpha = 0.005, no random "
    "start) and GNM (T = 5), all at eps = 0.05, on a fixed seeded class-stratified "
    "test subset; fooling ratio = share of correctly classified inputs whose "
    "prediction changes.",
    "Joint regularizer (eq. 7) on the product W6...W1 of all FCNN weight matrices, "
    f"lambda_joint = {JOINT_LAMBDA:g}, together with lambda_1,1 = 0.01 on W1. The paper "
    "gives no lambda_joint. Measured on this machine (one epoch of fine-tuning on 30k "
    "MNIST images from a natural model, 1000 test images): lambda_joint = 0.01 "
    "collapses the network to chance accuracy within 100 steps; 1e-3 (+ l1) gives "
    "accuracy 0.82; 3e-4 (+ l1) keeps the accuracy of l1 alone (0.92) and lowers the "
    "PGD fooling ratio from 0.33 to 0.22, the paper's qualitative finding.",
    "Regularizers are added to the loss (eq. 8) and trained by SGD (no proximal steps).",
    "Mutual information (FCNN): KDE bounds (Kolchinsky & Tracey) with noise variance "
    "0.1 on every tanh output t1..t5, in bits, on a fixed test sample of the "
    "profile's size.",
    "Epochs and tracking frequency are set per profile (see profile_description); "
    "the quick profile subsamples the training sets and evaluates on small subsets, "
    "so its numbers are a smoke test, not a reproduction.",
)


NATURAL = Method("natural", "natural", "natural")
CONTINUED = Method("continued", "continued natural training", "control", starts_from="natural")
"""The control of every fine-tuning method: the same optimiser, epochs and data, clean
loss only, so a claim compares a treatment with the same training budget without it."""
ADVERSARIAL = (
    adversarial("fgsm", "FGSM adv. fine-tuning", {"attack": "fgsm", "eps": EPS}),
    adversarial("pgd", "PGD adv. fine-tuning", PGD_TRAINING),
)

FCNN_METHODS: tuple[Method, ...] = (
    NATURAL,
    CONTINUED,
    *ADVERSARIAL,
    regularized("l1", "λ₁,₁=0.01", l1={"W1": 0.01}),
    regularized("nuclear", "λ*,₁=0.01", nuclear={"W1": 0.01}),
    regularized("l1-nuclear", "λ₁,₁=0.01, λ*,₁=0.01", l1={"W1": 0.01}, nuclear={"W1": 0.01}),
    regularized("l1-nuclear-0.03", "λ₁,₁=0.01, λ*,₁=0.03", l1={"W1": 0.01}, nuclear={"W1": 0.03}),
    regularized(
        "joint-l1", f"λ_joint={JOINT_LAMBDA}, λ₁,₁=0.01", joint=JOINT_LAMBDA, l1={"W1": 0.01}
    ),
)
"""Table 1 and Figures 2–3 (Langenberg et al. 2019, §5)."""

CNN_NUCLEAR = (0.0, 0.05, 0.1, 0.5)
"""λ_{*,2} of Table 2 / Figures 4–5."""

CNN_METHODS: tuple[Method, ...] = (
    NATURAL,
    CONTINUED,
    *ADVERSARIAL,
    *(
        regularized(
            f"l1-nuclear-{lam:g}",
            f"λ₁,₁=λ₁,₂=0.01, λ*,₂={lam:g}",
            l1={"W1": 0.01, "W2": 0.01},
            nuclear={"W2": lam},
        )
        for lam in CNN_NUCLEAR
    ),
)
"""Table 2 and Figures 4–5 (Langenberg et al. 2019, §5)."""

METHODS: dict[str, tuple[Method, ...]] = {"fcnn": FCNN_METHODS, "cnn": CNN_METHODS}

PAPER_ACCURACY: dict[str, dict[str, float]] = {
    "fcnn": {
        "natural": 0.9508,
        "fgsm": 0.9697,
        "pgd": 0.9689,
        "l1": 0.9527,
        "nuclear": 0.9681,
        "l1-nuclear": 0.9446,
        "l1-nuclear-0.03": 0.9327,
    },
    "cnn": {
        "natural": 0.9041,
        "fgsm": 0.8639,
        "pgd": 0.864,
        "l1-nuclear-0": 0.8917,
        "l1-nuclear-0.05": 0.8623,
        "l1-nuclear-0.1": 0.8614,
        "l1-nuclear-0.5": 0.8399,
    },
}
"""Clean test accuracies of Tables 1 (FCNN, MNIST) and 2 (CNN, F-MNIST)."""


PAPER_OPTIMIZER: dict[str, dict[str, dict[str, float | int]]] = {
    "fcnn": {
        "scratch": {"lr": 0.001, "batch_size": 128},
        "finetune": {"lr": 0.001, "batch_size": 128},
    },
    "cnn": {
        "scratch": {"lr": 0.01, "batch_size": 64},
        "finetune": {"lr": 0.001, "batch_size": 64},
    },
}
"""The paper's §5 settings: plain SGD (no momentum) at these learning rates and batches."""

PAPER_TRACKED_CLIPPED: dict[str, dict[str, object]] = {
    "fgsm": {"eps": EPS},
    "pgd": {"eps": EPS, "steps": 20, "alpha": 0.005},
    "gnm": {"eps": EPS, "steps": 5},
}
"""The paper's attacks clipped to the image box (valid images): the claims use these."""

PAPER_TRACKED: dict[str, dict[str, dict[str, object]]] = {
    "fcnn": {
        **PAPER_TRACKED_CLIPPED,
        "fgsm-unclipped": {"attack": "fgsm", "eps": EPS, "clip": False},
        "pgd-unclipped": {"attack": "pgd", "eps": EPS, "steps": 20, "alpha": 0.005, "clip": False},
        "gnm-unclipped": {"attack": "gnm", "eps": EPS, "steps": 5, "clip": False},
    },
    "cnn": PAPER_TRACKED_CLIPPED,
}
"""The paper profile tracks the FCNN's attacks twice: clipped and unclipped, as the
reference GNM code does (the audit's comparison of the two recipes is on the FCNN). The
CNN tracks the clipped ones only: GNM's ten logit gradients per step on 300 images made
one CNN tracking pass with both variants take 70 s, more than an epoch of training
(51 s; measured in this profile's first run, 2 workers on 2 cores)."""

PAPER_CAP = {"fcnn": 300, "cnn": 30}
"""Epoch caps of natural training in the paper profile (it stops earlier at the paper's
clean accuracy). Measured here in the profile's whole run: four of the five FCNN seeds
ran all 300 epochs (0.941-0.949 on their 1000 tracked test images; 0.9524 ± 0.0020 on
the full test set over all five), seed 3 reached 0.9508 at epoch 250; all three CNN
seeds ran all 30 (0.880-0.900 on 300 images; 0.8828 on the full test set against the
paper's 0.9041)."""

PAPER_TRACK_EVERY_EPOCHS = {"fcnn": (10, 2), "cnn": (5, 1)}
"""Epoch ends tracked in the paper profile, ``(natural, fine-tuning)``: every k-th and
the last. Tracking passes, not training, dominated the first run of this profile: the
FCNN's (six attacks and the MI bounds on 1000 images) took 2.2 s against 1.3 s per
training epoch, 64% of a 300-epoch run; the CNN's 70 s against 51 s. Natural training
then checks the accuracy target every 10 (FCNN) or 5 (CNN) epochs.

The profile's cost estimated from those timings (2 workers on 2 cores): natural training
38 (FCNN, 5 seeds) + 89 (CNN, 3 seeds) core-minutes, fine-tuning 57 + 70, masking
checks about 32; about 286 core-minutes, about 145 minutes of wall time if the two
workers stay busy. Measured as a whole: 2 h 17 min 49 s, on a machine shared with other
work for most of the run (the ensemble step added since is not included)."""

PAPER_FINETUNE = {"fcnn": 20, "cnn": 1}
"""Fine-tuning epochs in the paper profile (the paper does not state them; see CHOICES)."""


def schedule(
    train_limit: int | None,
    natural_epochs: int,
    finetune_epochs: int,
    eval_size: int,
    natural_track_points: int,
    finetune_track_points: int,
    mi_eval_size: int | None = None,
    tracked_attacks: dict[str, dict[str, object]] | None = None,
) -> Schedule:
    """One model's :class:`Schedule` within a profile (track points: events after step 0).

    ``tracked_attacks`` replaces the paper's FGSM/PGD/GNM (only for fast tests).
    """
    return Schedule(
        train_limit,
        Phase(natural_epochs, natural_track_points),
        Phase(finetune_epochs, finetune_track_points),
        eval_size,
        mi_eval_size=mi_eval_size,
        tracked_attacks=tracked_attacks,
    )


QUICK_ENSEMBLE = EnsembleCheck(size=100, steps=10, queries=100, curve=(0.1,))
"""The quick profile's ensemble: a smoke test of the step (AutoAttack spends 100 APGD
and FAB steps and 5,000 Square queries)."""

FULL_ENSEMBLE = EnsembleCheck(size=200, curve=(0.1, 0.2))
"""The full and paper profiles' ensemble: AutoAttack's standard version at its own
budget (100 steps, 9 targets, 5,000 queries) on 200 test images at the paper's ε, and at
ε = 0.1 and 0.2 for the natural model and each model's most robust method."""

PROFILES: dict[str, Profile[Schedule]] = {
    "quick": Profile(
        name="quick",
        description=(
            "smoke test: FCNN 10000 MNIST / CNN 4000 F-MNIST training images, "
            "5 (FCNN) / 2 (CNN) natural epochs, 2 / 1 fine-tuning epochs, tracking on "
            "300 / 150 test images, MI on 300, masking checks on 200, the ensemble "
            "(10 APGD steps, 100 Square queries) on 100, one seed"
        ),
        seeds=1,
        settings={
            "fcnn": schedule(10000, 5, 2, 300, 5, 4, mi_eval_size=300),
            "cnn": schedule(4000, 2, 1, 150, 2, 3),
        },
        masking=MaskingCheck(size=200),
        ensemble=QUICK_ENSEMBLE,
    ),
    "full": Profile(
        name="full",
        description=(
            "full training sets; FCNN 10 natural + 5 fine-tuning epochs, tracked at "
            "every epoch end on 1000 MNIST test images (MI on 1000); CNN 5 natural "
            "epochs tracked at epoch ends, 1 fine-tuning epoch tracked every 313 steps, "
            "on 300 F-MNIST test images (PGD-20 and GNM on the CNN dominate the cost); "
            "masking checks on 400 test images; the AutoAttack-style ensemble (standard, "
            "full budget) on 200; 3 seeds"
        ),
        seeds=3,
        settings={
            "fcnn": schedule(None, 10, 5, 1000, 10, 5, mi_eval_size=1000),
            "cnn": schedule(None, 5, 1, 300, 5, 3),
        },
        masking=MaskingCheck(size=400),
        ensemble=FULL_ENSEMBLE,
    ),
    "paper": Profile(
        name="paper",
        description=(
            "the paper's own recipe (§5): plain SGD, FCNN lr 0.001 batch 128 from scratch "
            "and fine-tuning, CNN lr 0.01 from scratch and 0.001 fine-tuning, batch 64; "
            "Glorot-uniform initialisation (assumed: the Keras default); natural training "
            "until the paper's clean accuracy (Tables 1-2) on the tracked test images or "
            f"the cap (FCNN {PAPER_CAP['fcnn']} epochs, CNN {PAPER_CAP['cnn']}); "
            f"fine-tuning FCNN {PAPER_FINETUNE['fcnn']} epochs, CNN "
            f"{PAPER_FINETUNE['cnn']}; full training sets; tracking on 1000 MNIST / 300 "
            "F-MNIST test images every "
            f"{PAPER_TRACK_EVERY_EPOCHS['fcnn'][0]} (FCNN) / {PAPER_TRACK_EVERY_EPOCHS['cnn'][0]} "
            "(CNN) epochs of natural training and every "
            f"{PAPER_TRACK_EVERY_EPOCHS['fcnn'][1]} / {PAPER_TRACK_EVERY_EPOCHS['cnn'][1]} of "
            "fine-tuning (attacks clipped and unclipped on the FCNN, clipped on the CNN); "
            "FCNN 5 seeds, CNN 3 seeds; masking checks on 400 images, the ensemble on 200"
        ),
        seeds=5,
        settings={
            "fcnn": Schedule(
                None,
                Phase(PAPER_CAP["fcnn"], 0, PAPER_TRACK_EVERY_EPOCHS["fcnn"][0]),
                Phase(PAPER_FINETUNE["fcnn"], 0, PAPER_TRACK_EVERY_EPOCHS["fcnn"][1]),
                1000,
                mi_eval_size=1000,
                tracked_attacks=PAPER_TRACKED["fcnn"],
                optimizer=PAPER_OPTIMIZER["fcnn"],
                overrides={"model": {"init": "glorot_uniform"}},
                scratch_extras=(
                    {"name": "target_accuracy", "accuracy": PAPER_ACCURACY["fcnn"]["natural"]},
                ),
            ),
            "cnn": Schedule(
                None,
                Phase(PAPER_CAP["cnn"], 0, PAPER_TRACK_EVERY_EPOCHS["cnn"][0]),
                Phase(PAPER_FINETUNE["cnn"], 0, PAPER_TRACK_EVERY_EPOCHS["cnn"][1]),
                300,
                tracked_attacks=PAPER_TRACKED["cnn"],
                optimizer=PAPER_OPTIMIZER["cnn"],
                overrides={"model": {"init": "glorot_uniform"}},
                scratch_extras=(
                    {"name": "target_accuracy", "accuracy": PAPER_ACCURACY["cnn"]["natural"]},
                ),
                max_seeds=3,
            ),
        },
        masking=MaskingCheck(size=400),
        ensemble=FULL_ENSEMBLE,
    ),
}
"""``quick`` (a smoke test, minutes), ``full`` (the first pass's momentum recipe, the
"fast" one: ≤ 90 min on 2 cores, 2 workers) and ``paper`` (the paper's own optimiser,
initialisation and accuracies; see CHOICES)."""

MODELS: dict[str, ModelEntry] = {
    model: ModelEntry(DATASET[model], OPTIMIZER[model], METHODS[model]) for model in ("cnn", "fcnn")
}
"""The grid: each model's data set, optimiser per phase and methods."""


def plan(profile: Profile[Schedule], seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run of the grid: ``natural`` per model and seed, then its fine-tunings.

    Order matters only for speed: a process pool starts runs in this order, so the
    natural runs come first and the long runs (CNN, PGD) lead the fine-tunings.
    """
    return plan_grid(NAME, profile, seeds, MODELS, order=("cnn", "fcnn"), first=("pgd",))

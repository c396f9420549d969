"""Adversarial attacks behind one interface: ``get(name, **settings)(model, x, y) -> x_adv``.

Importing this package registers every attack; :func:`list_attacks` shows them with
their defaults. Fixed-budget attacks (:class:`FixedEpsilonAttack`) take ``eps`` in
their ``norm``; minimal-perturbation attacks (:class:`MinimalPerturbationAttack`)
search the smallest perturbation that changes the decision.

=================  ======  ==============================================
name               norm    method
=================  ======  ==============================================
``fgsm``           ℓ∞      Goodfellow et al. 2015
``pgd``            ℓ∞      Madry et al. 2018 (alias ``linf_pgd``)
``pgd_l2``         ℓ2      Madry et al. 2018
``gnm``            ℓ∞/ℓ2   Balda et al. 2018, Algorithm 1
``rfgsm``          ℓ∞      Tramèr et al. 2018 (R+FGSM)
``bim``            ℓ∞      Kurakin et al. 2017
``bim_ll``         ℓ∞      Kurakin et al. 2017 (iterative least-likely)
``deepfool``       ℓ2      Moosavi-Dezfooli et al. 2016 (minimal)
``deepfool_linf``  ℓ∞      Moosavi-Dezfooli et al. 2016 (minimal)
``cw_l2``          ℓ2      Carlini & Wagner 2017 (minimal)
``apgd``           ℓ∞      Croce & Hein 2020, APGD (CE or DLR; alias ``apgd_ce``)
``apgd_l2``        ℓ2      Croce & Hein 2020, APGD
``apgd_t``         ℓ∞      Croce & Hein 2020, APGD-T (targeted DLR)
``apgd_t_l2``      ℓ2      Croce & Hein 2020, APGD-T
``fab``            ℓ∞      Croce & Hein 2020, FAB (minimal; optional ``eps``)
``fab_l2``         ℓ2      Croce & Hein 2020, FAB (minimal; optional ``eps``)
``fab_t``          ℓ∞      Croce & Hein 2020, FAB-T (targeted, minimal)
``fab_t_l2``       ℓ2      Croce & Hein 2020, FAB-T (targeted, minimal)
``square``         ℓ∞      Andriushchenko et al. 2020 (score-based, no gradients)
``square_l2``      ℓ2      Andriushchenko et al. 2020 (score-based, no gradients)
``autoattack``     ℓ∞/ℓ2   Croce & Hein 2020, the ensemble (APGD-CE, APGD-T, FAB-T, Square)
``noise``          —       Sanyal et al. §3.2, random Gaussian pixel noise
=================  ======  ==============================================

Public seams for code outside this package (evaluation, training, plug-in attacks):

* :mod:`robustcompress.attacks.ops`: the tensor operations every attack is built from
  (per-sample norms, ε-ball projections, box clipping, the dual-norm maximiser, loss
  and logit gradients, predictions);
* :class:`ThreatModel`: a norm, a radius ε and the image box in one frozen object, with
  ``project``, ``clip_box``, ``norm_of``, ``steepest_ascent`` and ``random_start``;
* capability flags declared by every attack class (:data:`CAPABILITIES`: ``iterative``,
  ``single_step``, ``randomized``, ``minimal_perturbation``, ``targeted``,
  ``scaled_sign_step``), which evaluation and the gradient-masking checks read instead
  of attack names or types. A new attack declares them and is handled accordingly.

The module ``_utils`` holds only the private settings checks of the attack classes.
"""

from robustcompress.attacks import ops
from robustcompress.attacks.apgd import L2APGD, L2APGDTargeted, LinfAPGD, LinfAPGDTargeted
from robustcompress.attacks.base import (
    CAPABILITIES,
    Attack,
    FixedEpsilonAttack,
    MinimalPerturbationAttack,
    attack_class,
    attack_mode,
    get,
    list_attacks,
    register_attack,
)
from robustcompress.attacks.bim import BIM, BIMLeastLikely
from robustcompress.attacks.cw import CarliniWagnerL2
from robustcompress.attacks.deepfool import L2DeepFool, LinfDeepFool
from robustcompress.attacks.ensemble import AutoAttack, EnsembleResult, run_ensemble
from robustcompress.attacks.fab import L2FAB, L2FABTargeted, LinfFAB, LinfFABTargeted
from robustcompress.attacks.fgsm import FGSM
from robustcompress.attacks.gnm import GNM
from robustcompress.attacks.noise import GaussianPixelNoise
from robustcompress.attacks.ops import ThreatModel
from robustcompress.attacks.pgd import L2PGD, LinfPGD
from robustcompress.attacks.rfgsm import RFGSM
from robustcompress.attacks.square import L2Square, LinfSquare

__all__ = [
    "BIM",
    "CAPABILITIES",
    "FGSM",
    "GNM",
    "L2APGD",
    "L2FAB",
    "L2PGD",
    "RFGSM",
    "Attack",
    "AutoAttack",
    "BIMLeastLikely",
    "CarliniWagnerL2",
    "EnsembleResult",
    "FixedEpsilonAttack",
    "GaussianPixelNoise",
    "L2APGDTargeted",
    "L2DeepFool",
    "L2FABTargeted",
    "L2Square",
    "LinfAPGD",
    "LinfAPGDTargeted",
    "LinfDeepFool",
    "LinfFAB",
    "LinfFABTargeted",
    "LinfPGD",
    "LinfSquare",
    "MinimalPerturbationAttack",
    "ThreatModel",
    "attack_class",
    "attack_mode",
    "get",
    "list_attacks",
    "ops",
    "register_attack",
    "run_ensemble",
]

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
``noise``          —       Sanyal et al. §3.2, random Gaussian pixel noise
=================  ======  ==============================================
"""

from robustcompress.attacks.base import (
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
from robustcompress.attacks.fgsm import FGSM
from robustcompress.attacks.gnm import GNM
from robustcompress.attacks.noise import GaussianPixelNoise
from robustcompress.attacks.pgd import L2PGD, LinfPGD
from robustcompress.attacks.rfgsm import RFGSM

__all__ = [
    "BIM",
    "FGSM",
    "GNM",
    "L2PGD",
    "RFGSM",
    "Attack",
    "BIMLeastLikely",
    "CarliniWagnerL2",
    "FixedEpsilonAttack",
    "GaussianPixelNoise",
    "L2DeepFool",
    "LinfDeepFool",
    "LinfPGD",
    "MinimalPerturbationAttack",
    "attack_class",
    "attack_mode",
    "get",
    "list_attacks",
    "register_attack",
]

"""Agreement with peer libraries (torchattacks 3.5.1, Foolbox 3.3.4, ART 1.20.1).

Same briefly trained models (the paper's FCNN on MNIST, CNN on Fashion-MNIST) and the
same test images for every library.

* FGSM and PGD (no random start): the adversarial images must agree with each peer's to
  1e-5 on at least 99.99% of the pixels, and give the same fooling ratio. Peers that
  average the loss over the batch (torchattacks, ART with a mean-reduced loss) divide
  every gradient by N, which could underflow a tiny gradient entry to 0 and flip
  ``sign(g)`` from ±1 to 0; we sum, so such pixels would be the only allowed misfits.
  None occurred in our runs (0 differing pixels out of 156,800 per case).
* DeepFool and C&W ℓ2 (minimal-perturbation attacks): ours must be at least as strong,
  i.e. fool at least as many correctly classified inputs, with a median ℓ2 norm at
  most 1.05× the peer's on the inputs both fool (comparing on a common set keeps the
  harder inputs only one attack fools from biasing the median).

Peers are installed in CI with ``pip install --no-deps`` (they would pull in torch and
torchvision otherwise); each test skips if its peer is missing. torchattacks 3.5.1
imports without torchvision, so no stub is needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.evaluation import fooling_ratio

pytestmark = pytest.mark.peers

EPS = 0.05
PGD = {"alpha": 0.005, "steps": 20}  # Langenberg et al. 2019, §5
#: Reduced C&W budget used for every library alike (defaults: 1000 steps, 9 searches).
CW = {"steps": 200, "search_steps": 6}
PIXEL_TOLERANCE = 1e-5
PIXEL_SHARE = 0.9999
NORM_SLACK = 1.05

CASES = {
    "fcnn": ("trained_fcnn", "mnist_batch"),
    "cnn": ("trained_cnn", "fashion_batch"),
}
Peer = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _case(request: pytest.FixtureRequest, name: str, n: int | None = None) -> tuple[Any, ...]:
    model_fixture, batch_fixture = CASES[name]
    model = request.getfixturevalue(model_fixture).eval()
    x, y = request.getfixturevalue(batch_fixture)
    return model, x[:n], y[:n]


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def _foolbox_model(model: nn.Module) -> Any:
    fb = pytest.importorskip("foolbox")
    return fb.PyTorchModel(model, bounds=(0.0, 1.0))


def _art_classifier(model: nn.Module, x: torch.Tensor) -> Any:
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


# ----------------------------------------------------------------- fixed budget


def _fixed_budget_peer(library: str, attack: str) -> Peer:
    """The peer's FGSM or PGD (ℓ∞, ε = 0.05, no random start) as ``(model, x, y) -> x_adv``."""

    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if library == "torchattacks":
            ta = pytest.importorskip("torchattacks")
            if attack == "fgsm":
                return ta.FGSM(model, eps=EPS)(x, y)
            return ta.PGD(model, eps=EPS, **PGD, random_start=False)(x, y)
        if library == "foolbox":
            fb = pytest.importorskip("foolbox")
            fmodel = _foolbox_model(model)
            peer = (
                fb.attacks.FGSM()
                if attack == "fgsm"
                else fb.attacks.LinfPGD(
                    abs_stepsize=PGD["alpha"], steps=PGD["steps"], random_start=False
                )
            )
            return peer(fmodel, x, y, epsilons=EPS)[1]
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        classifier = _art_classifier(model, x)
        if attack == "fgsm":
            peer = FastGradientMethod(classifier, norm=np.inf, eps=EPS, batch_size=len(x))
        else:
            peer = ProjectedGradientDescent(
                classifier,
                norm=np.inf,
                eps=EPS,
                eps_step=PGD["alpha"],
                max_iter=PGD["steps"],
                num_random_init=0,
                batch_size=len(x),
                verbose=False,
            )
        return torch.from_numpy(peer.generate(x.numpy(), y=y.numpy()))

    return run


@pytest.mark.parametrize("library", ["torchattacks", "foolbox", "art"])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("case", list(CASES))
def test_fixed_budget_attacks_agree_pixelwise(
    request: pytest.FixtureRequest,
    case: str,
    attack: str,
    library: str,
) -> None:
    model, x, y = _case(request, case)
    ours = attacks.get(attack, eps=EPS, **(PGD if attack == "pgd" else {}))(model, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _fixed_budget_peer(library, attack)(model, x, y)
    close = (ours - theirs).abs() <= PIXEL_TOLERANCE
    share = close.float().mean().item()
    assert share >= PIXEL_SHARE, f"{int((~close).sum())} pixels differ from {library}"
    clean = _predict(model, x)
    ours_fr = fooling_ratio(clean, _predict(model, ours), y)
    theirs_fr = fooling_ratio(clean, _predict(model, theirs), y)
    assert ours_fr == theirs_fr
    assert ours_fr > 0.0  # the comparison is not vacuous


# ----------------------------------------------------------- minimal perturbation


def _foolbox_cw_failures(x_adv: torch.Tensor) -> torch.Tensor:
    """Foolbox's C&W returns an all-zero image where it found nothing: mark those."""
    return x_adv.flatten(1).abs().amax(dim=1) == 0


def _minimal_peer(library: str, attack: str) -> Peer:
    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if library == "torchattacks":
            ta = pytest.importorskip("torchattacks")
            if attack == "deepfool":
                return ta.DeepFool(model, steps=50, overshoot=0.02)(x, y)
            # torchattacks' C&W has no search over c: one run at c = 1.
            return ta.CW(model, c=1.0, kappa=0.0, steps=CW["steps"], lr=0.01)(x, y)
        fb = pytest.importorskip("foolbox")
        fmodel = _foolbox_model(model)
        if attack == "deepfool":
            peer = fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)
        else:
            peer = fb.attacks.L2CarliniWagnerAttack(
                binary_search_steps=CW["search_steps"],
                steps=CW["steps"],
                stepsize=0.01,
                confidence=0.0,
                initial_const=1e-3,
                abort_early=True,
            )
        x_adv = peer(fmodel, x, y, epsilons=None)[0]
        if attack == "cw_l2":
            x_adv = torch.where(_foolbox_cw_failures(x_adv)[:, None, None, None], x, x_adv)
        return x_adv

    return run


#: Images per case: the peers' DeepFool and every C&W are slow on the CNN on a CPU.
MINIMAL_SIZES = {
    ("fcnn", "deepfool"): 100,
    ("cnn", "deepfool"): 40,
    ("fcnn", "cw_l2"): 40,
    ("cnn", "cw_l2"): 10,
}


@pytest.mark.parametrize("library", ["torchattacks", "foolbox"])
@pytest.mark.parametrize(
    ("case", "attack"),
    [
        ("fcnn", "deepfool"),
        pytest.param("cnn", "deepfool", marks=pytest.mark.slow),
        ("fcnn", "cw_l2"),
        pytest.param("cnn", "cw_l2", marks=pytest.mark.slow),
    ],
)
def test_minimal_attacks_at_least_as_strong(
    request: pytest.FixtureRequest, case: str, attack: str, library: str
) -> None:
    model, x, y = _case(request, case, MINIMAL_SIZES[(case, attack)])
    ours = attacks.get(attack, **(CW if attack == "cw_l2" else {}))(model, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _minimal_peer(library, attack)(model, x, y)
    clean = _predict(model, x)
    correct = clean == y
    ours_fooled = correct & (_predict(model, ours) != clean)
    theirs_fooled = correct & (_predict(model, theirs) != clean)
    assert ours_fooled.sum() >= theirs_fooled.sum()
    both = ours_fooled & theirs_fooled
    assert both.sum() >= 5, "too few commonly fooled inputs to compare norms"
    ours_norm = (ours - x).flatten(1).norm(dim=1)[both].median()
    theirs_norm = (theirs - x).flatten(1).norm(dim=1)[both].median()
    assert ours_norm <= NORM_SLACK * theirs_norm, (ours_norm.item(), theirs_norm.item())

"""PGD: strength against FGSM, ℓ2 geometry, restarts and random starts."""

from __future__ import annotations

import pytest
import torch

from robustcompress import attacks
from robustcompress.attacks import ThreatModel
from robustcompress.attacks.pgd import pgd
from robustcompress.errors import AttackError


def _fooled(model, x_adv, y) -> int:
    with torch.no_grad():
        return int((model(x_adv).argmax(dim=1) != y).sum())


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_at_least_as_strong_as_fgsm_on_a_trained_network(
    eps, trained_fcnn, mnist_batch
) -> None:
    x, y = mnist_batch
    fgsm = _fooled(trained_fcnn, attacks.get("fgsm", eps=eps)(trained_fcnn, x, y), y)
    pgd_ = _fooled(trained_fcnn, attacks.get("pgd", eps=eps)(trained_fcnn, x, y), y)
    assert pgd_ >= fgsm
    assert pgd_ > _fooled(trained_fcnn, x, y)


def test_restarts_keep_the_strongest_run_per_sample(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    settings = dict(eps=0.05, alpha=0.01, steps=3, norm="linf", random_start=True, loss="ce")
    best = pgd(tiny_model, x, y, restarts=4, generator=torch.Generator().manual_seed(0), **settings)
    # the same four runs, one by one, from the same random stream
    g = torch.Generator().manual_seed(0)
    runs = [pgd(tiny_model, x, y, generator=g, **settings) for _ in range(4)]
    with torch.no_grad():
        losses = torch.stack(
            [torch.nn.functional.cross_entropy(tiny_model(r), y, reduction="none") for r in runs]
        )
        fooled = torch.stack([tiny_model(r).argmax(1) != y for r in runs])
    for n in range(x.shape[0]):
        if fooled[:, n].any():
            first = int(fooled[:, n].nonzero()[0])
            assert torch.equal(best[n], runs[first][n])
        else:
            assert torch.equal(best[n], runs[int(losses[:, n].argmax())][n])


def test_l2_pgd_stays_in_the_ball_and_moves_to_its_edge(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x_adv = attacks.get("pgd_l2", eps=0.5, alpha=0.1, steps=30)(tiny_model, x, y)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-5
    assert norms.min() > 0.4  # ascent on an untrained network goes to the boundary


def test_random_start_is_a_uniform_draw_in_the_ball(tiny_model) -> None:
    x = torch.full((256, 1, 8, 8), 0.5)
    y = torch.zeros(256, dtype=torch.long)
    start = ThreatModel("linf", 0.1).random_start(x, torch.Generator().manual_seed(0))
    # PGD starts there: one step of a negligible α stays within α of the draw
    one_step = attacks.get("pgd", eps=0.1, steps=1, alpha=1e-6, random_start=True, seed=0)
    assert (one_step(tiny_model, x, y) - start).abs().max() <= 1e-6 + 1e-7
    delta = start - x
    assert delta.abs().max() <= 0.1
    assert abs(delta.mean().item()) < 0.005
    assert delta.var().item() == pytest.approx(0.1**2 / 3, rel=0.05)  # Var U(−ε, ε) = ε²/3


def test_margin_loss_is_accepted_and_fools(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    x_adv = attacks.get("pgd", eps=0.3, alpha=0.05, loss="margin")(tiny_model, x, y)
    assert _fooled(tiny_model, x_adv, y) == x.shape[0]


def test_linf_pgd_alias() -> None:
    assert attacks.get("linf_pgd", eps=0.1) == attacks.get("pgd", eps=0.1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"restarts": 3}, "random_start"),
        ({"alpha": 0.0}, "alpha"),
        ({"steps": -1}, "steps"),
        ({"steps": 0}, "steps"),
        ({"loss": "hinge"}, "loss"),
        ({"eps": -0.1}, "eps"),
    ],
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("pgd", **settings)

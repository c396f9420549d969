"""BIM and ILLC: Kurakin's schedule, Clip_{X,ε}, and the least-likely target."""

from __future__ import annotations

import pytest
import torch

from robustcompress import attacks
from robustcompress.attacks.bim import clip_to_neighbourhood, kurakin_steps, least_likely_class


@pytest.mark.parametrize(
    ("eps", "steps"),
    [(0.0, 0), (2 / 255, 2), (4 / 255, 5), (16 / 255, 20), (0.05, 15), (0.3, 80)],
)
def test_kurakin_iteration_count(eps, steps) -> None:
    # ⌊min(255ε + 4, 1.25·255ε)⌋: 1.25·255ε below 16 levels, 255ε + 4 above
    assert kurakin_steps(eps) == steps


def test_default_steps_follow_the_schedule_and_can_be_overridden() -> None:
    assert attacks.get("bim", eps=16 / 255).iterations == 20
    assert attacks.get("bim", eps=16 / 255, steps=3).iterations == 3


def test_clip_to_neighbourhood_is_the_intersection_of_box_and_ball() -> None:
    x = torch.tensor([0.0, 0.5, 0.98])
    x_adv = torch.tensor([-0.2, 0.9, 1.5])
    expected = torch.tensor([0.0, 0.6, 1.0])
    torch.testing.assert_close(clip_to_neighbourhood(x_adv, x, 0.1), expected)


def test_one_iteration_is_fgsm_with_step_alpha(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    bim = attacks.get("bim", eps=0.1, alpha=0.03, steps=1)(tiny_model, x, y)
    fgsm = attacks.get("fgsm", eps=0.03)(tiny_model, x, y)
    assert torch.equal(bim, fgsm)


def test_least_likely_attack_raises_the_least_likely_logit(trained_fcnn, mnist_batch) -> None:
    x, _ = mnist_batch
    x, y = x[:50], torch.zeros(50, dtype=torch.long)  # y must not matter
    target = least_likely_class(trained_fcnn, x)
    x_adv = attacks.get("bim_ll", eps=0.1)(trained_fcnn, x, y)
    with torch.no_grad():
        before = torch.log_softmax(trained_fcnn(x), dim=1).gather(1, target[:, None])
        after = torch.log_softmax(trained_fcnn(x_adv), dim=1).gather(1, target[:, None])
    assert (after > before).all()
    assert torch.equal(x_adv, attacks.get("bim_ll", eps=0.1)(trained_fcnn, x, y + 3))

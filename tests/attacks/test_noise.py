"""Random Gaussian pixel noise (Sanyal et al. §3.2): probability p, variance 128/255."""

from __future__ import annotations

import pytest
import torch

from robustcompress import attacks
from robustcompress.errors import AttackError


def _noise(p: float, variance: float, n: int = 64) -> torch.Tensor:
    x = torch.full((n, 1, 16, 16), 0.5)
    y = torch.zeros(n, dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    return attacks.get("noise", p=p, variance=variance, seed=0)(model, x, y) - x


@pytest.mark.parametrize("p", [0.4, 1.0])
def test_fraction_and_variance_of_the_noise(p) -> None:
    variance = 0.003  # σ ≈ 0.055: from 0.5 the box never clips (≥ 9σ away)
    delta = _noise(p, variance)
    changed = delta != 0
    assert changed.float().mean().item() == pytest.approx(p, abs=0.01)
    assert delta[changed].var().item() == pytest.approx(variance, rel=0.03)
    assert abs(delta[changed].mean().item()) < 0.002


def test_zero_probability_is_identity() -> None:
    assert torch.equal(_noise(0.0, 128 / 255), torch.zeros(64, 1, 16, 16))


def test_default_is_the_papers_variance() -> None:
    assert attacks.get("noise").variance == pytest.approx(128 / 255)


@pytest.mark.parametrize(
    ("settings", "message"), [({"p": 1.5}, "p"), ({"variance": -1.0}, "variance")]
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("noise", **settings)

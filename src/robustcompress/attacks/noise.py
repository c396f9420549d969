"""Random pixel noise of Sanyal et al. (§3.2): Gaussian noise on a random subset of pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robustcompress.attacks._utils import require_number
from robustcompress.attacks.base import Attack, register_attack
from robustcompress.attacks.ops import clip_box
from robustcompress.errors import AttackError


@register_attack
@dataclass(repr=True, kw_only=True)
class GaussianPixelNoise(Attack):
    """Each pixel, with probability ``p``, gets additive noise ``N(0, variance)``; then clip.

    ``x̃_i = clip(x_i + b_i·z_i)`` with ``b_i ~ Bernoulli(p)`` and ``z_i ~ N(0, σ²)``,
    independently per pixel (and channel). Sanyal et al., "Robustness via deep low-rank
    representations", §3.2 and Table 4: ``p ∈ {0.4, 0.6, 0.8, 1.0}`` and
    ``σ² = 128/255`` (defaults ``p = 1.0``, every pixel; ``variance = 128/255``, i.e.
    σ ≈ 0.71 on [0, 1] images). Not an adversarial attack: the model and ``y`` are unused;
    it measures noise stability with the same interface. Seed it for reproducible draws.
    """

    name = "noise"
    paper = "Sanyal et al., §3.2 (Table 4)"
    randomized = True

    p: float = 1.0
    variance: float = 128.0 / 255.0

    def validate(self) -> None:
        super().validate()
        require_number(self.name, "p", self.p)
        if self.p > 1:
            raise AttackError(f"{self.name}: p is a probability in [0, 1], got {self.p!r}")
        require_number(self.name, "variance", self.variance)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        mask = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < self.p
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return clip_box(x + mask * math.sqrt(self.variance) * z)

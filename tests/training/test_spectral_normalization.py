"""Spectral normalisation: the power-iteration estimate against exact operator norms,
the extra keeping every layer's norm at its target, and an exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from training_helpers import Stop, StopAt

from robustcompress.data import make_subspace_dataset
from robustcompress.experiments.config import OptimizerConfig
from robustcompress.structure.conv import conv_spectral_norm
from robustcompress.structure.operators import conv_dense_operator, power_iteration
from robustcompress.training import (
    CleanTracker,
    SettingError,
    SpectralNormalization,
    Trainer,
    TrainingSettings,
    build_extra,
    read_metrics,
)

N = 32


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_norm(module: nn.Module, size: tuple[int, int] | None = None) -> float:
    if isinstance(module, nn.Linear):
        return float(torch.linalg.matrix_norm(module.weight.detach().double(), ord=2))
    assert isinstance(module, nn.Conv2d) and size is not None
    return float(torch.linalg.matrix_norm(conv_dense_operator(module, size), ord=2))


LAYERS = {
    "linear": (lambda: nn.Linear(20, 30), None),
    "conv stride 2": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (7, 7)),
    "conv 1×3": (lambda: nn.Conv2d(2, 3, (1, 3), padding=(0, 1)), (1, 4)),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_power_iteration_converges_to_the_exact_operator_norm(kind: str) -> None:
    build, size = LAYERS[kind]
    torch.manual_seed(0)
    module = build().double()
    if isinstance(module, nn.Linear):
        sigma = torch.linalg.svdvals(module.weight.detach())
    else:
        sigma = torch.linalg.svdvals(conv_dense_operator(module, size))
    exact = float(sigma[0])
    # precondition: a spectral gap, so 200 iterations converge far below the tolerance
    assert float(sigma[1]) / exact < 0.95
    one, _ = power_iteration(module, size, 1, generator=seeded(1))
    assert one <= exact * (1 + 1e-12)  # ‖A u‖ with ‖u‖ = 1 never exceeds ‖A‖
    many, _ = power_iteration(module, size, 200, generator=seeded(1))
    assert many == pytest.approx(exact, rel=1e-9)
    # a persistent vector: 200 calls of one iteration are 200 iterations
    v = None
    for _ in range(200):
        step, v = power_iteration(module, size, 1, v, generator=seeded(1))
    assert step == pytest.approx(many, rel=1e-12)


def test_power_iteration_on_a_circular_convolution_matches_the_fft_norm() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular").double()
    sigma, _ = power_iteration(conv, (6, 6), 300, generator=seeded(0))
    assert sigma == pytest.approx(conv_spectral_norm(conv.weight.detach(), 6), rel=1e-8)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, (1, 3), padding=(0, 1)),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * N, 2),
    )


def _trainer(run_dir: Path, callbacks: list[Any], **settings: Any) -> Trainer:
    train = make_subspace_dataset(n=N, k=4, num_samples=128, seed=0)
    test = make_subspace_dataset(n=N, k=4, num_samples=32, seed=0, split="test")
    return Trainer(
        _model(),
        train,
        TrainingSettings(**{"epochs": 2, "batch_size": 32, **settings}),
        optimizer=OptimizerConfig(lr=0.5, momentum=0.9).build,
        run_dir=run_dir,
        eval_data=(test.images, test.labels),
        trackers=[CleanTracker()],
        callbacks=callbacks,
    )


def _norms(model: nn.Module) -> list[float]:
    return [exact_norm(model[0], (1, N)), exact_norm(model[3])]


def test_the_extra_holds_every_layer_at_its_target(tmp_path: Path) -> None:
    plain = _trainer(tmp_path / "plain", [])
    plain.fit()
    assert max(_norms(plain.model)) > 1.0  # without it the norms grow past the target
    clip = _trainer(
        tmp_path / "clip",
        [SpectralNormalization(target=0.5, every="epoch", power_iterations=2000)],
        epochs=1,
    )
    clip.fit()
    conv, linear = _norms(clip.model)
    assert linear == pytest.approx(0.5, rel=1e-6)  # it was above: clipped to the target
    # a convolution's operator has near-equal top singular values (here 7.5e-5 apart),
    # which power iteration separates slowly: the estimate stays a little below the norm
    assert 0.5 * (1 - 1e-3) <= conv <= 0.5 * (1 + 1e-3)
    normalize = _trainer(
        tmp_path / "normalize",
        [SpectralNormalization(target=0.5, mode="normalize", every="epoch", power_iterations=2000)],
        epochs=1,
    )
    normalize.fit()
    assert _norms(normalize.model) == pytest.approx([0.5, 0.5], rel=1e-3)


def test_a_killed_run_resumes_exactly(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 3}
    reference_extra = SpectralNormalization(target=0.5)
    reference = _trainer(tmp_path / "reference", [reference_extra], **kw)
    reference.fit()
    killed = _trainer(tmp_path / "resumed", [SpectralNormalization(target=0.5), StopAt(7)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    resumed_extra = SpectralNormalization(target=0.5)
    resumed = _trainer(tmp_path / "resumed", [resumed_extra], **kw)
    assert resumed.fit().resumed_from_step == 6
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for name, vector in reference_extra.vectors.items():
        assert torch.equal(resumed_extra.vectors[name], vector)


def test_settings_are_checked() -> None:
    with pytest.raises(SettingError, match="target: must be > 0"):
        build_extra("spectral_normalization", target=0.0)
    with pytest.raises(SettingError, match="power_iterations"):
        build_extra("spectral_normalization", power_iterations=0)
    with pytest.raises(Exception, match="mode"):
        build_extra("spectral_normalization", mode="miyato")

"""The LR virtual layer (Sanyal et al.): its losses' gradients against closed forms, the
model's outputs untouched, W kept SPSD of rank ≤ r by the projection, and an exact
resume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from training_helpers import Stop, StopAt

from robustcompress.data import make_subspace_dataset
from robustcompress.experiments.config import OptimizerConfig
from robustcompress.models import create_model
from robustcompress.training import (
    Callback,
    CleanTracker,
    SettingError,
    Trainer,
    TrainingSettings,
    build_extra,
    read_metrics,
)
from robustcompress.training.lr_layer import LowRankLayer, norm_loss, reconstruction_loss

N = 32


def test_the_losses_gradients_match_their_closed_forms() -> None:
    """L_c = (1/B)‖XW − X‖², X = A + 1bᵀ, W = (W_s + W_sᵀ)/2: ∂/∂A = (2/B) R (W − I) with
    R = XW − X, ∂/∂b its column sums, ∂/∂W_s the symmetric part of (2/B) XᵀR.
    L_n = (1/B) Σ|1 − ‖a_i‖|: ∂/∂a_i = −(1/B) sign(1 − ‖a_i‖) a_i/‖a_i‖."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w_s = torch.randn(5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    reconstruction_loss(a, w_s, b).backward()
    with torch.no_grad():
        x, w = a + b, (w_s + w_s.T) / 2
        r = x @ w - x
        d_x = 2 / 6 * r @ (w - torch.eye(5, dtype=torch.float64))
        d_w = 2 / 6 * x.T @ r
    assert a.grad is not None and w_s.grad is not None and b.grad is not None
    assert torch.allclose(a.grad, d_x) and torch.allclose(b.grad, d_x.sum(dim=0))
    assert torch.allclose(w_s.grad, (d_w + d_w.T) / 2)
    a.grad = None
    norm_loss(a).backward()
    with torch.no_grad():
        norms = a.norm(dim=1, keepdim=True)
        want = -torch.sign(1 - norms) * a / norms / 6
    assert torch.allclose(a.grad, want)


@dataclass
class Terms(Callback):
    """Keeps every step's loss terms."""

    terms: list[dict[str, float]] = field(default_factory=list)

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
        self.terms.append(dict(terms))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("fcnn", hidden=[24, 16], in_features=N)


def _layer(**kw: Any) -> LowRankLayer:
    settings: dict[str, Any] = {"layers": ["5"], "rank": 3, "every": 2, "input_shape": [N]}
    extra = build_extra("lr_layer", **{**settings, **kw})
    assert isinstance(extra, LowRankLayer)
    return extra


def _trainer(run_dir: Path, callbacks: list[Any], **settings: Any) -> Trainer:
    train = make_subspace_dataset(n=N, k=4, num_samples=128, seed=0)
    test = make_subspace_dataset(n=N, k=4, num_samples=32, seed=0, split="test")
    return Trainer(
        _model(),
        train,
        TrainingSettings(**{"epochs": 2, "batch_size": 32, **settings}),
        optimizer=OptimizerConfig(lr=0.1, momentum=0.9).build,
        run_dir=run_dir,
        eval_data=(test.images, test.labels),
        trackers=[CleanTracker()],
        callbacks=callbacks,
    )


def test_the_layer_leaves_the_outputs_alone() -> None:
    model = _model()
    x = torch.randn(8, N)
    before = model(x)
    layer = _layer(lam_c=1.0, lam_n=1.0)
    layer.setup(model)
    assert layer.w_s["5"].shape == (16, 16)  # the second hidden layer's tanh output
    after = model(x)
    assert torch.equal(before, after)
    model.eval()
    with torch.no_grad():
        model(x)
    assert len(layer._outputs["5"]) == 1  # only the training pass with autograd is kept


def test_training_keeps_w_spsd_of_rank_at_most_r_and_adds_its_loss(tmp_path: Path) -> None:
    layer = _layer(lam_c=0.5, lam_n=0.1, start_epoch=1)
    seen = Terms()
    trainer = _trainer(tmp_path / "run", [layer, seen], epochs=3)
    trainer.fit()
    # 4 steps per epoch; the layer starts in epoch 2: 8 steps, projected every 2
    assert layer.started and layer.steps == 8 and layer.counts == {"svd": 4}
    w = layer.w_s["5"].detach().double()
    assert torch.allclose(w, w.T, atol=1e-6)
    values = torch.linalg.eigvalsh(w)
    assert float(values.min()) > -1e-5 and int((values > 1e-5).sum()) <= 3
    # no term during the first epoch's pre-training, one at every step after it
    assert [("extra/lr_layer" in t) for t in seen.terms] == [False] * 4 + [True] * 8
    assert all(t["extra/lr_layer"] > 0 for t in seen.terms[4:])


def test_nystrom_projection_is_used_above_exact_max(tmp_path: Path) -> None:
    layer = _layer(exact_max=8, nystrom_runs=3, lam_c=0.5)
    trainer = _trainer(tmp_path / "run", [layer], epochs=1)
    trainer.fit()
    assert layer.method("5") == "nystrom" and layer.counts == {"nystrom": 2}
    values = torch.linalg.eigvalsh(layer.w_s["5"].detach().double())
    assert float(values.min()) > -1e-5 and int((values > 1e-5).sum()) <= 3


def test_a_killed_run_resumes_exactly(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 3}
    settings = {"lam_c": 0.5, "lam_n": 0.1, "exact_max": 8, "start_epoch": 1}
    reference_layer = _layer(**settings)
    reference = _trainer(tmp_path / "reference", [reference_layer], **kw)
    reference.fit()
    killed = _trainer(tmp_path / "resumed", [_layer(**settings), StopAt(7)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    resumed_layer = _layer(**settings)
    resumed = _trainer(tmp_path / "resumed", [resumed_layer], **kw)
    assert resumed.fit().resumed_from_step == 6
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(resumed_layer.w_s["5"], reference_layer.w_s["5"])
    assert torch.equal(resumed_layer.bias["5"], reference_layer.bias["5"])
    assert resumed_layer.counts == reference_layer.counts == {"nystrom": 4}


def test_settings_are_checked() -> None:
    with pytest.raises(SettingError, match="layers: name at least one module"):
        build_extra("lr_layer", layers=[], rank=2)
    with pytest.raises(SettingError, match=r"rank: give one value or one per layer \(2\), got 3"):
        build_extra("lr_layer", layers=["1", "2"], rank=[1, 2, 3])
    with pytest.raises(SettingError, match=r"lam_c: give one value or one per layer \(2\)"):
        build_extra("lr_layer", layers=["1", "2"], rank=1, lam_c=[0.1])
    with pytest.raises(SettingError, match="lam_n: must be ≥ 0"):
        build_extra("lr_layer", layers=["1", "2"], rank=1, lam_n=[0.1, -1.0])
    with pytest.raises(SettingError, match="every: must be ≥ 1"):
        build_extra("lr_layer", layers=["1"], rank=2, every=0)
    with pytest.raises(SettingError, match="no module"):
        _layer(layers=["nope"]).setup(_model())
    with pytest.raises(SettingError, match="rank: 20 exceeds the 16 values of 5's output"):
        _layer(rank=20).setup(_model())


def test_each_layer_has_its_own_strengths() -> None:
    """λ₁, λ₂ per layer: the term is Σ_i λ₁ᵢ·L_c + λ₂ᵢ·L_n over the layers' outputs."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = _model()
    layer = _layer(layers=["3", "5"], rank=[2, 3], lam_c=[0.5, 2.0], lam_n=[0.1, 0.0])
    layer.setup(model)
    model.train()
    x = torch.randn(8, N)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        dict(model.named_modules())[name].register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out)
        )
        for name in ("3", "5")
    ]
    model(x)
    for h in hooks:
        h.remove()
    trainer = SimpleNamespace(position=SimpleNamespace(epoch=1))
    term = layer.loss_term(trainer)  # type: ignore[arg-type]
    assert term is not None
    expected = sum(
        c * reconstruction_loss(outputs[n], layer.w_s[n], layer.bias[n]) + k * norm_loss(outputs[n])
        for n, c, k in (("3", 0.5, 0.1), ("5", 2.0, 0.0))
    )
    assert float(term) == pytest.approx(float(expected), rel=1e-6)

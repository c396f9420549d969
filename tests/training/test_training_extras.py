"""Training extras: the callback hooks, their checkpointed state, the registry, Adam.

Runs on the synthetic subspace data (robustcompress.data.synthetic): no data set needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from training_helpers import Stop, StopAt

from robustcompress.data import make_subspace_dataset
from robustcompress.errors import CheckpointError, ConfigError
from robustcompress.experiments.config import OptimizerConfig
from robustcompress.models import create_model, weight_matrices
from robustcompress.training import (
    Callback,
    CleanTracker,
    MagnitudePruning,
    SettingError,
    Trainer,
    TrainingSettings,
    build_extra,
    list_extras,
    read_checkpoint,
    read_metrics,
    register_extra,
)
from robustcompress.training.checkpoint import (
    list_checkpoints,
    state_from_checkpoint,
    state_to_checkpoint,
)

N = 32
"""Input dimension of the synthetic data (images 1×1×32)."""


def _trainer(
    run_dir: Path,
    callbacks: list[Callback],
    *,
    optimizer: OptimizerConfig | None = None,
    **settings: Any,
) -> Trainer:
    """FCNN 32→8→2 on 128 synthetic examples, batch 32 (4 steps per epoch)."""
    train = make_subspace_dataset(n=N, k=4, num_samples=128, seed=0)
    test = make_subspace_dataset(n=N, k=4, num_samples=32, seed=0, split="test")
    torch.manual_seed(0)
    model = create_model("fcnn", in_features=N, hidden=(8,), num_classes=2)
    optimizer = optimizer or OptimizerConfig(lr=0.1, momentum=0.9)
    return Trainer(
        model,
        train,
        TrainingSettings(**{"epochs": 2, "batch_size": 32, **settings}),
        optimizer=optimizer.build,
        run_dir=run_dir,
        eval_data=(test.images, test.labels),
        trackers=[CleanTracker()],
        callbacks=callbacks,
    )


@dataclass
class _Noisy(Callback):
    """A stateful extra whose state changes every step and feeds back into training.

    A step counter, its own RNG stream driving a random walk that nudges W1 after
    every step, a trained scalar it owns (``parameters``) pulled towards the walk by
    a loss term, and a history of JSON values.
    """

    seed: int = 0

    def setup(self, model: nn.Module) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        self.count = 0
        self.walk = torch.zeros(4)
        self.scale = nn.Parameter(torch.ones(()))
        self.weight = weight_matrices(model)[0].parameter
        self.history: list[float] = []

    def parameters(self) -> list[nn.Parameter]:
        return [self.scale]

    def loss_term(self, trainer: Trainer) -> torch.Tensor:
        return 0.01 * (self.scale - self.walk.sum()) ** 2

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        assert not torch.is_grad_enabled() and trainer.position.step == step
        self.count += 1
        self.walk += torch.randn(4, generator=self.generator)
        self.weight.add_(1e-3 * self.walk.mean())

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
        assert "extra/_Noisy" in terms
        self.history.append(float(self.scale.detach()))

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "rng": self.generator.get_state(),
            "nested": {"walk": self.walk.clone(), "history": list(self.history)},
            "scale": self.scale.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        self.generator.set_state(state["rng"])
        self.walk = state["nested"]["walk"].clone()
        self.history = list(state["nested"]["history"])
        with torch.no_grad():
            self.scale.copy_(state["scale"])  # in place: the optimiser holds this tensor


@pytest.mark.parametrize(
    "optimizer",
    [OptimizerConfig(lr=0.1, momentum=0.9), OptimizerConfig(name="adam", lr=0.01)],
    ids=["sgd", "adam"],
)
def test_killed_run_resumes_stateful_extra_exactly(
    tmp_path: Path, optimizer: OptimizerConfig
) -> None:
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 5}
    reference_extra = _Noisy(seed=7)
    reference = _trainer(tmp_path / "reference", [reference_extra], optimizer=optimizer, **kw)
    reference.fit()
    assert reference_extra.count == 12

    killed_extra = _Noisy(seed=7)
    killed = _trainer(tmp_path / "resumed", [killed_extra, StopAt(7)], optimizer=optimizer, **kw)
    with pytest.raises(Stop):
        killed.fit()
    assert killed_extra.count == 7  # ran past the checkpoint at step 5
    assert list_checkpoints(killed.checkpoint_dir)[-1].name == "ckpt-00000005.safetensors"

    resumed_extra = _Noisy(seed=7)
    resumed = _trainer(tmp_path / "resumed", [resumed_extra], optimizer=optimizer, **kw)
    assert resumed.fit().resumed_from_step == 5
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    got, want = resumed_extra.state_dict(), reference_extra.state_dict()
    assert got["count"] == want["count"] == 12
    assert torch.equal(got["rng"], want["rng"])
    assert torch.equal(got["nested"]["walk"], want["nested"]["walk"])
    assert torch.equal(got["scale"], want["scale"])
    assert got["nested"]["history"] == want["nested"]["history"]
    assert len(got["nested"]["history"]) == 12
    # the extra's own parameter was trained by the optimiser (and its state restored)
    assert float(resumed_extra.scale.detach()) != 1.0
    assert resumed.optimizer.param_groups[0]["params"][-1] is resumed_extra.scale


def test_resume_with_other_extras_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Stop):
        _trainer(tmp_path / "run", [_Noisy(), StopAt(4)], checkpoint_every=1).fit()
    with pytest.raises(CheckpointError, match="holds the state of callbacks _Noisy"):
        _trainer(tmp_path / "run", [], checkpoint_every=1).fit()
    pruning = MagnitudePruning(sparsity=0.5)
    with pytest.raises(CheckpointError, match="holds no state for callback 'MagnitudePruning'"):
        _trainer(tmp_path / "run", [_Noisy(), pruning], checkpoint_every=1).fit()


def test_checkpoint_state_packing_roundtrips_nested_values() -> None:
    state = {"a": [torch.arange(3), {"b": 1.5, "c": None}], "d": (True, "x"), "e": torch.ones(2)}
    tensors, document = state_to_checkpoint("callback.k", state)
    assert sorted(tensors) == ["callback.k.0", "callback.k.1"]
    back = state_from_checkpoint(document, tensors, "callback.k")
    assert torch.equal(back["a"][0], torch.arange(3)) and back["a"][1] == {"b": 1.5, "c": None}
    assert back["d"] == [True, "x"] and torch.equal(back["e"], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"callback\.k\.s: cannot checkpoint a set"):
        state_to_checkpoint("callback.k", {"s": {1}})
    with pytest.raises(CheckpointError, match="keys must be strings"):
        state_to_checkpoint("callback.k", {1: 2})


# ------------------------------------------------------------------ registry


@register_extra("test-counting")
@dataclass
class _Counting(Callback):
    every: int = 1
    label: str = "x"
    ratios: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise SettingError("every", f"must be ≥ 1 (got {self.every})")


def test_registry_builds_named_extras_with_checked_settings() -> None:
    assert {"magnitude_pruning", "test-counting"} <= set(list_extras())
    extra = build_extra("test-counting", every="3", ratios=[0.1, 0.9])
    assert isinstance(extra, _Counting) and extra.name == "test-counting"
    assert extra.every == 3 and extra.ratios == (0.1, 0.9)  # coerced to the annotations
    pruning = build_extra("magnitude_pruning", sparsity=0.5, weights=["W1", 2])
    assert isinstance(pruning, MagnitudePruning) and pruning.weights == ["W1", 2]


@pytest.mark.parametrize(
    ("name", "settings", "setting", "message"),
    [
        ("test-countin", {}, "name", "unknown extra 'test-countin' (did you mean 'test-counting'?"),
        ("test-counting", {"evry": 2}, "evry", "did you mean 'every'? allowed: every, label, rat"),
        ("test-counting", {"every": "often"}, "every", "valid integer"),
        ("test-counting", {"every": 0}, "every", "must be ≥ 1 (got 0)"),
        ("magnitude_pruning", {}, "sparsity", "required setting of extra 'magnitude_pruning'"),
        ("magnitude_pruning", {"sparsity": 1.0}, "sparsity", "must be in [0, 1) (got 1.0)"),
        ("magnitude_pruning", {"sparsity": 0.1, "end_epoch": 0}, "end_epoch", "≥ start_epoch"),
    ],
)
def test_bad_extra_names_and_settings_are_setting_errors(
    name: str, settings: dict[str, Any], setting: str, message: str
) -> None:
    with pytest.raises(SettingError) as info:
        build_extra(name, **settings)
    assert info.value.setting == setting and message in info.value.problem
    assert isinstance(info.value, ConfigError) and "\n" not in str(info.value)


def test_register_extra_rejects_bad_names_and_clashes() -> None:
    with pytest.raises(ValueError, match="must match"):
        register_extra("Bad Name")
    with pytest.raises(ValueError, match="already registered"):
        register_extra("test-counting")(MagnitudePruning)

    def factory(name: str) -> Callback:
        return Callback()

    with pytest.raises(ValueError, match="'name'"):
        register_extra("test-named")(factory)


# --------------------------------------------------------- magnitude pruning


def test_magnitude_pruning_follows_the_cubic_schedule_and_keeps_zeros(tmp_path: Path) -> None:
    pruning = MagnitudePruning(sparsity=0.75, start_epoch=1, end_epoch=2, weights=["W1"])
    assert [pruning.target_sparsity(e) for e in (1, 2, 3)] == pytest.approx(
        [0.75 * (1 - 0.5**3), 0.75, 0.75]
    )
    trainer = _trainer(tmp_path / "run", [pruning], epochs=3, checkpoint_every=1)
    trainer.fit()
    w1, w2 = (wm.parameter for wm in weight_matrices(trainer.model))
    assert int((w1 == 0).sum()) == round(0.75 * w1.numel())
    assert torch.equal(w1 == 0, pruning.masks["W1"] == 0)  # zero exactly where masked
    assert int((w2 == 0).sum()) == 0  # not selected
    saved = read_checkpoint(trainer.run_dir)
    assert saved.meta["callbacks"]["MagnitudePruning"] == {"masks": {"W1": {"__tensor__": 0}}}
    assert torch.equal(saved.tensors["callback.MagnitudePruning.0"], pruning.masks["W1"])


def test_optimizer_factory_sees_extra_parameters_after_model_parameters(tmp_path: Path) -> None:
    seen: list[list[nn.Parameter]] = []

    def factory(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        seen.append(params)
        return torch.optim.SGD(params, lr=0.1)

    extra = _Noisy()
    train = make_subspace_dataset(n=N, k=4, num_samples=32, seed=0)
    model = create_model("fcnn", in_features=N, hidden=(8,), num_classes=2)
    Trainer(
        model,
        train,
        TrainingSettings(epochs=1, batch_size=32),
        optimizer=factory,
        run_dir=tmp_path,
        callbacks=[extra],
    )
    assert seen[0][:-1] == list(model.parameters()) and seen[0][-1] is extra.scale

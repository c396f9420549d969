"""Training extras: the callback hooks, their checkpointed state, the registry, Adam.

Runs on the synthetic subspace data (robustcompress.data.synthetic): no data set needed.
"""

from __future__ import annotations

import itertools
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
    ProgressivePruning,
    SettingError,
    Trainer,
    TrainingSettings,
    build_extra,
    list_extras,
    load_model,
    read_checkpoint,
    read_metrics,
    register_extra,
)
from robustcompress.training.checkpoint import (
    list_checkpoints,
    state_from_checkpoint,
    state_to_checkpoint,
)
from robustcompress.training.extras import Snapshots, smallest_magnitude_mask

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


# ------------------------------------------------------ progressive pruning


def test_smallest_magnitude_mask_prunes_only_among_the_kept_entries() -> None:
    w = torch.tensor([[0.5, -0.1, 0.3], [-0.2, 0.05, 0.9]])
    first = smallest_magnitude_mask(w, 2)
    assert first.tolist() == [[1, 0, 1], [1, 0, 1]]  # 0.05 and 0.1 go
    second = smallest_magnitude_mask(w, 2, first)  # 0.2 and 0.3 of the four left
    assert second.tolist() == [[1, 0, 0], [0, 0, 1]]
    tied = smallest_magnitude_mask(torch.ones(5), 2)
    assert tied.tolist() == [0, 0, 1, 1, 1]  # ties by position: reproducible


def test_progressive_pruning_masks_a_fraction_of_the_rest_each_round(tmp_path: Path) -> None:
    pruning = ProgressivePruning(rounds=3, fraction=1 / 3, epochs_per_round=1)
    trainer = _trainer(tmp_path / "run", [pruning], epochs=3, checkpoint_every=1)
    w1, w2 = (wm.parameter for wm in weight_matrices(trainer.model))  # 8×32 and 2×8
    trainer.fit()
    # round by round: round(n/3) of the n entries still unmasked
    alive = {"W1": 256, "W2": 16}
    for name in alive:
        for _ in range(3):
            alive[name] -= round(alive[name] / 3)
    assert {k: int(m.sum()) for k, m in pruning.masks.items()} == alive == {"W1": 76, "W2": 5}
    assert torch.equal(w1 != 0, pruning.masks["W1"] == 1)  # zero exactly where masked
    assert torch.equal(w2 != 0, pruning.masks["W2"] == 1)
    # rounds + 1 models: the dense start, then each round after its retraining
    snapshots = sorted((trainer.run_dir / "rounds").glob("round-*.safetensors"))
    assert [p.name for p in snapshots] == [f"round-{r:02d}.safetensors" for r in range(4)]
    zeros = []
    for r, path in enumerate(snapshots):
        assert read_checkpoint(path).meta["pruning"]["round"] == r
        zeros.append(int((weight_matrices(load_model(path))[0].parameter == 0).sum()))
    assert zeros == [0, 85, 142, 180]  # 256 − 171, 171 − 114, 114 − 76 left
    last = weight_matrices(load_model(snapshots[-1]))
    assert all(
        torch.equal(a.parameter, b.parameter)
        for a, b in zip(last, weight_matrices(trainer.model), strict=True)
    )


def test_pruned_entries_never_come_back_during_retraining(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []

    @dataclass
    class _Watch(Callback):
        def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
            seen.append(weight_matrices(trainer.model)[0].parameter.detach() == 0)

    pruning = ProgressivePruning(rounds=2, fraction=0.5, epochs_per_round=2, weights=["W1"])
    _trainer(tmp_path / "run", [pruning, _Watch()], epochs=4).fit()
    assert len(seen) == 16
    for before, after in itertools.pairwise(seen):
        assert bool((before & ~after).sum() == 0)  # once zero, zero at every later step
    assert int(seen[0].sum()) == 128 and int(seen[-1].sum()) == 192


def test_progressive_pruning_resumes_exactly(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 3}
    reference = _trainer(tmp_path / "reference", [ProgressivePruning(rounds=3)], **kw)
    reference.fit()
    killed = _trainer(tmp_path / "resumed", [ProgressivePruning(rounds=3), StopAt(7)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    resumed_pruning = ProgressivePruning(rounds=3)
    resumed = _trainer(tmp_path / "resumed", [resumed_pruning], **kw)
    assert resumed.fit().resumed_from_step == 6
    assert resumed_pruning.begun == 3
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for r in range(4):
        name = f"rounds/round-{r:02d}.safetensors"
        got, want = (
            read_checkpoint(resumed.run_dir / name),
            read_checkpoint(reference.run_dir / name),
        )
        assert all(torch.equal(got.tensors[k], want.tensors[k]) for k in want.tensors)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rounds": 0}, "rounds: must be ≥ 1"),
        ({"fraction": 1.0}, "fraction: must be in \\(0, 1\\)"),
        ({"epochs_per_round": 0}, "epochs_per_round: must be ≥ 1"),
    ],
)
def test_progressive_pruning_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        build_extra("progressive_pruning", **settings)


def test_progressive_pruning_needs_its_epochs(tmp_path: Path) -> None:
    pruning = ProgressivePruning(rounds=4, epochs_per_round=2)
    with pytest.raises(ConfigError, match=r"need training.epochs = 8 \(got 3\)"):
        _trainer(tmp_path / "run", [pruning], epochs=3).fit()


# ------------------------------------------------------ snapshots


def test_snapshots_keep_the_model_every_k_epochs_and_at_the_end(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", [Snapshots(every_epochs=2)], epochs=5)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    files = sorted((trainer.run_dir / "snapshots").glob("epoch-*.safetensors"))
    assert [p.name for p in files] == [f"epoch-{e:03d}.safetensors" for e in (0, 2, 4, 5)]
    first, last = load_model(files[0]), load_model(files[-1])
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), start, strict=True))
    assert all(
        torch.equal(a, b)
        for a, b in zip(last.parameters(), trainer.model.parameters(), strict=True)
    )
    assert read_checkpoint(files[1]).meta["epoch"] == 2


def test_snapshots_of_a_resumed_run_equal_an_uninterrupted_runs(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"epochs": 3, "checkpoint_every": 3}
    reference = _trainer(tmp_path / "reference", [Snapshots()], **kw)
    reference.fit()
    killed = _trainer(tmp_path / "resumed", [Snapshots(), StopAt(7)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    _trainer(tmp_path / "resumed", [Snapshots()], **kw).fit()
    for e in range(4):
        name = f"snapshots/epoch-{e:03d}.safetensors"
        got = read_checkpoint(tmp_path / "resumed" / name)
        want = read_checkpoint(tmp_path / "reference" / name)
        assert all(torch.equal(got.tensors[k], want.tensors[k]) for k in want.tensors)


def test_snapshots_settings_are_checked() -> None:
    with pytest.raises(SettingError, match="every_epochs: must be ≥ 1"):
        build_extra("snapshots", every_epochs=0)

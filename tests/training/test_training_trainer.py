"""The training loop (robustcompress.training.trainer) on small generated data sets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from training_helpers import Stop, StopAt

from robustcompress import attacks
from robustcompress.attacks import FixedEpsilonAttack
from robustcompress.errors import ConfigError, TrainingError
from robustcompress.models import weight_matrices
from robustcompress.regularizers import L1, Joint, Nuclear
from robustcompress.training import (
    AdversarialTraining,
    Trainer,
    derive_seed,
    learning_rate,
    read_checkpoint,
    read_metrics,
)
from robustcompress.training.checkpoint import list_checkpoints

MakeTrainer = Callable[..., Trainer]


def test_learning_rate_schedules_closed_form() -> None:
    assert learning_rate(0.1, 37) == 0.1
    # step: ×γ every `step_size` epochs of 10 steps
    kw = {"schedule": "step", "steps_per_epoch": 10, "step_size": 2, "gamma": 0.5}
    assert [learning_rate(0.1, t, **kw) for t in (0, 19, 20, 39, 40)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025]
    )
    cos = {"schedule": "cosine", "total_steps": 100}
    assert learning_rate(0.1, 0, **cos) == pytest.approx(0.1)
    assert learning_rate(0.1, 50, **cos) == pytest.approx(0.05)
    assert learning_rate(0.1, 100, **cos) == pytest.approx(0.0, abs=1e-12)
    # inv (Caffe): 0.01·(1 + 1e-4·t)^-0.75; after 50,000 steps 0.01·6^-0.75
    inv = {"schedule": "inv", "gamma": 1e-4, "power": 0.75}
    assert learning_rate(0.01, 0, **inv) == pytest.approx(0.01)
    assert learning_rate(0.01, 10_000, **inv) == pytest.approx(0.01 * 2**-0.75)
    assert learning_rate(0.01, 50_000, **inv) == pytest.approx(0.0026085, rel=1e-4)
    # multistep: ×γ after each milestone epoch (epochs of 10 steps; 50 % and 75 % of 8)
    multi = {"schedule": "multistep", "steps_per_epoch": 10, "milestones": (4, 6)}
    assert [learning_rate(0.05, t, **multi) for t in (0, 39, 40, 59, 60, 79)] == pytest.approx(
        [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]
    )
    with pytest.raises(ConfigError, match="schedule"):
        learning_rate(0.1, 0, schedule="linear")


def test_natural_training_tracks_checkpoints_and_learns(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer()
    result = trainer.fit()
    rows = read_metrics(trainer.metrics_path)
    assert sorted({r["step"] for r in rows}) == [0, 4, 8]  # start and both epoch ends
    assert {r["epoch"] for r in rows} == {0, 1, 2}
    first_ce = next(r["value"] for r in rows if r["step"] == 0 and r["metric"] == "loss/ce")
    assert result.final["loss/ce"] < first_ce  # it learned something
    assert math.isclose(first_ce, math.log(10), rel_tol=0.1)
    names = [p.name for p in list_checkpoints(trainer.checkpoint_dir)]
    assert names == ["ckpt-00000004-e001.safetensors", "ckpt-00000008-e002.safetensors"]
    assert result.steps == 8 and result.timing["tracking_events"] == 3
    assert 0 < result.timing["tracking_fraction"] < 1


def test_tracking_every_k_th_epoch_end_and_the_last(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(epochs=5, track_every_epochs=2)
    result = trainer.fit()
    steps = sorted({r["step"] for r in read_metrics(trainer.metrics_path)})
    assert steps == [0, 8, 16, 20]  # the start, epochs 2 and 4, and the last (5)
    assert result.timing["tracking_events"] == 4
    names = [p.name for p in list_checkpoints(trainer.checkpoint_dir)]
    assert len(names) == 5  # checkpoints stay at every epoch end
    with pytest.raises(ConfigError, match="track_every_epochs must be ≥ 1"):
        make_trainer(track_every_epochs=0)


def test_interrupted_run_resumes_to_identical_metrics(
    make_trainer: MakeTrainer, tmp_path: Path
) -> None:
    """Killed mid-epoch after rows were written past the checkpoint; resumed → identical."""
    adv = AdversarialTraining(attacks.get("pgd", eps=0.1, steps=1, alpha=0.1, random_start=True))
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 5, "adversarial": adv}
    reference = make_trainer(run_dir=tmp_path / "reference", **kw)
    reference.fit()

    interrupted = make_trainer(run_dir=tmp_path / "resumed", callbacks=[StopAt(7)], **kw)
    with pytest.raises(Stop):
        interrupted.fit()
    assert list_checkpoints(interrupted.checkpoint_dir)[-1].name == "ckpt-00000005.safetensors"
    assert max(r["step"] for r in read_metrics(interrupted.metrics_path)) == 6

    resumed = make_trainer(run_dir=tmp_path / "resumed", **kw)
    result = resumed.fit()
    assert result.resumed_from_step == 5
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)


@dataclass(kw_only=True)
class _Spy(FixedEpsilonAttack):
    """Shifts inputs by +eps and records the seed of every call."""

    name: ClassVar[str] = "spy"
    calls: list[tuple[int | None, int]] = field(default_factory=list)

    def run(self, model: Any, x: torch.Tensor, y: torch.Tensor, generator: Any) -> torch.Tensor:
        assert not model.training  # attacks see the model in eval mode
        self.calls.append((self.seed, x.shape[0]))
        return (x + self.eps).clamp(0, 1)


def test_adversarial_examples_come_from_the_attack_with_step_seeds(
    make_trainer: MakeTrainer,
) -> None:
    spy = _Spy(eps=0.1)
    trainer = make_trainer(adversarial=AdversarialTraining(spy), epochs=1, seed=7)
    trainer.fit()
    assert spy.calls == [(derive_seed(7, "adversarial", t), 32) for t in range(1, 5)]


def test_mixed_loss_weights_clean_and_adversarial_cross_entropy(
    make_trainer: MakeTrainer, train_small: Any
) -> None:
    trainer = make_trainer(
        adversarial=AdversarialTraining(_Spy(eps=0.2), mix=0.25), regularizers=[L1(0.001)]
    )
    x, y = train_small.images[:16], train_small.labels[:16]
    x_adv = (x + 0.2).clamp(0, 1)
    loss, terms = trainer._loss(x, y, x_adv)
    model = trainer.model
    penalty = 0.001 * sum(wm.matrix.abs().sum() for wm in weight_matrices(model))
    expected = 0.75 * F.cross_entropy(model(x_adv), y) + 0.25 * F.cross_entropy(model(x), y)
    assert loss.item() == pytest.approx((expected + penalty).item(), rel=1e-5)
    assert terms["ce"] == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="mix"):
        AdversarialTraining(_Spy(), mix=1.0)


def test_proximal_l1_gives_exact_zeros_gradient_l1_does_not(
    make_trainer: MakeTrainer, tmp_path: Path
) -> None:
    def zeros_in_w1(proximal: bool) -> int:
        reg = L1({"W1": 0.05})
        trainer = make_trainer(
            run_dir=tmp_path / f"proximal-{proximal}",
            regularizers=[reg],
            proximal=proximal,
            trackers=[],
        )
        assert (reg in trainer.prox_regularizers) is proximal
        assert (reg in trainer.loss_regularizers) is not proximal
        trainer.fit()
        return int((weight_matrices(trainer.model)[0].matrix == 0).sum())

    assert zeros_in_w1(True) > 1000
    assert zeros_in_w1(False) == 0


def test_joint_stays_in_the_loss_with_proximal(make_trainer: MakeTrainer) -> None:
    joint, nuclear = Joint(0.01), Nuclear({"W2": 0.01})
    trainer = make_trainer(regularizers=[joint, nuclear], proximal=True)
    assert trainer.loss_regularizers == [joint] and trainer.prox_regularizers == [nuclear]


def test_masks_keep_pruned_weights_at_zero(make_trainer: MakeTrainer) -> None:
    torch.manual_seed(1)
    mask = (torch.rand(16, 784) > 0.5).float()
    trainer = make_trainer(masks={"W1": mask}, weight_decay=0.01, epochs=1, trackers=[])
    trainer.fit()
    w1 = weight_matrices(trainer.model)[0].parameter
    assert torch.all(w1[mask == 0] == 0) and torch.all(w1[mask == 1] != 0)
    with pytest.raises(ConfigError, match="mask for W2"):
        make_trainer(masks={"W2": mask})


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(make_trainer: MakeTrainer) -> None:
    trainer = make_trainer(
        model_kwargs={"activation_name": "relu"}, lr=1e20, epochs=3, checkpoint_every=1, trackers=[]
    )
    with pytest.raises(TrainingError, match=r"non-finite (loss|weights) .*step \d+") as info:
        trainer.fit()
    assert "last good checkpoint is" in str(info.value)
    assert "\n" not in str(info.value)
    files = list_checkpoints(trainer.checkpoint_dir)
    assert files, "a checkpoint from before the blow-up must remain"
    state = read_checkpoint(files[-1]).model_state()
    assert all(torch.isfinite(v).all() for v in state.values())

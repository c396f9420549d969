"""Extras and the optimizer section in run configs: schema, checks and runner wiring.

The runs train on the synthetic subspace data, so no data set is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.experiments import check_against_model, parse_config, resume, run
from robustcompress.experiments.config import HASH_ADDED, RunConfig
from robustcompress.models import weight_matrices
from robustcompress.training import Callback, Trainer, read_checkpoint, read_metrics, register_extra

SYNTHETIC = {
    "data": {"dataset": "synthetic-subspace", "limit": 128},
    "optimizer": {"epochs": 2, "batch_size": 32},
    "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
}
"""FCNN 784→16→16→10 on 128 synthetic examples: 4 steps per epoch."""


def _parse(**overrides: Any) -> RunConfig:
    data: dict[str, Any] = {
        "name": "x",
        "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
        **SYNTHETIC,
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    return parse_config(data, "config.yaml")


def _check(**overrides: Any) -> None:
    check_against_model(_parse(**overrides))


def test_extras_is_an_added_field_empty_by_default() -> None:
    """It must not change stored runs' hashes while it holds its default."""
    extra = RunConfig.model_fields["extras"].json_schema_extra
    assert isinstance(extra, dict) and extra.get(HASH_ADDED) is True
    assert _parse().extras == []


def test_extras_parse_with_their_settings_and_pass_the_model_check() -> None:
    extras = [{"name": "magnitude_pruning", "sparsity": 0.5, "weights": ["W1", 2]}]
    config = _parse(extras=extras)
    assert config.extras[0].name == "magnitude_pruning"
    assert config.extras[0].settings() == {"sparsity": 0.5, "weights": ["W1", 2]}
    assert config.to_dict()["extras"] == extras
    assert parse_config(config.to_dict()).extras == config.extras  # round trip
    check_against_model(config)


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        (
            [{"name": "magnitude-pruning"}],
            "config.yaml: extras.0.name: unknown extra 'magnitude-pruning' "
            "(did you mean 'magnitude_pruning'? allowed: ",
        ),
        (
            [{"name": "magnitude_pruning", "sparsty": 0.5}],
            "config.yaml: extras.0.sparsty: unknown setting of extra 'magnitude_pruning' "
            "(did you mean 'sparsity'? allowed: sparsity, start_epoch, end_epoch, weights)",
        ),
        (
            [{"name": "magnitude_pruning", "sparsity": 0.5}, {"name": "magnitude_pruning"}],
            "config.yaml: extras.1.sparsity: required setting of extra 'magnitude_pruning' "
            "is missing",
        ),
        (
            [{"name": "magnitude_pruning", "sparsity": 1.5}],
            "config.yaml: extras.0.sparsity: must be in [0, 1) (got 1.5)",
        ),
        (
            [{"name": "magnitude_pruning", "sparsity": 0.5, "start_epoch": "soon"}],
            "config.yaml: extras.0.start_epoch: input should be a valid integer",
        ),
        (
            [{"name": "magnitude_pruning", "sparsity": 0.5, "weights": ["W9"]}],
            "config.yaml: extras.0: unknown pruned weight 'W9': the model has W1 (2), ",
        ),
    ],
)
def test_bad_extras_are_one_line_errors_with_the_key_path(
    extras: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _check(extras=extras)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text


def test_extra_without_a_name_is_a_schema_error() -> None:
    with pytest.raises(ConfigError, match=r"^config\.yaml: extras\.0\.name: required key"):
        _parse(extras=[{"sparsity": 0.5}])


def _write(directory: Path, name: str, **overrides: Any) -> Path:
    import yaml

    config = _parse(**overrides).to_dict() | {"name": name}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_runner_builds_the_extras_and_checkpoints_their_state(tmp_path: Path) -> None:
    extras = [{"name": "magnitude_pruning", "sparsity": 0.5, "start_epoch": 1, "end_epoch": 2}]
    record = run(_write(tmp_path, "pruned", extras=extras), runs_dir=tmp_path / "runs", echo=False)
    checkpoint = read_checkpoint(record.run_dir)
    mask = checkpoint.tensors["callback.magnitude_pruning.0"]
    w1 = checkpoint.model_state()["2.weight"]  # W1 of the FCNN (Flatten is module 1)
    assert torch.equal(w1 == 0, mask == 0)
    assert int((w1 == 0).sum()) == w1.numel() // 2  # 0.5 reached at end_epoch
    assert set(checkpoint.meta["callbacks"]["magnitude_pruning"]["masks"]) == {"W1", "W2", "W3"}


# ------------------------------------------------ kill and resume via the runner

CRASH: dict[str, int | None] = {"at": None}


class _Crash(Exception):
    pass


@register_extra("test-walk")
@dataclass
class _Walk(Callback):
    """Counter + own RNG stream; its random walk nudges W1 after every step."""

    seed: int = 0

    def setup(self, model: nn.Module) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        self.count = 0
        self.walk = torch.zeros(3)
        self.weight = weight_matrices(model)[0].parameter

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        self.count += 1
        self.walk += torch.randn(3, generator=self.generator)
        self.weight.add_(1e-3 * self.walk.mean())

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
        if CRASH["at"] == step:
            raise _Crash

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "walk": self.walk, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        self.walk = state["walk"].clone()
        self.generator.set_state(state["rng"])


def test_runner_resumes_an_interrupted_run_with_its_extras_state(tmp_path: Path) -> None:
    overrides: dict[str, Any] = {
        "extras": [{"name": "test-walk", "seed": 3}],
        "tracking": {"every": 1},
        "checkpoint": {"every": 3},
    }
    config = _write(tmp_path, "walk", **overrides)
    reference = run(config, runs_dir=tmp_path / "reference", echo=False)

    CRASH["at"] = 5
    try:
        with pytest.raises(_Crash):
            run(config, runs_dir=tmp_path / "killed", echo=False)
    finally:
        CRASH["at"] = None
    (run_dir,) = (tmp_path / "killed").iterdir()
    assert read_checkpoint(run_dir).step == 4  # epoch end; the walk went on to step 5
    resumed = resume(run_dir, echo=False)
    assert resumed.status == "finished" and resumed.summary["resumed_from_step"] == 4
    assert read_metrics(run_dir / "metrics.jsonl") == read_metrics(
        reference.run_dir / "metrics.jsonl"
    )
    final, want = read_checkpoint(run_dir), read_checkpoint(reference.run_dir)
    assert final.meta["callbacks"]["test-walk"]["count"] == 8
    for key, tensor in want.tensors.items():
        if key.startswith(("model.", "callback.")):
            assert torch.equal(final.tensors[key], tensor), key

"""The optimizer section: SGD or Adam, checked in the schema, built once for the runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments import parse_config, run
from robustcompress.experiments.config import HASH_ADDED, OptimizerConfig, RunConfig
from robustcompress.training import read_checkpoint


def _parse(optimizer: dict[str, Any]) -> RunConfig:
    return parse_config({"name": "x", "optimizer": optimizer}, "config.yaml")


def test_adam_only_fields_are_added_fields_and_sgd_stays_the_default() -> None:
    """``betas``/``eps`` must not change stored runs' hashes while at their defaults."""
    for key in ("betas", "eps"):
        extra = OptimizerConfig.model_fields[key].json_schema_extra
        assert isinstance(extra, dict) and extra.get(HASH_ADDED) is True
    config = parse_config({"name": "x"})
    assert config.optimizer.name == "sgd"
    assert (config.optimizer.betas, config.optimizer.eps) == ((0.9, 0.999), 1e-8)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        ({"name": "rmsprop"}, "optimizer.name: must be one of 'sgd' or 'adam' (got 'rmsprop')"),
        ({"betas": [0.8, 0.99]}, "optimizer: betas and eps are Adam settings: set name: adam"),
        ({"name": "adam", "momentum": 0.9}, "optimizer: momentum and nesterov are SGD settings"),
        ({"name": "adam", "betas": [0.9, 1.0]}, "optimizer.betas: both betas must be in [0, 1)"),
        ({"name": "adam", "eps": 0}, "optimizer.eps: must be > 0 (got 0)"),
        ({"nesterov": True}, "optimizer: nesterov needs momentum > 0"),
    ],
)
def test_bad_optimizer_settings_are_one_line_errors(
    optimizer: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(optimizer)
    assert str(info.value).startswith(f"config.yaml: {message}")


def test_adam_section_parses_and_round_trips() -> None:
    config = _parse({"name": "adam", "lr": 0.002, "betas": [0.8, 0.99], "eps": 1e-6})
    assert config.optimizer.betas == (0.8, 0.99)
    assert parse_config(config.to_dict()).optimizer == config.optimizer


def test_runner_trains_with_the_configured_adam(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """The tiny MNIST config of conftest.py with Adam: its checkpoints hold Adam's state."""
    adam = {"name": "adam", "lr": 0.003, "momentum": 0.0, "betas": [0.8, 0.95], "eps": 1e-7}
    record = run(write_config("adam", optimizer=adam), runs_dir=tmp_path / "runs", echo=False)
    checkpoint = read_checkpoint(record.run_dir)
    (group,) = checkpoint.meta["optimizer"]["param_groups"]
    assert (group["betas"], group["eps"], group["lr"]) == ([0.8, 0.95], 1e-7, 0.003)
    assert any(k.endswith(".exp_avg_sq") for k in checkpoint.group("optim"))

    sgd = run(write_config("sgd"), runs_dir=tmp_path / "runs", echo=False)
    assert not any(k.endswith(".exp_avg_sq") for k in read_checkpoint(sgd.run_dir).group("optim"))
    assert record.final != sgd.final

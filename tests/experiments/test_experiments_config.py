"""The run config schema (robustcompress.experiments.config)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments.config import (
    DEFAULT_TRACKED_ATTACKS,
    check_against_model,
    config_hash,
    load_config,
    parse_config,
)


def _parse(**data: Any) -> Any:
    return parse_config({"name": "t", **data}, "config.yaml")


@pytest.mark.parametrize(
    ("model", "init_from", "lr", "batch", "dataset"),
    [
        ("fcnn", None, 0.001, 128, "mnist"),  # Langenberg §5: FCNN, from scratch and tuning
        ("fcnn", "natural.yaml", 0.001, 128, "mnist"),
        ("cnn", None, 0.01, 64, "fashion-mnist"),  # CNN from scratch
        ("cnn", "natural.yaml", 0.001, 64, "fashion-mnist"),  # CNN fine-tuning
    ],
)
def test_paper_defaults(
    model: str, init_from: str | None, lr: float, batch: int, dataset: str
) -> None:
    config = _parse(model={"name": model}, training={"init_from": init_from})
    assert (config.optimizer.lr, config.optimizer.batch_size) == (lr, batch)
    assert config.data.dataset == dataset
    assert config.tracking.attacks == DEFAULT_TRACKED_ATTACKS
    assert config.tracking.attacks["pgd"] == {"eps": 0.05, "steps": 20, "alpha": 0.005}


def test_explicit_values_win_and_adversarial_defaults() -> None:
    config = _parse(
        optimizer={"lr": 0.5, "batch_size": 7, "schedule": "cosine"},
        training={"mode": "adversarial"},
    )
    assert (config.optimizer.lr, config.optimizer.batch_size) == (0.5, 7)
    assert config.optimizer.schedule.name == "cosine"
    assert config.training.adversarial is not None
    assert config.training.adversarial.attack_params() == {"eps": 0.05}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"optimizer": {"lr": -1}}, "config.yaml: optimizer.lr: must be > 0 (got -1)"),
        (
            {"regularisers": {}},
            "config.yaml: unknown key 'regularisers' (did you mean 'regularizers'? allowed: "
            "checkpoint, data, device, extras, model, name, optimizer, proximal, regularizers, "
            "seed, tracking, training)",
        ),
        (
            {"regularizers": {"nuclear": {"lam": {"W1": -0.1}}}},
            "config.yaml: regularizers.nuclear.lam: λ for W1 must be ≥ 0 (got -0.1)",
        ),
        (
            {"regularizers": {"l1": {"lam": -2}}},
            "config.yaml: regularizers.l1.lam: λ must be ≥ 0 (got -2)",
        ),
        (
            {"optimizer": {"schedule": {"name": "linear"}}},
            "config.yaml: optimizer.schedule.name: must be one of 'none', 'step', 'cosine', "
            "'inv' or 'multistep' (got 'linear')",
        ),
        (
            {"training": {"adversarial": {"epsilon": 0.1}, "mode": "adversarial"}},
            "config.yaml: training.adversarial: unknown key 'epsilon' (did you mean 'eps'? "
            "allowed: alpha, attack, eps, mix, random_start, steps)",
        ),
        (
            {"training": {"adversarial": {"eps": 0.1}}},
            "config.yaml: training: 'adversarial' settings are given but mode is 'natural': "
            "set mode: adversarial or remove them",
        ),
        ({"data": {"limit": 0}}, "config.yaml: data.limit: must be > 0 (got 0)"),
    ],
)
def test_invalid_configs_give_one_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(**data)
    assert str(info.value) == message


def test_lambda_index_keys_are_canonical() -> None:
    a = _parse(regularizers={"l1": {"lam": {1: 0.1}}})
    b = _parse(regularizers={"l1": {"lam": {"W1": 0.1}}})
    assert a.regularizers["l1"].lam == {"W1": 0.1}
    assert config_hash(a) == config_hash(b)


def test_hash_ignores_cosmetics_and_covers_results() -> None:
    base = _parse()
    same = [
        parse_config({"name": "other"}),
        _parse(device="cpu"),
        _parse(checkpoint={"every": 3}),
        _parse(optimizer={"lr": 0.001}),  # equal to the paper default it resolves to
    ]
    assert {config_hash(c) for c in same} == {config_hash(base)}
    different = [
        _parse(seed=1),
        _parse(optimizer={"lr": 0.002}),
        _parse(tracking={"eval_size": 10}),
        _parse(regularizers={"l1": {"lam": 0.0}}),
        _parse(data={"limit": 100}),
    ]
    hashes = {config_hash(c) for c in different}
    assert len(hashes) == len(different) and config_hash(base) not in hashes


def test_init_from_enters_hash_through_starting_run_hash() -> None:
    a = _parse(training={"init_from": "natural.yaml"})
    b = _parse(training={"init_from": "runs/natural-0123456789"})
    assert config_hash(a, "aaaa") == config_hash(b, "aaaa") != config_hash(a, "bbbb")
    with pytest.raises(ConfigError, match="resolved"):
        config_hash(a)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"regularizers": {"nuclear": {"lam": {"W9": 0.1}}}},
            "config.yaml: regularizers.nuclear: unknown weight matrix in nuclear λ 'W9'",
        ),
        (
            {"model": {"name": "cnn"}, "regularizers": {"joint": {"lam": 0.1}}},
            "config.yaml: regularizers.joint: ",
        ),
        (
            {"regularizers": {"l2": {"lam": 0.1}}},
            "config.yaml: regularizers.l2: unknown regularizer",
        ),
        ({"model": {"kwargs": {"depth": 3}}}, "config.yaml: model: model 'fcnn' has no option"),
        ({"data": {"dataset": "imagenet"}}, "config.yaml: data.dataset: unknown data set"),
        (
            {"tracking": {"attacks": {"pgd": {"stepz": 3}}}},
            "config.yaml: tracking.attacks.pgd: attack 'pgd' has no setting",
        ),
        (
            {"training": {"mode": "adversarial", "adversarial": {"attack": "deepfool"}}},
            "config.yaml: training.adversarial",
        ),
        ({"tracking": {"structure": ["rank"]}}, "config.yaml: tracking.structure: unknown"),
    ],
)
def test_model_level_checks(data: dict[str, Any], message: str) -> None:
    config = _parse(**data)
    with pytest.raises(ConfigError) as info:
        check_against_model(config)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_load_config_names_file_and_defaults_name(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config("natural")
    text = path.read_text().replace("name: natural\n", "")
    path.write_text(text)
    assert load_config(path).name == "natural"
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: {lr: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    from robustcompress.experiments import load_sweep

    if path.name.startswith("sweep"):
        sweep = load_sweep(path)
        assert sweep.points
        for point in sweep.points:
            check_against_model(point.config)
    elif path.name.startswith("search"):  # a search space (robustcompress search)
        from robustcompress.experiments.search import load_space

        space = load_space(path)
        assert space.config.parameters and space.config.objectives
    else:
        check_against_model(load_config(path))

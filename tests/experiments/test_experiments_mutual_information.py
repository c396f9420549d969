"""The ``tracking.mutual_information`` switch: schema, hash and runner wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments import config_hash, parse_config, run


def _config(**tracking: object):
    """256 MNIST images, FCNN 784→16→16→10, 4 steps; ``tracking`` as given."""
    return parse_config(
        {
            "name": "mi",
            "data": {"dataset": "mnist", "limit": 256},
            "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
            "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.05, "momentum": 0.9},
            "tracking": {"eval_size": 64, "attacks": {"fgsm": {"eps": 0.05}}, **tracking},
        }
    )


def test_default_is_off_and_leaves_the_hash_as_before() -> None:
    config = _config()
    assert config.tracking.mutual_information.enabled is False
    # the hash of a config without MI is what runs stored before the switch existed
    # were named by (computed by the code of commit 61b22bc; the dump without the key)
    assert config_hash(config) == "95966d0ded"
    off = _config(mutual_information={"enabled": False, "eval_size": 7})
    assert config_hash(off) == config_hash(config)


def test_enabled_settings_enter_the_hash() -> None:
    on = _config(mutual_information={"enabled": True})
    assert on.tracking.mutual_information.eval_size == 1000
    assert on.tracking.mutual_information.noise_variance == 0.1
    hashes = {
        config_hash(c)
        for c in (
            _config(),
            on,
            _config(mutual_information={"enabled": True, "eval_size": 50}),
            _config(mutual_information={"enabled": True, "noise_variance": 0.5}),
        )
    }
    assert len(hashes) == 4


def test_invalid_settings_are_one_line_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"tracking\.mutual_information\.noise_variance: must be > 0"
    ):
        _config(mutual_information={"enabled": True, "noise_variance": 0})
    with pytest.raises(ConfigError, match=r"unknown key 'sigma'"):
        _config(mutual_information={"sigma": 0.1})


def test_runner_tracks_mi_on_its_own_fixed_sample(runs_dir: Path) -> None:
    config = _config(mutual_information={"enabled": True, "eval_size": 20})
    record = run(config, runs_dir=runs_dir, echo=False)
    rows = [json.loads(line) for line in (record.run_dir / "metrics.jsonl").open()]
    mi = [r for r in rows if r["metric"].startswith("mi_")]
    assert {r["layer"] for r in mi} == {"t1", "t2"}
    assert {r["step"] for r in mi} == {0, 4}
    upper = [r["value"] for r in mi if r["metric"] == "mi_input_upper"]
    assert max(upper) <= 4.33  # log2(20) = 4.32: N is the MI sample, not eval_size 64
    assert "mi_input_upper/t1" in record.final

"""``robustcompress attack``: JSON output, curves, settings, checkpoints and errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from robustcompress.cli import attack as attack_command
from robustcompress.errors import AttackError, ConfigError, ModelError
from robustcompress.models import create_model
from robustcompress.training.checkpoint import checkpoint_name, write_checkpoint

FAST = ["--limit", "40", "--batch-size", "16", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    attack_command.register(parser.add_subparsers())
    args = parser.parse_args(["attack", *argv])
    return args.func(args)


def test_json_curve_for_an_untrained_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fcnn", "--attack", "fgsm,pgd", "--eps", "0,0.05", "--steps", "3", "--json", *FAST]
    assert _run(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert "UNTRAINED" in out["model"] and "seed 0" in out["model"]
    assert out["data"] == {"dataset": "mnist", "split": "test", "limit": 40, "seed": 0}
    assert out["n"] == 40
    pgd = out["attacks"]["pgd"]
    assert pgd["settings"]["steps"] == 3 and pgd["settings"]["seed"] == 0
    assert [row["eps"] for row in pgd["summary"]] == [0.0, 0.05]
    assert pgd["summary"][0]["fooling_ratio"] == 0.0
    # --steps only where it applies
    assert out["attacks"]["fgsm"]["settings"] == {"seed": 0, "clip": True}
    assert len(out["masking"]) == 6  # five masking checks and the near-chance guard
    # an untrained model is at chance: its fooling ratios are flagged, not reported as robust
    near_chance = next(f for f in out["masking"] if f["name"] == "near_chance_accuracy")
    assert near_chance["triggered"] and near_chance["value"] <= 0.2
    assert "per_sample" not in out


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["cnn", "--attack", "fgsm", "--eps", "0.1", *FAST]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "fashion-mnist test, 40 images" in out
    assert "fooling ratio" in out and "degenerate_gradients" in out


def test_checkpoint_uses_its_weights_and_data_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(5)
    model = create_model("fcnn", hidden=(8, 8))
    with torch.no_grad():
        model[-1].bias.copy_(torch.arange(10.0) * 100)  # always predicts class 9
    meta = {
        "model": {"name": "fcnn", "kwargs": {"hidden": [8, 8]}},
        "step": 1,
        "epoch": 1,
        "config": {"config": {"data": {"dataset": "fashion-mnist"}}},
    }
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = write_checkpoint(tmp_path / checkpoint_name(1, 1), tensors, meta)
    assert _run([str(path), "--attack", "fgsm", "--no-masking", "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"]["dataset"] == "fashion-mnist"
    assert out["clean_accuracy"] == pytest.approx(0.1)  # class 9 is 4 of the 40 images
    assert out["masking"] == []
    assert "checkpoint" in out["model"] and "UNTRAINED" not in out["model"]


@pytest.mark.parametrize(
    ("argv", "error", "match"),
    [
        (["fcnn", "--attack", "fgsm", "--steps", "3"], ConfigError, "has setting"),
        (["fcnn", "--eps", "0.1,x"], ConfigError, "--eps"),
        (["fcnn", "--set", "steps"], ConfigError, "KEY=VALUE"),
        (["fcnn", "--attack", "nope"], AttackError, "unknown attack"),
        (["not-a-model-or-file"], ModelError, "neither a registered model"),
    ],
)
def test_errors(argv: list[str], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _run([*argv, *FAST])


def test_set_passes_typed_values(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fcnn", "--set", "random_start=true", "--set", "steps=2", "--json", "--no-masking"]
    assert _run([*argv, *FAST]) == 0
    settings = json.loads(capsys.readouterr().out)["attacks"]["pgd"]["settings"]
    assert settings["random_start"] is True and settings["steps"] == 2


def test_an_ensemble_reports_which_stage_broke_each_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ensemble = ["--attack", "autoattack", "--set", "version=custom", "--set", "attacks=fgsm,pgd"]
    argv = [*ensemble, "--steps", "3", "--eps", "0,0.3", "--no-masking", *FAST]
    assert _run(["fcnn", *argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["attacks"]["autoattack"]["summary"]
    for row in rows:
        counts = row["broken_by"]
        assert list(counts) == ["clean", "fgsm", "pgd", "robust"] and sum(counts.values()) == 40
        assert counts["fgsm"] + counts["pgd"] == row["n_fooled"]
    assert rows[0]["broken_by"]["robust"] == rows[0]["n_correct"]  # ε = 0 breaks nothing
    assert _run(["fcnn", *argv]) == 0
    out = capsys.readouterr().out
    words = out.split()  # the table's title wraps with the terminal's width
    assert "autoattack:" in words and "stage," in words
    assert all(column in words for column in ("clean", "fgsm", "pgd", "robust"))

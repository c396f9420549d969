"""``--threads N`` on ``sweep``, ``search``, ``reproduce``, ``attack`` and ``run``: validated,
applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from robustcompress import cli
from robustcompress.training import Trainer

COMMANDS = {
    "sweep": ["sweep", "missing.yaml"],
    "search": ["search", "missing.yaml"],
    "reproduce": ["reproduce", "langenberg2019"],
    "attack": ["attack", "fcnn"],
    "run": ["run", "missing.yaml"],
}


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("bad", ["0", "-3"])
def test_threads_below_one_is_a_one_line_error(
    command: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*COMMANDS[command], "--threads", bad]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --threads must be ≥ 1 (torch threads per process), got {bad}\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_threads_is_documented(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "--threads N" in capsys.readouterr().out


def test_serial_sweep_runs_with_the_given_threads_and_restores_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {
        "data": {"dataset": "synthetic-subspace", "limit": 32},
        "model": {"name": "fcnn", "kwargs": {"hidden": [4]}},
        "optimizer": {"epochs": 1, "batch_size": 32, "lr": 0.05},
        "tracking": {"eval_size": 16, "attacks": {}},
        "device": "cpu",
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "base": base, "grid": {"seed": [0]}}))
    torch.set_num_threads(2)  # not 1, so running with 1 is observable
    before = torch.get_num_threads()
    during: list[int] = []
    fit = Trainer.fit

    def recording_fit(self: Trainer) -> Any:
        during.append(torch.get_num_threads())
        return fit(self)

    argv = ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--threads", "1", "--json"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "fit", recording_fit)
        assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["summary"][0]["runs"] == 1
    assert during == [1]  # the run trained with the given threads
    assert torch.get_num_threads() == before


def test_attack_uses_the_given_threads(capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(2)  # not 1, so the flag's effect is observable
    argv = ["attack", "fcnn", "--attack", "fgsm", "--eps", "0.05", "--no-masking", "--json"]
    argv += ["--data", "mnist", "--limit", "8", "--device", "cpu", "--threads", "1"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8
    assert torch.get_num_threads() == 1

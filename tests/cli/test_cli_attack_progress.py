"""``robustcompress attack`` progress: on stderr only, ``--json`` stdout stays parseable."""

from __future__ import annotations

import argparse
import json

import pytest

from robustcompress.cli import attack as attack_command
from robustcompress.training.progress import PROGRESS_ENV

FAST = ["--limit", "40", "--batch-size", "16", "--device", "cpu"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    attack_command.register(parser.add_subparsers())
    args = parser.parse_args(["attack", *argv])
    return args.func(args)


def test_json_stdout_is_valid_while_progress_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "plain")
    assert (
        _run(
            ["fcnn", "--attack", "fgsm,pgd", "--eps", "0.02,0.05", "--steps", "2", "--json", *FAST]
        )
        == 0
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # nothing but the JSON document on stdout
    assert out["n"] == 40
    lines = captured.err.splitlines()
    assert lines[0].startswith("attack: fgsm ε=0.02; 0/40 inputs done (0%)")
    assert lines[-1].startswith("attack: finished; 40/40 inputs done (100%)")
    assert all("inputs done" in line for line in lines)


def test_table_output_stays_on_stdout_with_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "plain")
    assert _run(["fcnn", "--attack", "fgsm", "--no-masking", *FAST]) == 0
    captured = capsys.readouterr()
    assert "inputs done" not in captured.out and "fooling ratio" in captured.out
    assert "attack: finished; 40/40" in captured.err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_progress_can_be_turned_off(
    how: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "off" if how == "env" else "plain")
    extra = ["--no-progress"] if how == "flag" else []
    assert _run(["fcnn", "--attack", "fgsm", "--no-masking", "--json", *FAST, *extra]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "inputs done" not in captured.err

"""``robustcompress reproduce``: a tiny profile end to end, errors and the report hook."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

from robustcompress.cli import reproduce
from robustcompress.errors import ConfigError
from robustcompress.experiments.recipes import RECIPES, MaskingCheck, Profile
from robustcompress.papers.langenberg2019 import RECIPE
from robustcompress.papers.langenberg2019.recipe import plan, schedule

TINY = Profile(
    name="test",
    description="tiny: FCNN only, 64 images, one epoch, FGSM tracking",
    seeds=1,
    settings={"fcnn": schedule(64, 1, 1, 16, 1, 1, tracked_attacks={"fgsm": {"eps": 0.05}})},
    masking=MaskingCheck(size=16),
)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    reproduce.register(parser.add_subparsers())
    args = parser.parse_args(["reproduce", *argv])
    return args.func(args)


@pytest.fixture
def tiny_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe with a ``test`` profile planning two FCNN runs: natural and ℓ1."""

    def two_runs(profile: Profile, seeds: list[int]) -> list:
        return [r for r in plan(profile, seeds) if r.method in ("natural", "l1")]

    recipe = dataclasses.replace(RECIPE, profiles={**RECIPE.profiles, "test": TINY}, plan=two_runs)
    monkeypatch.setitem(RECIPES, "langenberg2019", recipe)


def test_unknown_recipe_or_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'paper' "):
        _main(["paper", "--runs-dir", str(tmp_path)])
    with pytest.raises(ConfigError, match=r"unknown profile 'medium' \(choose from quick, full"):
        _main(["langenberg2019", "--profile", "medium", "--runs-dir", str(tmp_path)])
    assert not (tmp_path / "reproductions").exists()


def test_reproduce_json_then_reuse_and_report_note(
    tiny_profile: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"
    argv = ["langenberg2019", "--profile", "test", "--workers", "1", "--runs-dir", str(runs)]
    assert _main([*argv, "--no-report", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    manifest = Path(out["manifest"])
    assert manifest == runs / "reproductions" / "langenberg2019-test" / "manifest.json"
    assert out["report"] is None and out["errors"] == {}
    assert [(r["method"], r["status"]) for r in out["runs"]] == [
        ("natural", "finished"),
        ("l1", "finished"),
    ]

    # no reporting module: a note, not a failure; the runs are reused
    monkeypatch.setitem(sys.modules, "robustcompress.reporting", None)
    assert _main(argv) == 0
    captured = capsys.readouterr()
    assert "no HTML report built" in captured.err
    assert "2 of 2 runs finished" in captured.out and "manifest:" in captured.out
    rows = json.loads(manifest.read_text())["runs"]
    assert [r["run_dir"] for r in rows] == [r["run_dir"] for r in out["runs"]]
    assert all(r["reused"] for r in rows)

    # with a reporting module, its make_report gets the reproduction directory
    seen: list[Path] = []

    def make_report(directory: Path) -> types.SimpleNamespace:
        seen.append(Path(directory))
        plan = types.SimpleNamespace(tables=[], claims=[])
        return types.SimpleNamespace(html_path=Path(directory) / "report.html", plan=plan)

    fake = types.ModuleType("robustcompress.reporting")
    fake.make_report = make_report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "robustcompress.reporting", fake)
    assert _main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert seen == [manifest.parent] and out["report"] == str(manifest.parent / "report.html")


def test_reproduce_prints_the_headline_numbers_and_verdicts(
    tiny_profile: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"
    argv = ["langenberg2019", "--profile", "test", "--workers", "1", "--runs-dir", str(runs)]
    assert _main(argv) == 0
    out = capsys.readouterr().out
    assert "FCNN: final clean accuracy and fooling ratios (FR)" in out
    assert "FR fgsm" in out and "natural" in out and "λ₁,₁=0.01" in out
    assert "Claim 1" in out and "inconclusive" in out  # one seed: never a verdict
    assert "2 of 2 runs finished" in out
    page = runs / "reproductions" / "langenberg2019-test" / "report.html"
    assert f"report: {page}" in out and page.is_file()

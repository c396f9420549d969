"""A paper defined entirely in this file — two methods on synthetic data and one claim —
runs through ``reproduce`` and ``report`` (HTML page included) with no edit anywhere else.

This is the contract for adding a paper: a package that builds a ``Recipe`` from the
shared blocks and registers it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from robustcompress import catalogue
from robustcompress.cli import main
from robustcompress.experiments.executor import (
    EXECUTORS,
    SequentialExecutor,
    register_executor,
)
from robustcompress.experiments.recipes import (
    MaskingCheck,
    Method,
    ModelEntry,
    Phase,
    PlannedRun,
    Profile,
    Recipe,
    Schedule,
    plan_grid,
    register_recipe,
    unregister_recipe,
)
from robustcompress.experiments.recipes.methods import regularized
from robustcompress.reporting import ReportSource
from robustcompress.reporting.claims import ClaimSpec, ComparisonSpec
from robustcompress.reporting.plans import standard_plan
from robustcompress.reporting.sections import ReportPlan

NAME = "toy-paper"
DATASET = "synthetic-subspace"  # generated: no files on disk needed

MODELS = {
    "fcnn": ModelEntry(
        DATASET,
        {
            "scratch": {"lr": 0.1, "momentum": 0.9, "batch_size": 50},
            "finetune": {"lr": 0.05, "momentum": 0.9, "batch_size": 50},
        },
        (
            Method("natural", "natural training", "natural"),
            regularized("l1", "ℓ1 on W1", l1={"W1": 0.05}),
        ),
        model_kwargs={"hidden": [8]},
    )
}
PROFILES = {
    "tiny": Profile(
        name="tiny",
        description="200 synthetic training points, one epoch each phase",
        seeds=2,
        settings={
            "fcnn": Schedule(
                train_limit=200,
                scratch=Phase(1, 2),
                finetune=Phase(1, 2),
                eval_size=40,
                tracked_attacks={
                    "fgsm-small": {"attack": "fgsm", "eps": 0.02},
                    "fgsm-large": {"attack": "fgsm", "eps": 0.1},
                },
            )
        },
        masking=MaskingCheck(size=40, eps=0.05),
    )
}
PAPER_VALUES = {"fcnn": {"accuracy": {"natural": 0.9, "l1": 0.88}}}


def plan(profile: Profile[Schedule], seeds: Sequence[int]) -> list[PlannedRun]:
    return plan_grid(NAME, profile, seeds, MODELS)


def claims(source: ReportSource) -> list[ClaimSpec]:
    return [
        ClaimSpec(
            "toy-claim",
            "Toy claim: ℓ1 fine-tuning makes W1 sparser",
            "The ℓ1 penalty on W1 lowers its effective sparsity compared with natural training.",
            (ComparisonSpec("fcnn", "natural", "l1", "effective_sparsity/W1", "lower"),),
        )
    ]


def report(source: ReportSource) -> ReportPlan:
    return standard_plan(source, claims=claims(source), paper=PAPER_VALUES, intro=["A toy paper."])


RECIPE = Recipe(
    name=NAME,
    title="Toy paper: ℓ1 on synthetic data",
    profiles=PROFILES,
    choices=("Everything is tiny.",),
    plan=plan,
    default_profile="tiny",
    report=report,
)


class CountingExecutor(SequentialExecutor):
    """Runs in this process and counts what went through it."""

    calls: ClassVar[dict[str, int]] = {"runs": 0, "jobs": 0}
    threads: ClassVar[list[int | None]] = []

    def submit(self, config, *, dependencies=None):  # type: ignore[no-untyped-def]
        CountingExecutor.calls["runs"] += 1
        return super().submit(config, dependencies=dependencies)

    def submit_job(self, function, *args):  # type: ignore[no-untyped-def]
        CountingExecutor.calls["jobs"] += 1
        return super().submit_job(function, *args)


def _counting(workers: int, **kwargs: Any) -> CountingExecutor:
    CountingExecutor.threads.append(kwargs.get("threads"))
    return CountingExecutor(runs_dir=kwargs.get("runs_dir"), device=kwargs.get("device"))


@pytest.fixture
def toy_recipe() -> Iterator[Recipe]:
    register_recipe(RECIPE)
    register_executor("counting", _counting)
    CountingExecutor.calls.update(runs=0, jobs=0)
    CountingExecutor.threads.clear()
    try:
        yield RECIPE
    finally:
        unregister_recipe(NAME)
        EXECUTORS.pop("counting", None)


@pytest.mark.slow
def test_toy_recipe_reproduces_and_reports_end_to_end(
    toy_recipe: Recipe, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    args = ["reproduce", NAME, "--runs-dir", str(runs), "--workers", "1", "--json"]
    code = main([*args, "--executor", "counting", "--threads", "1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    directory = runs / "reproductions" / f"{NAME}-tiny"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["recipe"] == NAME and manifest["seeds"] == [0, 1]
    assert sorted((r["method"], r["seed"]) for r in manifest["runs"]) == [
        ("l1", 0),
        ("l1", 1),
        ("natural", 0),
        ("natural", 1),
    ]
    assert all(r["status"] == "finished" for r in manifest["runs"])
    l1 = [r for r in manifest["runs"] if r["method"] == "l1"]
    assert all(r["starts_from"] == "natural" and r["group"] == "regularized" for r in l1)
    assert len(manifest["masking"]) == 4  # every finished model checked
    checked = manifest["masking"][0]["attacks"]  # the check's attacks, as they ran
    assert checked["pgd"]["steps"] == 20 and checked["pgd"]["alpha"] == pytest.approx(0.005)
    # every job of the reproduction went through the chosen executor
    assert CountingExecutor.calls == {"runs": 4, "jobs": 4}
    assert CountingExecutor.threads == [1]  # `--threads` reaches the executor reproduce makes

    page = (directory / "report.html").read_text()
    numbers = json.loads((directory / "report.json").read_text())
    # the claim is evaluated on the two seeds, with its paired statistics
    (claim,) = numbers["claims"]
    assert claim["key"] == "toy-claim" and len(claim["evidence"]) == 1
    evidence = claim["evidence"][0]
    assert evidence["n"] == 2 and evidence["metric"] == "effective_sparsity/W1"
    assert claim["verdict"] in ("supported", "not supported", "inconclusive")
    assert "Toy claim" in page
    # the paper's values column and both tracked attack settings, read from the runs
    accuracy = next(t for t in numbers["tables"] if t["key"] == "fcnn-accuracy")
    assert "paper" in accuracy["columns"] and any("0.9000" in row for row in accuracy["rows"])
    robustness = next(t for t in numbers["tables"] if t["key"] == "fcnn-final-robustness")
    assert "FR fgsm-small" in robustness["columns"] and "FR fgsm-large" in robustness["columns"]
    assert "ε = 0.02" in robustness["caption"] and "ε = 0.1" in robustness["caption"]
    assert any(f["key"] == "fcnn-fooling" for f in numbers["figures"])
    assert "<img" in page
    masking = next(t for t in numbers["tables"] if t["key"] == "masking")
    assert "PGD ℓ∞ ε = 0.05, T = 20, α = 0.005" in masking["caption"]

    # a second `report` call through the CLI rebuilds the same page from the manifest
    assert main(["report", str(directory)]) == 0


def test_unknown_method_link_is_a_one_line_error(toy_recipe: Recipe) -> None:
    from robustcompress.errors import ConfigError

    broken = {
        "fcnn": ModelEntry(
            DATASET,
            MODELS["fcnn"].optimizer,
            (Method("ft", "fine-tuned", starts_from="missing"),),
        )
    }
    with pytest.raises(ConfigError, match="starts from 'missing', which is not a method"):
        plan_grid(NAME, PROFILES["tiny"], [0], broken)


def test_tracked_attack_labels_are_distinct_metrics() -> None:
    config = {"tracking": {"attacks": {"pgd-big": {"attack": "pgd", "eps": 0.1, "steps": 3}}}}
    settings = catalogue.attack_settings(config, "pgd-big")
    assert settings["attack"] == "pgd" and settings["eps"] == 0.1 and settings["steps"] == 3
    assert settings["norm"] == "linf"
    assert catalogue.attack_text(settings).startswith("PGD ℓ∞ ε = 0.1, T = 3")
    assert catalogue.column_label(catalogue.fooling_ratio_key("pgd-big")) == "FR pgd-big"

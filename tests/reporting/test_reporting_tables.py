"""Tables as data: mean ± std, accuracy beside the paper, settings, masking flags."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from robustcompress.reporting.loading import load_source
from robustcompress.reporting.tables import (
    accuracy_table,
    final_metrics_table,
    format_mean_std,
    masking_table,
    mean_std,
    metric_label,
    settings_table,
)

FakeRun = Callable[..., Path]


def test_mean_std_uses_sample_std() -> None:
    mean, std, n = mean_std([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert std == pytest.approx(1.0)
    assert mean_std([4.0]) == (4.0, 0.0, 1)
    assert math.isnan(mean_std([])[0])


def test_format_mean_std() -> None:
    assert format_mean_std([0.9, 0.95]) == "0.9250 ± 0.0354"
    assert format_mean_std([0.9]) == "0.9000"
    assert format_mean_std([]) == "—"
    assert format_mean_std([1.23456, 1.23456], digits=2) == "1.23 ± 0.00"


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("effective_rank/W2", "r(W2)"),
        ("effective_sparsity/W1", "s(W1)"),
        ("fooling_ratio/pgd", "FR pgd"),
        ("accuracy", "clean accuracy"),
        ("loss/ce", "loss/ce"),
    ],
)
def test_metric_label(metric: str, label: str) -> None:
    assert metric_label(metric) == label


def _source(tmp_path: Path, fake_run: FakeRun):  # type: ignore[no-untyped-def]
    base = {
        "model": {"name": "fcnn"},
        "data": {"dataset": "mnist", "limit": 100},
        "optimizer": {"epochs": 3, "lr": 0.01, "batch_size": 32, "momentum": 0.9},
        "tracking": {"eval_size": 50, "every": 0, "attacks": {"fgsm": {"eps": 0.05}}},
    }
    nat0 = fake_run(tmp_path, "nat-s0-a", {**base, "name": "nat-s0", "seed": 0}, {"accuracy": 0.90})
    fake_run(tmp_path, "nat-s1-b", {**base, "name": "nat-s1", "seed": 1}, {"accuracy": 0.94})
    adv = {
        **base,
        "name": "adv-s0",
        "seed": 0,
        "training": {
            "mode": "adversarial",
            "init_from": str(nat0),
            "adversarial": {"attack": "pgd", "eps": 0.05, "steps": 7, "mix": 0.0},
        },
        "regularizers": {"nuclear": {"lam": {"W1": 0.01}}},
    }
    fake_run(tmp_path, "adv-s0-c", adv, {"accuracy": 0.80, "fooling_ratio/fgsm": 0.3})
    return load_source(tmp_path)


def test_accuracy_table_beside_reference(tmp_path: Path, fake_run: FakeRun) -> None:
    source = _source(tmp_path, fake_run)
    table = accuracy_table(
        source, "fcnn", key="t1", title="Table 1", reference={"nat": 0.95}, caption="Ours."
    )
    assert table.columns == ["method", "seeds", "clean accuracy (ours)", "paper", "ours − paper"]
    rows = {r[0]: r for r in table.rows}
    assert rows["nat"][1:] == ["2", "0.9200 ± 0.0283", "0.9500", "-0.0300"]
    assert rows["adv"][1:] == ["1", "0.8000", "—", "—"]
    assert "50 test images" in table.caption and table.caption.startswith("Ours.")
    plain = accuracy_table(source, "fcnn", key="t", title="t")
    assert plain.columns == ["method", "seeds", "clean accuracy (ours)"]


def test_final_metrics_table_keeps_recorded_metrics(tmp_path: Path, fake_run: FakeRun) -> None:
    source = _source(tmp_path, fake_run)
    table = final_metrics_table(
        source, "fcnn", ["accuracy", "fooling_ratio/fgsm", "fooling_ratio/gnm"], key="k", title="t"
    )
    assert table.columns == ["method", "seeds", "clean accuracy", "FR fgsm", "correct inputs"]
    rows = {r[0]: r for r in table.rows}
    # the fooling ratios' denominator: accuracy × 50 evaluation images (45 and 47 for nat)
    assert rows["adv"] == ["adv", "1", "0.8000", "0.3000", "40"]
    assert rows["nat"] == ["nat", "2", "0.9200 ± 0.0283", "—", "46 ± 1"]
    assert not table.classes and not table.notes


def test_near_chance_and_diverged_runs_are_marked_in_the_robustness_table(
    tmp_path: Path, fake_run: FakeRun
) -> None:
    config = {
        "model": {"name": "fcnn"},
        "data": {"dataset": "mnist"},
        "tracking": {"eval_size": 200, "attacks": {"fgsm": {"eps": 0.05}}},
    }
    fake_run(
        tmp_path, "a-s0", {**config, "name": "a-s0"}, {"accuracy": 0.15, "fooling_ratio/fgsm": 0.0}
    )
    diverged = fake_run(tmp_path, "a-s1", {**config, "name": "a-s1", "seed": 1})
    (diverged / "summary.json").write_text('{"status": "diverged", "error": "loss exploded"}')
    fake_run(
        tmp_path, "b-s0", {**config, "name": "b-s0"}, {"accuracy": 0.9, "fooling_ratio/fgsm": 0.4}
    )
    table = final_metrics_table(
        load_source(tmp_path), "fcnn", ["accuracy", "fooling_ratio/fgsm"], key="k", title="t"
    )
    rows = {r[0]: i for i, r in enumerate(table.rows)}
    assert table.rows[rows["a"]][1] == "1 (1 diverged)"  # the diverged seed is not averaged in
    assert table.rows[rows["a"]][-1] == "30"  # 0.15 × 200 correct inputs
    assert table.classes == {rows["a"]: "warn"}  # 0.15 ≤ chance 0.1 + 0.1
    assert "At or near chance accuracy" in table.notes[0] and "a" in table.notes[0]


def test_settings_table_reads_resolved_configs(tmp_path: Path, fake_run: FakeRun) -> None:
    table = settings_table(_source(tmp_path, fake_run))
    rows = {r[1]: dict(zip(table.columns, r, strict=True)) for r in table.rows}
    assert rows["adv"]["training"] == "adversarial: pgd ε=0.05, steps=7"
    assert rows["adv"]["starts from"] == "nat (seed 0)"
    assert rows["adv"]["regularizers"] == "nuclear λ {W1: 0.01}"
    assert rows["nat"]["starts from"] == "scratch"
    assert rows["nat"]["optimizer"] == "SGD lr 0.01, batch 32, momentum 0.9"
    assert rows["nat"]["data"] == "mnist (100 train)"
    assert rows["nat"]["tracking"] == "50 test images, epoch ends; fgsm"


def _flag(name: str, triggered: bool, value: float | None, checked: bool = True) -> dict:
    return {
        "name": name,
        "triggered": triggered,
        "value": value,
        "threshold": 0.1,
        "explanation": f"what {name} means",
        "checked": checked,
    }


def test_masking_table_marks_triggered_and_unchecked_models() -> None:
    entries = [
        {"model": "fcnn", "method": "pgd", "seed": 0, "n": 200, "flags": [_flag("a", False, 0.01)]},
        {
            "model": "fcnn",
            "method": "l1",
            "seed": 1,
            "flags": [_flag("a", True, 0.5), _flag("b", False, None, checked=False)],
        },
    ]
    table = masking_table(
        entries,
        required=[("fcnn", "pgd"), ("fcnn", "natural")],
        labels={("fcnn", "l1"): "λ₁,₁=0.01"},
    )
    assert table.columns == ["model", "method", "seed", "a", "b"]
    assert table.rows[0] == ["fcnn", "pgd", "0", "ok (0.01)", "—"]
    assert table.rows[1] == ["fcnn", "λ₁,₁=0.01", "1", "TRIGGERED (0.5)", "not checked"]
    assert table.rows[2][:3] == ["fcnn", "natural", "—"]
    assert table.rows[2][3] == "no masking check recorded"
    assert table.classes == {1: "warn", 2: "warn"}
    assert table.notes == ["a: what a means", "b: what b means"]
    assert "masking on 200 test images," in table.caption


def test_accuracy_table_prefers_the_full_test_set_when_every_run_has_it(
    tmp_path: Path, fake_run: FakeRun
) -> None:
    source = _source(tmp_path, fake_run)
    nat = source.runs_of("fcnn", "nat")
    source.masking = [
        {"model": "fcnn", "method": "nat", "seed": r.seed, "test_accuracy": acc, "test_size": 10000}
        for r, acc in zip(nat, (0.95, 0.97), strict=True)
    ]
    rows = {r[0]: r for r in accuracy_table(source, "fcnn", key="t", title="t").rows}
    assert rows["nat"][1:] == ["2", "0.9600 ± 0.0141"]
    assert rows["adv"][1:] == ["1", "0.8000"]  # no full-test number: the tracked subset
    partial = source.masking[:1]
    source.masking = partial  # one seed missing: never mix the two sources
    rows = {r[0]: r for r in accuracy_table(source, "fcnn", key="t", title="t").rows}
    assert rows["nat"][1:] == ["2", "0.9200 ± 0.0283"]


def test_optimizer_text_names_the_optimizer() -> None:
    from robustcompress.reporting.tables import _optimizer_text

    adam = {"optimizer": {"name": "adam", "lr": 0.001, "batch_size": 64, "betas": [0.9, 0.99]}}
    assert _optimizer_text(adam) == "Adam lr 0.001, batch 64, betas (0.9, 0.99)"
    assert _optimizer_text({"optimizer": {"lr": 0.1, "batch_size": 8}}) == "SGD lr 0.1, batch 8"

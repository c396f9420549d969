"""The metric catalogue: a measure registered once is tracked, checked and reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robustcompress import catalogue
from robustcompress.errors import ConfigError
from robustcompress.experiments import run
from robustcompress.experiments.config import check_against_model, parse_config
from robustcompress.reporting import make_report

KEY = "max_abs_entry"


def max_abs_entry(matrix: torch.Tensor) -> float:
    return float(matrix.abs().max())


@pytest.fixture
def registered() -> Iterator[catalogue.MetricSpec]:
    spec = catalogue.register_structure_measure(
        KEY, max_abs_entry, label="largest |w_ij|", symbol="max|w|"
    )
    try:
        yield spec
    finally:
        catalogue.unregister_metric(KEY)


def _config(measures: list[str]) -> dict:
    return {
        "name": "catalogue-probe",
        "data": {"dataset": "synthetic-subspace", "limit": 100},
        "model": {"name": "fcnn", "kwargs": {"hidden": [8]}},
        "optimizer": {"epochs": 1, "batch_size": 50, "lr": 0.1},
        "tracking": {
            "eval_size": 30,
            "attacks": {"fgsm": {"eps": 0.05}},
            "structure": measures,
        },
        "device": "cpu",
    }


def test_unregistered_measure_is_refused_with_the_allowed_list() -> None:
    config = parse_config(_config(["effective_rank", KEY]))
    with pytest.raises(ConfigError, match=rf"tracking.structure: unknown measure\(s\) {KEY}"):
        check_against_model(config)


def test_registered_measure_is_tracked_and_reaches_the_report(
    registered: catalogue.MetricSpec, tmp_path: Path
) -> None:
    record = run(parse_config(_config(["effective_rank", KEY])), runs_dir=tmp_path / "runs")
    assert record.status == "finished"
    # tracked per weight matrix, with the value the function gives on the final weights
    from robustcompress.models import weight_matrices
    from robustcompress.training import load_model

    model = load_model(record.run_dir)
    for wm in weight_matrices(model):
        assert record.final[f"{KEY}/{wm.name}"] == pytest.approx(
            max_abs_entry(wm.matrix.detach()), rel=1e-6
        )
    report = make_report(record.run_dir)
    numbers = json.loads(report.html_path.with_suffix(".json").read_text())
    structure = next(t for t in numbers["tables"] if t["key"].endswith("final-structure"))
    assert "max|w|(W1)" in structure["columns"] and "r(W1)" in structure["columns"]
    assert "max|w|: largest |w_ij|" in structure["caption"]
    figure = next(f for f in report.figures if f.key.endswith("-structure"))
    assert "largest |w_ij|" in Path(figure.svg).read_text()


def test_catalogue_entries_and_keys() -> None:
    fr = catalogue.metric_spec("fooling_ratio/pgd")
    assert fr is not None and fr.better == "lower" and fr.group == "robustness"
    acc = catalogue.metric_spec("accuracy")
    assert acc is not None and acc.better == "higher"
    assert catalogue.headline("fooling_ratio/anything") and catalogue.headline("accuracy")
    assert not catalogue.headline("effective_rank/W1") and not catalogue.headline("unknown")
    assert catalogue.split_key("mi_input_lower/t2") == ("mi_input_lower", "t2")
    assert catalogue.column_label("effective_sparsity/W3") == "s(W3)"
    assert set(catalogue.structure_measures()) >= {
        "effective_rank",
        "effective_sparsity",
        "stable_rank",
        "spectral_norm",
        "numerical_rank",
        "exact_sparsity",
        "singular_value_std",
    }
    info = catalogue.metric_spec("mi_label_upper/t1")
    assert info is not None and info.unit == "bits"


def test_registration_conflicts_are_errors(registered: catalogue.MetricSpec) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        catalogue.register_structure_measure(KEY, torch.linalg.norm, label="x", symbol="x")
    with pytest.raises(ConfigError, match="contain no '/'"):
        catalogue.register_metric(catalogue.MetricSpec("a/b", "a", "a", "structure"))

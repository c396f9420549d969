"""The model-level structure report, its CSV export, and the conv input-size tracking."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pytest
import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import create_model, list_models, weight_matrices
from robustcompress.structure import (
    REPORT_COLUMNS,
    conv_input_sizes,
    conv_layer_spectral_norm,
    effective_rank,
    effective_sparsity,
    exact_sparsity,
    matrix_measures,
    numerical_rank,
    report_to_csv,
    singular_value_std,
    spectral_norm,
    stable_rank,
    structure_report,
)

# a narrow ResNet-18 keeps the contract test fast (same layers and feature-map sizes)
SMALL: dict[str, dict[str, Any]] = {"resnet18": {"width": 4}}


def build(name: str, **kwargs: Any) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{**SMALL.get(name, {}), **kwargs})


def check_report(model: nn.Module) -> list[dict[str, Any]]:
    rows = structure_report(model)
    matrices = weight_matrices(model)
    assert [r["name"] for r in rows] == [wm.name for wm in matrices]
    for row, wm in zip(rows, matrices, strict=True):
        assert tuple(row) == REPORT_COLUMNS
        assert row["shape"] == wm.shape
        assert (row["module_name"], row["kind"], row["index"]) == (
            wm.module_name,
            wm.kind,
            wm.index,
        )
        assert row["kernel_size"] == wm.kernel_size
        assert 1.0 <= row["effective_rank"] <= math.sqrt(min(wm.shape)) + 1e-9
        assert 1.0 <= row["stable_rank"] <= min(wm.shape) + 1e-9
        if wm.kind == "conv":
            assert row["conv_input_size"] is not None
            assert row["operator_spectral_norm"] >= row["spectral_norm"] * (1 - 1e-9)
        else:
            assert row["operator_spectral_norm"] is None and row["operator_grid"] is None
    return rows


@pytest.mark.parametrize("name", list_models())
def test_report_on_every_registered_model(name: str) -> None:
    check_report(build(name))


def test_report_values_equal_the_single_measures() -> None:
    model = build("cnn")
    rows = structure_report(model, energy=0.9)
    for row, wm in zip(rows, weight_matrices(model), strict=True):
        w = wm.matrix
        assert row["effective_sparsity"] == pytest.approx(effective_sparsity(w), rel=1e-12)
        assert row["effective_rank"] == pytest.approx(effective_rank(w), rel=1e-12)
        assert row["stable_rank"] == pytest.approx(stable_rank(w), rel=1e-12)
        assert row["numerical_rank"] == numerical_rank(w, 0.9)
        assert row["exact_sparsity"] == exact_sparsity(w)
        assert row["spectral_norm"] == pytest.approx(spectral_norm(w), rel=1e-12)
        assert row["singular_value_std"] == pytest.approx(singular_value_std(w), rel=1e-12)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("lenet5", [(28, 28), (12, 12)]),
        ("cnn", [(28, 28), (13, 13)]),
        ("resnet18", [(32, 32)] * 6 + [(16, 16), (32, 32)] + [(16, 16)] * 3),
    ],
)
def test_conv_input_sizes_follow_the_feature_maps(name: str, sizes: list[tuple[int, int]]) -> None:
    rows = [r for r in structure_report(build(name)) if r["kind"] == "conv"]
    assert [r["conv_input_size"] for r in rows][: len(sizes)] == sizes


def test_unpadded_conv_rows_use_the_input_grid_and_match_conv_module() -> None:
    model = build("lenet5")
    row = structure_report(model)[1]
    assert row["operator_grid"] == (12, 12) and row["operator_norm_exact"] is False
    expected = conv_layer_spectral_norm(weight_matrices(model)[1].module, (12, 12))  # type: ignore[arg-type]
    assert row["operator_spectral_norm"] == expected.value


def test_padded_resnet_conv_uses_the_enlarged_grid() -> None:
    row = structure_report(build("resnet18"))[0]
    assert row["conv_input_size"] == (32, 32) and row["operator_grid"] == (34, 34)


def test_input_shape_override_changes_the_grid() -> None:
    model = build("cnn", input_size=32)
    rows = structure_report(model, input_shape=(1, 32, 32))
    assert [r["conv_input_size"] for r in rows[:2]] == [(32, 32), (15, 15)]
    assert [r["operator_grid"] for r in rows[:2]] == [(32, 32), (15, 15)]
    with pytest.raises(ModelError, match="input_shape"):  # the registry's 28×28 no longer fits
        structure_report(model)


def test_model_without_registry_name_needs_input_shape() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(ModelError, match="input_shape"):
        structure_report(model)
    rows = structure_report(model, input_shape=(1, 6, 6))
    assert rows[0]["conv_input_size"] == (6, 6)
    # a purely linear model needs no forward pass
    assert len(structure_report(nn.Sequential(nn.Linear(3, 2)))) == 1


def test_wrong_input_shape_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="input_shape"):
        structure_report(build("lenet5"), input_shape=(3, 28, 28))
    with pytest.raises(ConfigError, match="input_shape"):
        conv_input_sizes(build("lenet5"), (28, 28))


def test_report_restores_training_mode_and_leaves_no_hooks() -> None:
    model = build("cnn")
    model.train()
    structure_report(model)
    assert model.training
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_unsupported_conv_gets_nan_operator_norm() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    row = structure_report(model, input_shape=(1, 5, 5))[0]
    assert math.isnan(row["operator_spectral_norm"]) and row["operator_grid"] is None


def test_matrix_measures_keys() -> None:
    assert set(matrix_measures(torch.eye(3))) == set(REPORT_COLUMNS[6:13])


def test_csv_round_trip() -> None:
    rows = structure_report(build("lenet5"))
    buffer = io.StringIO()
    report_to_csv(rows, buffer)
    parsed = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert list(parsed[0]) == list(REPORT_COLUMNS)
    assert len(parsed) == len(rows)
    for row, line in zip(rows, parsed, strict=True):
        assert line["shape"] == f"{row['shape'][0]}x{row['shape'][1]}"
        assert float(line["effective_rank"]) == row["effective_rank"]
        assert int(line["numerical_rank"]) == row["numerical_rank"]
    assert parsed[2]["operator_spectral_norm"] == ""  # linear layer
    assert parsed[0]["operator_grid"] == "28x28"


def test_csv_to_path(tmp_path: Any) -> None:
    path = tmp_path / "report.csv"
    report_to_csv(structure_report(build("fcnn")), path)
    assert path.read_text().splitlines()[0] == ",".join(REPORT_COLUMNS)
    with pytest.raises(ConfigError, match="cannot write"):
        report_to_csv(structure_report(build("fcnn")), tmp_path / "missing" / "report.csv")

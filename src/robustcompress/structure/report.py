"""A model-level structure report: every measure for every weight matrix W_1 … W_m.

One row per :class:`~robustcompress.models.WeightMatrix`, in forward order. The
matrix measures are computed on the matrix view (W for linear layers, the
reshaped kernel W̃ = c_out × (c_in·k_h·k_w) for convolutions, as in Langenberg et
al. 2019, App. B) from a single float64 SVD per matrix. Convolutions additionally
get the spectral norm of the convolution *operator* (see
:mod:`robustcompress.structure.conv`) on the feature-map size the layer actually
sees, found with forward hooks on one all-zero dummy input of shape
``input_shape`` (default: the registered model's ``model_spec(name).input_shape``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import model_spec, weight_matrices
from robustcompress.structure.conv import conv_layer_spectral_norm
from robustcompress.structure.effective import effective_sparsity, exact_sparsity
from robustcompress.structure.spectrum import (
    DEFAULT_ENERGY,
    _check_energy,
    _numerical_rank,
    _singular_value_std,
    _spectral_norm,
    _stable_rank,
    singular_values,
)

REPORT_COLUMNS: tuple[str, ...] = (
    "index",
    "name",
    "module_name",
    "kind",
    "shape",
    "kernel_size",
    "effective_sparsity",
    "effective_rank",
    "stable_rank",
    "numerical_rank",
    "exact_sparsity",
    "spectral_norm",
    "singular_value_std",
    "conv_input_size",
    "operator_grid",
    "operator_spectral_norm",
    "operator_norm_exact",
)
"""Keys of every report row, in order. The last four are ``None`` for linear layers."""


def matrix_measures(W: torch.Tensor, energy: float = DEFAULT_ENERGY) -> dict[str, float | int]:
    """Every matrix measure of ``W`` from one SVD (same values as the single functions).

    Keys: effective_sparsity, effective_rank, stable_rank, numerical_rank (at
    ``energy``), exact_sparsity, spectral_norm, singular_value_std.
    """
    _check_energy(energy)
    sigma = singular_values(W)
    return {
        "effective_sparsity": effective_sparsity(W),
        "effective_rank": effective_sparsity(sigma),  # r(W) = s(σ(W)), eq. 3
        "stable_rank": _stable_rank(sigma),
        "numerical_rank": _numerical_rank(sigma, energy),
        "exact_sparsity": exact_sparsity(W),
        "spectral_norm": _spectral_norm(sigma),
        "singular_value_std": _singular_value_std(sigma),
    }


def conv_input_sizes(model: nn.Module, input_shape: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Spatial size (h, w) of the input each ``nn.Conv2d`` of ``model`` receives.

    Runs ``model`` once in eval mode, without gradients, on a zero tensor of shape
    ``1 × input_shape`` and records the first call of each convolution. Modules
    the forward pass never reaches are absent from the result. The model's
    train/eval mode is restored afterwards.
    """
    if len(input_shape) != 3 or min(int(s) for s in input_shape) < 1:
        raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    sizes: dict[str, tuple[int, int]] = {}
    handles = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):

            def hook(
                _m: nn.Module, inputs: tuple[torch.Tensor, ...], key: str = module_name
            ) -> None:
                sizes.setdefault(key, (int(inputs[0].shape[-2]), int(inputs[0].shape[-1])))

            handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *(int(s) for s in input_shape), device=device, dtype=dtype))
    except RuntimeError as exc:
        raise ModelError(
            f"the model does not accept an input of shape {tuple(input_shape)} "
            f"({str(exc).splitlines()[0]}); pass the right input_shape (C, H, W)"
        ) from exc
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return sizes


def structure_report(
    model: nn.Module, input_shape: Sequence[int] | None = None, *, energy: float = DEFAULT_ENERGY
) -> list[dict[str, Any]]:
    """One row of structure measures per weight matrix of ``model`` (keys: :data:`REPORT_COLUMNS`).

    Rows hold the matrix view's ``shape`` and every measure of
    :func:`matrix_measures`; for a convolution also ``kernel_size``, the layer's
    input feature-map size ``conv_input_size`` (from a forward pass on a dummy
    input of shape ``input_shape``, default the registry's input shape for models
    built by :func:`~robustcompress.models.create_model`), the circular-convolution
    ``operator_grid`` used and ``operator_spectral_norm`` on it, and whether that
    norm is exact or an upper bound (``operator_norm_exact``; see
    :func:`~robustcompress.structure.conv.conv_layer_spectral_norm`: zero-padded
    layers get the bound on the (n + 2p)-grid). A convolution never reached by the
    forward pass, or with an unsupported padding mode, gets NaN there.
    """
    _check_energy(energy)
    matrices = weight_matrices(model)
    sizes: dict[str, tuple[int, int]] = {}
    if any(wm.kind == "conv" for wm in matrices):
        sizes = conv_input_sizes(model, _resolve_input_shape(model, input_shape))
    rows: list[dict[str, Any]] = []
    for wm in matrices:
        row: dict[str, Any] = {
            "index": wm.index,
            "name": wm.name,
            "module_name": wm.module_name,
            "kind": wm.kind,
            "shape": wm.shape,
            "kernel_size": wm.kernel_size,
            **matrix_measures(wm.matrix, energy),
            "conv_input_size": None,
            "operator_grid": None,
            "operator_spectral_norm": None,
            "operator_norm_exact": None,
        }
        if wm.kind == "conv":
            row["conv_input_size"] = sizes.get(wm.module_name)
            row["operator_spectral_norm"] = math.nan
            if row["conv_input_size"] is not None:
                try:
                    norm = conv_layer_spectral_norm(wm.module, row["conv_input_size"])  # type: ignore[arg-type]
                except ModelError:
                    pass
                else:
                    row["operator_grid"] = norm.grid
                    row["operator_spectral_norm"] = norm.value
                    row["operator_norm_exact"] = norm.exact
        rows.append(row)
    return rows


def report_to_csv(
    rows: Sequence[Mapping[str, Any]], path_or_buffer: str | os.PathLike[str] | TextIO
) -> None:
    """Write report rows as CSV (header from the first row's keys).

    Pairs such as shapes are written as ``"20x784"``, ``None`` as an empty cell,
    floats with full precision (``repr``), NaN as ``nan``.
    """
    columns = list(rows[0].keys()) if rows else list(REPORT_COLUMNS)
    if hasattr(path_or_buffer, "write"):
        _write_csv(rows, columns, path_or_buffer)  # type: ignore[arg-type]
        return
    try:
        with open(path_or_buffer, "w", newline="", encoding="utf-8") as handle:  # type: ignore[arg-type]
            _write_csv(rows, columns, handle)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the CSV report to {os.fspath(path_or_buffer)!r}: {exc.strerror}; "
            "check that the directory exists and is writable"
        ) from exc


def _write_csv(rows: Sequence[Mapping[str, Any]], columns: list[str], handle: TextIO) -> None:
    writer = csv.writer(handle)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _resolve_input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    name = getattr(model, "registry_name", None)
    if name is None:
        raise ModelError(
            "cannot tell the input shape of this model (it was not built by create_model): "
            "pass input_shape=(C, H, W) to measure its convolution operators"
        )
    return model_spec(name).input_shape

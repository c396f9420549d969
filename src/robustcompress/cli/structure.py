"""``robustcompress structure``: structure measures of every weight matrix of a model.

``MODEL_OR_CHECKPOINT`` is either a registered model name (built untrained with
``--seed``) or a path to a checkpoint, loaded with
``robustcompress.training.checkpoint.load_model``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.cli.targets import load_target
from robustcompress.models import list_models
from robustcompress.structure import report_to_csv, structure_report
from robustcompress.structure.spectrum import DEFAULT_ENERGY


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "structure",
        help="effective rank, effective sparsity and spectra of every weight matrix",
        description=(
            "Report, for each weight matrix W_i (reshaped kernel W̃ for convolutions), "
            "effective sparsity s(W) and effective rank r(W) (Langenberg et al. 2019, eqs. 2-3), "
            "stable rank, numerical rank, fraction of zeros, spectral norm, std of singular "
            "values, and for convolutions the FFT operator norm on the layer's feature map."
        ),
    )
    p.add_argument(
        "target",
        metavar="MODEL_OR_CHECKPOINT",
        help=f"a registered model ({', '.join(list_models())}) or a checkpoint path",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="initialisation seed for a model name (default: 0)"
    )
    p.add_argument(
        "--energy",
        type=float,
        default=DEFAULT_ENERGY,
        help=f"energy fraction of the numerical rank (default: {DEFAULT_ENERGY})",
    )
    p.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="input shape for the conv feature-map sizes (default: the registry's)",
    )
    p.add_argument("--csv", metavar="PATH", help="also write the full report as CSV to PATH")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = load_target(args.target, args.seed)
    model = target.model
    title = f"Structure of {target.description}"
    rows = structure_report(model, args.input_shape, energy=args.energy)
    if args.csv:
        report_to_csv(rows, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:
        print_json(rows)
    else:
        print_table(_display_rows(rows, args.energy), title=title)
    return 0


def _display_rows(rows: list[dict[str, Any]], energy: float) -> list[dict[str, Any]]:
    """Report rows with short, paper-notation headers for the terminal table."""
    rank_header = f"rank@{energy:g}"
    return [
        {
            "W": r["name"],
            "module": r["module_name"],
            "kind": r["kind"],
            "shape": r["shape"],
            "s(W)": r["effective_sparsity"],
            "r(W)": r["effective_rank"],
            "srank": r["stable_rank"],
            rank_header: r["numerical_rank"],
            "zeros": r["exact_sparsity"],
            "‖W‖₂": r["spectral_norm"],
            "std σ": r["singular_value_std"],
            "‖conv‖₂": r["operator_spectral_norm"],
            "grid": r["operator_grid"],
            "exact": r["operator_norm_exact"],
        }
        for r in rows
    ]

"""``robustcompress models``: list the registered architectures."""

from __future__ import annotations

import argparse

from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.models import create_model, list_models, model_spec, weight_matrices


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models():
        spec = model_spec(name)
        model = create_model(name)
        rows.append(
            {
                "name": name,
                "input": list(spec.input_shape),
                "dataset": spec.default_dataset,
                "parameters": sum(p.numel() for p in model.parameters()),
                "weight_matrices": len(weight_matrices(model)),
                "paper": spec.paper,
                "summary": spec.summary,
                "options": {k: v for k, v in spec.defaults().items()},
            }
        )
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "input", "dataset", "parameters", "weight_matrices", "paper"])
    return 0

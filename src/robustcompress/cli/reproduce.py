"""``robustcompress reproduce RECIPE``: run a paper's whole grid (cached) and report it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from robustcompress.cli.output import print_json, print_table
from robustcompress.cli.report import print_headlines
from robustcompress.cli.run import (
    add_pool_flags,
    executor_options,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a paper end to end: every run, masking checks, an HTML report",
        description=(
            "Plan every run of RECIPE for a profile and seeds, run those not finished yet "
            "(finished runs are reused), compute the gradient-masking flags of every "
            "model, write <runs dir>/reproductions/<recipe>-<profile>/manifest.json and "
            "build the HTML report there. Recipes: one per paper (langenberg2019, ...); an "
            "unknown name lists the registered ones."
        ),
    )
    p.add_argument("recipe", help="recipe name (e.g. langenberg2019)")
    p.add_argument(
        "--profile",
        default=None,
        help="the recipe's profile (default: its own; langenberg2019: quick, a minutes-long "
        "smoke test; full, the momentum recipe on full data, 3 seeds; paper, the paper's "
        "own optimiser and accuracies, 5/3 seeds); an unknown name lists the recipe's",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="run seeds 0..N-1 (default: the profile's; a model may cap it, e.g. the "
        "paper profile's CNN at 3)",
    )
    p.add_argument("--no-report", action="store_true", help="do not build the HTML report")
    add_pool_flags(
        p,
        workers_default=None,
        workers_help="parallel worker processes (default: min(2, cores)); each gets "
        "max(1, cores // N) torch threads (see --threads)",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Reproduce; SIGINT or SIGTERM stops the workers and exits with one line.

    Rerunning the same command reuses the finished runs and continues the others.
    """
    from robustcompress.device import check_threads
    from robustcompress.experiments.executor import (
        Interrupted,
        available_cores,
        stop_on_signals,
    )
    from robustcompress.experiments.recipes import get_recipe, reproduce

    recipe = get_recipe(args.recipe)
    workers = args.workers if args.workers is not None else min(2, available_cores())
    try:
        with stop_on_signals():
            result = reproduce(
                recipe,
                args.profile,
                seeds=args.seeds,
                workers=workers,
                executor=args.executor,
                threads=check_threads(args.threads),
                executor_options=executor_options(args),
                runs_dir=args.runs_dir,
                device=args.device,
            )
    except Interrupted as stop:
        rerun = f"robustcompress reproduce {args.recipe}"
        for flag in ("profile", "seeds", "runs_dir"):
            if getattr(args, flag) is not None:
                rerun += f" --{flag.replace('_', '-')} {getattr(args, flag)}"
        print(f"error: {stop.message(rerun)}", file=sys.stderr)
        return stop.exit_status
    report = None if args.no_report else build_report(result.directory)
    manifest = result.manifest
    if args.json:
        print_json(
            {
                "manifest": str(result.manifest_path),
                "report": None if report is None else str(report.html_path),
                "wall_time_s": manifest["wall_time_s"],
                "runs": manifest["runs"],
                "errors": result.errors,
            }
        )
    else:
        runs = manifest["runs"]
        unfinished = [r for r in runs if r["status"] != "finished"]
        if unfinished:
            rows = [
                {
                    "model": r["model"],
                    "method": r["method"],
                    "seed": r["seed"],
                    "status": r["status"],
                    "run": r["name"],
                }
                for r in unfinished
            ]
            print_table(rows, ["model", "method", "seed", "status", "run"], title="unfinished runs")
        print(recipe.title)
        if report is not None:
            print_headlines(report)
        print(
            f"{len(runs) - len(unfinished)} of {len(runs)} runs finished; "
            f"wall time {manifest['wall_time_s']:.0f} s"
        )
        print(f"manifest: {result.manifest_path}")
        if report is not None:
            print(f"report: {report.html_path}")
    return 1 if result.errors else 0


def build_report(directory: str | Path) -> Any:
    """``robustcompress.reporting.make_report(directory)``, or None with a note if the
    reporting module cannot be imported."""
    try:
        from robustcompress.reporting import make_report
    except ImportError:
        print(
            "note: robustcompress.reporting is not available; no HTML report built "
            "(the manifest is complete: run `robustcompress report DIR` later)",
            file=sys.stderr,
        )
        return None
    return make_report(directory)

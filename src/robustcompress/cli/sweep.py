"""``robustcompress sweep SWEEP.yaml``: expand a sweep, run it, print the summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustcompress.cli.output import print_json, print_table
from robustcompress.cli.run import (
    add_pool_flags,
    executor_from_args,
)
from robustcompress.cli.runs import headline_metrics


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a sweep (base config × variants × grid) and summarise it",
        description=(
            "Expand SWEEP.yaml into runs, run those not finished yet (sequentially, in a "
            "local process pool or on Ray), and print mean ± std of the final metrics per "
            "variant and grid point over seeds (also written to sweep_summary.json)."
        ),
    )
    p.add_argument("sweep", metavar="SWEEP.yaml", help="sweep file (see examples/)")
    add_pool_flags(
        p,
        workers_default=1,
        workers_help="parallel worker processes (default 1: in this process); each gets "
        "max(1, cores // N) torch threads (see --threads)",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the sweep; SIGINT or SIGTERM stops the workers and exits with one line.

    Interrupted runs are resumable: rerunning the same command reuses finished runs
    and continues the others from their last checkpoint.
    """
    from robustcompress.experiments.executor import Interrupted, stop_on_signals

    try:
        with stop_on_signals():
            return _sweep(args)
    except Interrupted as stop:
        rerun = f"robustcompress sweep {args.sweep}"
        if args.runs_dir:
            rerun += f" --runs-dir {args.runs_dir}"
        print(f"error: {stop.message(rerun)}", file=sys.stderr)
        return stop.exit_status


def _sweep(args: argparse.Namespace) -> int:
    from robustcompress.device import check_threads
    from robustcompress.experiments import load_sweep, run_sweep

    check_threads(args.threads)
    sweep = load_sweep(args.sweep)
    total = len(sweep.points)
    print(f"sweep {sweep.name}: {total} runs, {args.workers} worker(s)", file=sys.stderr)
    finished = 0

    def on_done(point: Any, record: Any, error: str | None) -> None:
        nonlocal finished
        finished += 1
        state = f"failed: {error}" if error else f"{record.status} ({record.run_dir})"
        print(f"[{finished}/{total}] {point.config.name}: {state}", file=sys.stderr)

    with executor_from_args(args, args.workers) as executor:
        result = run_sweep(sweep, executor, runs_dir=args.runs_dir, on_done=on_done)
    if args.json:
        print_json({"summary_file": str(result.path), "summary": result.summary})
    else:
        print_summary(result.summary, sweep.name)
        print(f"summary written to {result.path}", file=sys.stderr)
    return 1 if result.errors else 0


def print_summary(summary: list[dict[str, Any]], title: str) -> None:
    """One row per variant and grid point: mean ± std of the headline metrics."""
    headline = headline_metrics(row["metrics"] for row in summary)
    rows = []
    for row in summary:
        out: dict[str, Any] = {"variant": row["variant"] or "-"}
        out["params"] = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        notes = [f"{n} {status} left out" for status, n in (row.get("excluded") or {}).items()]
        if row.get("near_chance"):
            notes.append(f"{row['near_chance']} near chance")
        out["runs"] = f"{row['runs']} ({', '.join(notes)})" if notes else row["runs"]
        for metric in headline:
            stats = row["metrics"].get(metric) or {}
            mean, std = stats.get("mean"), stats.get("std")
            out[metric] = "" if mean is None else f"{mean:.4f} ± {std:.4f}"
        rows.append(out)
    print_table(rows, ["variant", "params", "runs", *headline], title=title)

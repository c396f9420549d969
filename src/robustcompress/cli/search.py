"""``robustcompress search SPACE.yaml``: a multi-objective search over training settings."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from robustcompress.cli.output import print_json, print_table
from robustcompress.cli.run import (
    add_pool_flags,
    executor_from_args,
)

if TYPE_CHECKING:
    from robustcompress.reporting.search import SearchReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="multi-objective search (Optuna) over regularizers, pruning and adversarial "
        "fine-tuning; the Pareto front and its report",
        description=(
            "Search the space in SPACE.yaml (see examples/search-fcnn.yaml) for the Pareto "
            "front of its objectives, e.g. clean accuracy against the PGD fooling ratio. "
            "Every trial is an ordinary cached run; the Optuna study is stored in "
            "<runs dir>/searches/<name>/study.db, so rerunning the command continues a "
            "killed search without repeating finished trials. Writes search.json and the "
            "report (report.html, report.json) beside the study. Needs "
            "pip install 'robustcompress[search]'."
        ),
    )
    p.add_argument("space", metavar="SPACE.yaml", help="search space file (see examples/)")
    p.add_argument(
        "--n-trials",
        type=int,
        default=None,
        metavar="N",
        help="end once N trials have ended, counting those of earlier sessions "
        "(default: the space's n_trials)",
    )
    p.add_argument(
        "--held-out",
        type=int,
        default=None,
        metavar="N",
        help="after the search, measure the front, the reference points and the start "
        "again on N test images the runs did not track (the front was selected on the "
        "tracked ones); cached, shown in the report (held-out.json)",
    )
    p.add_argument(
        "--markdown",
        metavar="FILE",
        default=None,
        help="also write the front and reference tables as Markdown to FILE",
    )
    p.add_argument(
        "--paper-grid",
        metavar="DIR",
        default=None,
        help="a Langenberg reproduction directory whose final models the report plots "
        "beside the front (optional; a different training setting unless the same)",
    )
    add_pool_flags(
        p,
        workers_default=1,
        workers_help="trials in flight at a time, each in its own worker process (default 1)",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the search; SIGINT or SIGTERM stops it, and rerunning continues it."""
    from robustcompress.experiments.executor import Interrupted, stop_on_signals

    try:
        with stop_on_signals():
            return _search(args)
    except Interrupted as stop:
        rerun = f"robustcompress search {args.space}"
        if args.runs_dir:
            rerun += f" --runs-dir {args.runs_dir}"
        print(
            f"error: {stop.args[0]}: search stopped; finished trials are kept in its study and "
            f"trials in flight continue from their runs' last checkpoints: rerun `{rerun}`",
            file=sys.stderr,
        )
        return stop.exit_status


def _search(args: argparse.Namespace) -> int:
    from robustcompress.device import check_threads
    from robustcompress.experiments.search import load_space, require_optuna, run_search
    from robustcompress.reporting.search import make_search_report

    require_optuna()
    check_threads(args.threads)
    from robustcompress.errors import ConfigError

    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError(f"--n-trials must be ≥ 1, got {args.n_trials}")
    if args.held_out is not None and args.held_out < 1:
        raise ConfigError(f"--held-out must be ≥ 1 test images, got {args.held_out}")
    space = load_space(args.space)
    total = args.n_trials or space.config.n_trials
    print(
        f"search {space.name}: {total} trials, sampler {space.config.sampler}, "
        f"{args.workers} worker(s)",
        file=sys.stderr,
    )

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with executor_from_args(args, args.workers) as executor:
        result = run_search(
            space,
            executor,
            workers=args.workers,
            runs_dir=args.runs_dir,
            n_trials=args.n_trials,
            on_event=say,
        )
        if args.held_out:
            from robustcompress.experiments.held_out import evaluate_held_out

            evaluate_held_out(result.directory, args.held_out, executor, log=say)
    report = make_search_report(result.directory, paper_grid=args.paper_grid)
    done = f"wrote {report.html_path} (search directory {result.directory})"
    return show_search_report(report, args, done, sys.stderr)


def show_search_report(
    report: SearchReport, args: argparse.Namespace, done: str, stream: TextIO
) -> int:
    """What ``search`` and ``report`` print of a search's report: ``--markdown`` written,
    then ``--json`` or the front as a table and ``done`` (on ``stream``)."""
    if args.markdown:
        from pathlib import Path

        from robustcompress.reporting.search import search_markdown

        Path(args.markdown).write_text(search_markdown(report), encoding="utf-8")
    if args.json:
        print_json(report.to_dict())
        return 0
    table = report.front_table
    print(table.title)
    print_table([dict(zip(table.columns, row, strict=True)) for row in table.rows], table.columns)
    print(done, file=stream)
    return 0

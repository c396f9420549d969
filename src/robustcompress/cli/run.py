"""``robustcompress run CONFIG.yaml``: train one config, or return its stored run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.device import check_threads
from robustcompress.errors import ConfigError
from robustcompress.experiments.store import RunRecord

if TYPE_CHECKING:
    from robustcompress.experiments.executor import Executor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train one run config (a finished config returns its stored run)",
        description=(
            "Train the run described by CONFIG.yaml into <runs dir>/<name>-<config hash>/. "
            "A config that already finished is not retrained; a killed one continues "
            "from its last checkpoint."
        ),
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="run config (see examples/)")
    add_runs_dir_flag(p)
    add_device_flag(p)
    add_threads_flag(p)
    add_json_flag(p)
    p.set_defaults(func=handle)


def add_runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        default=None,
        help="runs root (default: $ROBUSTCOMPRESS_RUNS, else ./runs)",
    )


def add_executor_flag(parser: argparse.ArgumentParser) -> None:
    """``--executor NAME`` and ``--ray-address ADDR``; build the executor with
    :func:`executor_from_args`."""
    parser.add_argument(
        "--executor",
        default="auto",
        metavar="NAME",
        help="where runs execute: serial (this process), process (a local pool of "
        "--workers processes), ray (Ray tasks: on --ray-address, else on a Ray instance "
        "started here with --workers slots; pip install 'robustcompress[ray]') or auto "
        "(serial for one worker, else process)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="with --executor ray: the Ray cluster to connect to (host:port or auto; "
        "default: $RAY_ADDRESS, else a Ray instance started here); every node must see "
        "the runs root at the same path",
    )


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen executor's own settings from ``args`` (``--ray-address``)."""
    address = getattr(args, "ray_address", None)
    if address is None:
        return {}
    if args.executor != "ray":
        raise ConfigError(f"--ray-address is for --executor ray, not {args.executor!r}")
    return {"address": address}


def executor_from_args(args: argparse.Namespace, workers: int) -> Executor:
    """The executor of a command with :func:`add_executor_flag`, :func:`add_runs_dir_flag`,
    :func:`add_device_flag` and :func:`add_threads_flag` (``sweep``, and any command that
    runs configs)."""
    from robustcompress.experiments import make_executor

    return make_executor(
        workers,
        executor=args.executor,
        runs_dir=args.runs_dir,
        device=args.device,
        progress=False,
        threads=check_threads(args.threads),
        options=executor_options(args),
    )


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="auto, cpu, cuda or cuda:N (default: the config's device)",
    )


def add_threads_flag(parser: argparse.ArgumentParser, default: str = "torch's: every core") -> None:
    """``--threads N``: torch threads per process (validated by :func:`check_threads`)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help=f"torch threads per process, N ≥ 1 (default: {default})",
    )


def add_pool_flags(
    parser: argparse.ArgumentParser, *, workers_default: int | None, workers_help: str
) -> None:
    """The flags of commands that run many runs: ``--workers`` (``workers_default``,
    ``workers_help``), ``--threads``, ``--executor``/``--ray-address``, ``--runs-dir``,
    ``--device`` and ``--json``."""
    parser.add_argument(
        "--workers", type=int, default=workers_default, metavar="N", help=workers_help
    )
    add_threads_flag(
        parser, default="max(1, cores // workers) for a pool, every core for one worker"
    )
    add_executor_flag(parser)
    add_runs_dir_flag(parser)
    add_device_flag(parser)
    add_json_flag(parser)


def handle(args: argparse.Namespace) -> int:
    from robustcompress.device import set_threads
    from robustcompress.experiments import run

    set_threads(args.threads)
    record = run(args.config, runs_dir=args.runs_dir, device=args.device)
    show_record(record, args.json)
    return 0 if record.status == "finished" else 1


def show_record(record: RunRecord, as_json: bool) -> None:
    """Print a run's status and final metrics (a table, or JSON with ``--json``)."""
    if as_json:
        print_json(record.to_dict())
        return
    done, total = record.progress()
    print(f"{record.run_dir}: {record.status} ({done}/{total} epochs)", file=sys.stderr)
    rows = [{"metric": k, "value": v} for k, v in record.final.items()]
    if rows:
        print_table(rows, ["metric", "value"], title=f"{record.name} ({record.config_hash})")
    timing = record.summary.get("timing") or {}
    if timing:
        print(
            f"time: training {timing.get('training_s', 0):.1f} s, tracking "
            f"{timing.get('tracking_s', 0):.1f} s "
            f"({100 * timing.get('tracking_fraction', 0):.0f}% of the total), "
            f"checkpoints {timing.get('checkpointing_s', 0):.1f} s"
        )

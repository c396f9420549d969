"""``robustcompress resume RUN_DIR``: continue a killed or interrupted run."""

from __future__ import annotations

import argparse

from robustcompress.cli.output import add_json_flag
from robustcompress.cli.run import add_device_flag, show_record


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue a run from its last checkpoint",
        description=(
            "Continue the run in RUN_DIR from its last checkpoint; it ends with the same "
            "metrics as a run never interrupted. A finished run is left as it is."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (runs/<name>-<hash>)")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from robustcompress.experiments import resume

    record = resume(args.run_dir, device=args.device)
    show_record(record, args.json)
    return 0 if record.status == "finished" else 1

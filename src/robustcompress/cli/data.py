"""``robustcompress data``: where each data set was found and whether it verifies."""

from __future__ import annotations

import argparse
from typing import Any

from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.data.locate import ENV_VAR, DatasetStatus, dataset_statuses


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="list the data sets, where they were found and whether their checksums verify",
        description=(
            "List each known data set and the folder it was found in, searching the "
            f"--root folder, ${ENV_VAR}, the user cache and /usr/share/datasets in that "
            "order. With --verify, also check every file's checksum (exit status 1 on a "
            "mismatch)."
        ),
    )
    p.add_argument(
        "--root",
        "--data-root",
        dest="root",
        metavar="DIR",
        help="data root searched first (layout DIR/<name>/<files>)",
    )
    p.add_argument("--verify", action="store_true", help="compute and check the files' checksums")
    add_json_flag(p)
    p.set_defaults(func=run)


def _record(status: DatasetStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "title": status.title,
        "found": status.found,
        "generated": status.generated,
        "directory": None if status.directory is None else str(status.directory),
        "origin": status.origin or None,
        "searched": [str(p) for p in status.searched],
        "verified": status.verified,
        "files": [
            {
                "name": c.name,
                "path": None if c.path is None else str(c.path),
                "status": c.status,
                "detail": c.detail,
            }
            for c in status.files
        ],
    }


def _row(status: DatasetStatus, verify: bool) -> dict[str, str]:
    if status.generated:
        return {"name": status.name, "status": "generated", "location": "-", "checksums": "-"}
    if not status.found:
        looked = ", ".join(str(p) for p in status.searched)
        return {
            "name": status.name,
            "status": "missing",
            "location": f"looked in {looked}",
            "checksums": "-",
        }
    if not verify:
        checksums = "not checked (--verify)"
    elif status.verified:
        kinds = sorted({c.status for c in status.files})
        checksums = "ok" if kinds == ["ok"] else "ok (" + ", ".join(kinds) + ")"
    else:
        bad = [c.name for c in status.files if c.status == "mismatch"]
        checksums = "MISMATCH: " + ", ".join(bad)
    return {
        "name": status.name,
        "status": "found",
        "location": f"{status.directory} ({status.origin})",
        "checksums": checksums,
    }


def run(args: argparse.Namespace) -> int:
    statuses = dataset_statuses(args.root, verify=args.verify)
    if args.json:
        print_json([_record(s) for s in statuses])
    else:
        print_table(
            [_row(s, args.verify) for s in statuses], ["name", "status", "location", "checksums"]
        )
    return 1 if any(s.verified is False for s in statuses) else 0

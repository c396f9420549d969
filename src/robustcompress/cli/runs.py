"""``robustcompress runs``: every run with its status, progress and headline metrics."""

from __future__ import annotations

import argparse

from robustcompress.catalogue import headline
from robustcompress.cli.output import add_json_flag, print_json, print_table
from robustcompress.cli.run import add_runs_dir_flag
from robustcompress.experiments.store import STATUSES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list runs: status, progress and headline metrics",
        description=(
            "List the runs under the runs root: status (running, finished, failed, "
            "incomplete), epochs done, final accuracy and fooling ratios, and why a "
            "failed run failed (one line; --json gives it as 'reason')."
        ),
    )
    add_runs_dir_flag(p)
    p.add_argument("--status", choices=STATUSES, default=None, help="only runs with this status")
    add_json_flag(p)
    p.set_defaults(func=handle)


NEAR_CHANCE_NOTE = "near chance accuracy: its fooling ratios are not robustness"


def handle(args: argparse.Namespace) -> int:
    from robustcompress.evaluation.masking import run_near_chance
    from robustcompress.experiments import list_runs, runs_root

    records = [r for r in list_runs(args.runs_dir) if args.status in (None, r.status)]
    if args.json:
        print_json([r.to_dict() for r in records])
        return 0
    if not records:
        print(f"no runs in {runs_root(args.runs_dir)}")
        return 0
    headline = headline_metrics(r.final for r in records)
    rows = []
    for r in records:
        done, total = r.progress()
        row: dict[str, object] = {
            "run": r.run_dir.name,
            "status": r.status,
            "epochs": f"{done}/{total}",
        }
        row.update({m: r.final.get(m) for m in headline})
        near = r.status == "finished" and run_near_chance(r.config, r.final)
        row["reason"] = r.reason or (
            "near chance accuracy: its fooling ratios are not robustness" if near else ""
        )
        rows.append(row)
    columns = ["run", "status", "epochs", *headline]
    if any(row["reason"] for row in rows):
        columns.append("reason")
    print_table(rows, columns, title=str(runs_root(args.runs_dir)))
    return 0


def headline_metrics(finals: object) -> list[str]:
    """Accuracy, then every fooling ratio present, in first-seen order."""
    seen: dict[str, None] = {}
    for final in finals:  # type: ignore[attr-defined]
        for key in final:
            if headline(key):
                seen.setdefault(key)
    return sorted(seen, key=lambda k: (k != "accuracy", list(seen).index(k)))

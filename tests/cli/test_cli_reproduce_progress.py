"""The progress lines of ``robustcompress reproduce``: start and end of each run with
[done/total], elapsed time and an ETA (robustcompress.experiments.recipes.base.RunLines)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from robustcompress.experiments.recipes.base import RunLines
from robustcompress.experiments.store import LOCK_FILE


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_start_and_end_lines_with_elapsed_and_eta(tmp_path: Path) -> None:
    said: list[str] = []
    clock = FakeClock()
    dirs = {name: tmp_path / name for name in ("a", "b", "c", "old")}
    lines = RunLines(dirs, {"old"}, said.append, clock=clock)
    lines.finished("old", "finished")
    lines.started("a")
    lines.started("a")  # said once
    clock.now = 60.0
    lines.finished("a", "finished")
    lines.started("b")
    clock.now = 90.0
    lines.finished("b", "failed: boom")
    assert said == [
        "[1/4] old: finished (reused); elapsed 0:00, ETA ?",
        "[1/4] a: started; elapsed 0:00, ETA ?",
        "[2/4] a: finished in 1:00; elapsed 1:00, ETA 2:00",  # 2 runs left at 60 s a run
        "[2/4] b: started; elapsed 1:00, ETA 2:00",
        "[3/4] b: failed: boom (after 0:30); elapsed 1:30, ETA 0:45",
    ]


def test_runs_in_other_processes_are_seen_by_their_lock_files(tmp_path: Path) -> None:
    said: list[str] = []
    dirs = {name: tmp_path / name for name in ("new", "stale", "reused")}
    for run_dir in dirs.values():
        run_dir.mkdir()
        (run_dir / LOCK_FILE).write_text("1 now\n")
    old = time.time() - 3600
    os.utime(dirs["stale"] / LOCK_FILE, (old, old))  # taken by an earlier call
    lines = RunLines(dirs, {"reused"}, said.append)
    lines.check_locks()
    lines.check_locks()
    assert [line.split(";")[0] for line in said] == ["[0/3] new: started"]

"""``robustcompress sweep --workers 2`` killed or stopped: no process of it survives.

Each test starts the sweep as a real subprocess in its own session (``setsid``), so
every process it starts — the two workers and the multiprocessing resource tracker
— carries the driver's pid as its session id; after the driver is killed, a scan of
``/proc`` for that session (zombies excepted: they are dead, waiting to be reaped by
PID 1) must come up empty within a few seconds. The runs train on the generated
``synthetic-subspace`` set, so no data files are needed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import robustcompress

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

BASE: dict[str, Any] = {
    "data": {"dataset": "synthetic-subspace", "limit": 128},
    "model": {"name": "fcnn", "kwargs": {"hidden": [16]}},
    "optimizer": {"epochs": 10_000, "batch_size": 64, "lr": 0.05},
    "tracking": {"eval_size": 16, "attacks": {}},
    "device": "cpu",
}
"""A run that would take hours: it is always interrupted."""

STARTUP_S = 240.0
"""Spawning two workers that import torch takes long on a loaded 2-core machine."""

GONE_S = 10.0
"""How long the workers and the resource tracker may take to die after the driver."""


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, session)`` of ``pid`` from ``/proc/<pid>/stat``, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def _processes() -> dict[int, tuple[str, int, int]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            out[int(entry.name)] = stat
    return out


def _live_in_session(session: int) -> list[int]:
    """Processes of ``session`` that are not zombies."""
    return sorted(
        p for p, (state, _, sid) in _processes().items() if sid == session and state != "Z"
    )


def _descendants(root: int) -> set[int]:
    table = _processes()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, (_, ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _wait_for(condition: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the sweep exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _worker_pids(runs: Path) -> set[int]:
    """Pids named by the runs' first log line (``run <dir> on cpu (pid N)``)."""
    pids = set()
    for log in runs.glob("*/log.txt"):
        match = re.search(r"\(pid (\d+)\)", log.read_text())
        if match:
            pids.add(int(match.group(1)))
    return pids


def _write_sweep(path: Path, **sweep: Any) -> Path:
    path.write_text(yaml.safe_dump({"name": "hygiene", "base": BASE, **sweep}, sort_keys=False))
    return path


class Sweep:
    """A ``robustcompress sweep`` subprocess in its own session (session id = its pid)."""

    def __init__(self, sweep: Path, runs: Path, log: Path, *args: str) -> None:
        env = dict(os.environ)
        src = str(Path(robustcompress.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        self.log = log
        self.argv = [sys.executable, "-m", "robustcompress.cli", "sweep", str(sweep)]
        self.argv += ["--runs-dir", str(runs), *args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.log.read_text()


@pytest.fixture
def sweeps() -> Iterator[list[Sweep]]:
    """Started sweeps; whatever is left of their sessions is killed at the end."""
    started: list[Sweep] = []
    yield started
    for sweep in started:
        if sweep.proc.poll() is None:
            sweep.proc.kill()
            sweep.proc.wait()
        for pid in _live_in_session(sweep.pid):
            os.kill(pid, signal.SIGKILL)


def _assert_session_gone(sweep: Sweep, before: set[int]) -> None:
    deadline = time.monotonic() + GONE_S
    while (left := _live_in_session(sweep.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    details = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left}
    assert not left, f"still alive {GONE_S:.0f} s after the driver: {details}"
    alive = [p for p in before if (s := _stat(p)) is not None and s[0] != "Z"]
    assert not alive, f"children of the driver still alive: {alive}"


def test_sigkill_of_the_driver_takes_workers_and_tracker_with_it(
    tmp_path: Path, sweeps: list[Sweep]
) -> None:
    runs = tmp_path / "runs"
    path = _write_sweep(tmp_path / "sweep.yaml", grid={"seed": [0, 1]})
    sweep = Sweep(path, runs, tmp_path / "sweep.log", "--workers", "2")
    sweeps.append(sweep)
    _wait_for(lambda: len(_worker_pids(runs)) == 2, STARTUP_S, "both workers' runs", sweep.proc)
    children = _descendants(sweep.pid)
    workers = _worker_pids(runs)
    assert workers <= children and len(children) >= 3  # two workers and the resource tracker
    sweep.proc.send_signal(signal.SIGKILL)
    assert sweep.proc.wait(timeout=10) == -signal.SIGKILL
    _assert_session_gone(sweep, children)


def test_sigint_of_the_process_group_stops_the_workers(tmp_path: Path, sweeps: list[Sweep]) -> None:
    """Ctrl-C at a terminal: SIGINT reaches the driver and the workers alike."""
    runs = tmp_path / "runs"
    path = _write_sweep(tmp_path / "sweep.yaml", grid={"seed": [0, 1]})
    sweep = Sweep(path, runs, tmp_path / "sweep.log", "--workers", "2")
    sweeps.append(sweep)
    _wait_for(lambda: len(_worker_pids(runs)) == 2, STARTUP_S, "both workers' runs", sweep.proc)
    children = _descendants(sweep.pid)
    os.killpg(sweep.pid, signal.SIGINT)
    assert sweep.proc.wait(timeout=30) == 130
    last = sweep.stderr().strip().splitlines()[-1]
    assert last.startswith("error: interrupted by SIGINT: runs in progress stopped;"), (
        sweep.stderr()
    )
    assert "Traceback" not in sweep.stderr()
    _assert_session_gone(sweep, children)


LONG: dict[str, Any] = {"data": {"limit": 1000}, "optimizer": {"epochs": 40, "batch_size": 8}}
"""40 epochs of 125 steps: seconds even on a fast machine, so the driver's SIGTERM, sent
within 0.2 s of both runs' first checkpoint (end of epoch 1), finds them running (2 steps
per epoch once let a fast CI machine finish all 40 epochs before the signal)."""


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("ckpt-*.safetensors"))


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    import json

    return json.loads(path.read_text()) if path.exists() else {}


def test_sigterm_stops_workers_and_a_rerun_resumes(tmp_path: Path, sweeps: list[Sweep]) -> None:
    """Two one-epoch runs finish, two 5,000-step runs are stopped mid-way, then resumed."""
    runs = tmp_path / "runs"
    path = _write_sweep(
        tmp_path / "sweep.yaml",
        variants={"quick": {"optimizer": {"epochs": 1}}, "long": LONG},
        grid={"seed": [0, 1]},
    )
    sweep = Sweep(path, runs, tmp_path / "sweep.log", "--workers", "2")
    sweeps.append(sweep)

    def long_runs_checkpointed() -> bool:
        quick = sorted(runs.glob("hygiene-quick-*"))
        long = sorted(runs.glob("hygiene-long-*"))
        return (
            len(quick) == 2
            and all(_summary(d).get("status") == "finished" for d in quick)
            and len(long) == 2
            and all(_checkpoints(d) for d in long)
        )

    _wait_for(long_runs_checkpointed, STARTUP_S, "the long runs' first checkpoints", sweep.proc)
    children = _descendants(sweep.pid)
    sweep.proc.send_signal(signal.SIGTERM)
    assert sweep.proc.wait(timeout=30) == 128 + signal.SIGTERM
    last = sweep.stderr().strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: interrupted by SIGTERM: runs in progress stopped; finished runs are kept and "
        r"unfinished ones continue from their last checkpoint: rerun `robustcompress sweep "
        r".*sweep\.yaml --runs-dir .*` \(or `robustcompress resume RUN_DIR` for one run\)",
        last,
    ), sweep.stderr()
    assert "Traceback" not in sweep.stderr()
    _assert_session_gone(sweep, children)

    long = sorted(runs.glob("hygiene-long-*"))
    assert all(_summary(d).get("status") != "finished" for d in long)  # really interrupted
    quick = {d: (d / "summary.json").read_bytes() for d in runs.glob("hygiene-quick-*")}

    rerun = Sweep(path, runs, tmp_path / "rerun.log", "--workers", "2")
    sweeps.append(rerun)
    assert rerun.proc.wait(timeout=600) == 0, rerun.stderr()
    assert {d: (d / "summary.json").read_bytes() for d in quick} == quick  # reused as they were
    for run_dir in long:
        summary = _summary(run_dir)
        assert summary["status"] == "finished" and summary["epochs"] == 40
        assert summary["resumed_from_step"] > 0  # continued, not restarted

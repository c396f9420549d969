"""Process hygiene of the executors: threads per worker, dying with the driver, stopping.

The end-to-end checks (SIGKILL / SIGINT / SIGTERM of ``robustcompress sweep --workers
2``) are in ``tests/cli/test_cli_sweep_signals.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
import torch

import robustcompress
from robustcompress.errors import ConfigError
from robustcompress.experiments.executor import (
    EXECUTORS,
    Executor,
    Interrupted,
    LocalProcessExecutor,
    SequentialExecutor,
    make_executor,
    register_executor,
    stop_on_signals,
    threads_per_worker,
)


def _worker_info() -> tuple[int, int, int]:
    """``(pid, parent pid, torch threads)`` of the process running the job."""
    return os.getpid(), os.getppid(), torch.get_num_threads()


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# ------------------------------------------------------------------ threads


def test_threads_are_validated_with_one_line_errors() -> None:
    from robustcompress.device import check_threads

    assert check_threads(None) is None and check_threads(3) == 3
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ConfigError, match=r"^--threads must be ≥ 1 \(torch threads per "):
            check_threads(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--threads must be ≥ 1"):
        make_executor(1, threads=0)
    with pytest.raises(ConfigError, match="--threads must be ≥ 1"):
        LocalProcessExecutor(2, threads=0)


def test_serial_executor_sets_and_restores_the_threads(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with make_executor(1, runs_dir=tmp_path, threads=target) as ex:
        assert torch.get_num_threads() == target == ex.threads  # type: ignore[attr-defined]
        assert ex.submit_job(torch.get_num_threads).result() == target
    assert torch.get_num_threads() == before
    with make_executor(1, runs_dir=tmp_path) as ex:  # no --threads: torch's default
        assert torch.get_num_threads() == before


def test_threads_reach_factories_only_when_set(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def factory(workers: int, **kwargs: Any) -> Executor:
        seen.append(kwargs)
        return SequentialExecutor(runs_dir=kwargs["runs_dir"])

    register_executor("recording", factory)
    try:
        make_executor(1, executor="recording", runs_dir=tmp_path).close()
        make_executor(1, executor="recording", runs_dir=tmp_path, threads=3).close()
    finally:
        EXECUTORS.pop("recording", None)
    assert [s.get("threads") for s in seen] == [None, 3]
    assert "threads" not in seen[0]  # a factory without the keyword keeps working
    with pytest.raises(ConfigError, match="--threads must be ≥ 1"):
        make_executor(1, runs_dir=tmp_path, threads=0)


def test_process_pool_threads_default_to_a_share_of_the_cores() -> None:
    pool = LocalProcessExecutor(2)
    try:
        assert pool.threads == threads_per_worker(2)
    finally:
        pool.close()  # nothing was started
    assert LocalProcessExecutor(3, threads=2).threads == 2


# ------------------------------------------------------------------ signals


def test_interrupted_names_the_signal_status_and_how_to_resume() -> None:
    stop = Interrupted(signal.SIGTERM)
    assert isinstance(stop, KeyboardInterrupt)  # a run in this process stops as on Ctrl-C
    assert stop.exit_status == 143 and Interrupted(signal.SIGINT).exit_status == 130
    line = stop.message("robustcompress sweep s.yaml")
    assert "\n" not in line
    assert line.startswith(
        "interrupted by SIGTERM: runs in progress stopped; finished runs are kept"
    )
    assert "rerun `robustcompress sweep s.yaml`" in line and "robustcompress resume" in line


def test_stop_on_signals_raises_once_and_restores_the_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises long before
    assert caught.value.signum == signal.SIGTERM
    assert {s: signal.getsignal(s) for s in before} == before

    interrupted = False
    with stop_on_signals():  # a second signal while stopping is ignored
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Interrupted:
            interrupted = True
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # would raise here if not ignored
    assert interrupted  # the first signal did raise
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_on_signals_is_a_no_op_outside_the_main_thread() -> None:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            with stop_on_signals():
                pass
        except BaseException as exc:  # pragma: no cover (the failure being tested)
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert errors == []


class _Recording(SequentialExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def close(self) -> None:
        self.calls.append("close")

    def terminate(self) -> None:
        self.calls.append("terminate")


def test_interruptions_terminate_and_errors_close() -> None:
    for raised, expected in (
        (None, "close"),
        (ValueError("bug"), "close"),
        (KeyboardInterrupt(), "terminate"),
        (Interrupted(signal.SIGTERM), "terminate"),
        (SystemExit(1), "terminate"),
    ):
        executor = _Recording()
        with contextlib.suppress(BaseException), executor:
            if raised is not None:
                raise raised
        assert executor.calls == [expected], raised


# ------------------------------------------------------------- real workers


@pytest.mark.slow
def test_workers_outlive_the_thread_that_spawned_them_and_use_their_threads() -> None:
    """``PR_SET_PDEATHSIG`` fires when the spawning *thread* exits; workers must not die.

    ProcessPoolExecutor spawns a worker in the thread that calls ``submit``. Here that
    thread waits for the first result (so the worker's initializer ran while it was
    alive), then exits; the worker must still serve the next job, from the main thread.
    """
    pool = LocalProcessExecutor(1, threads=1)
    first: dict[str, Any] = {}
    try:
        thread = threading.Thread(
            target=lambda: first.update(info=pool.submit_job(_worker_info).result(timeout=240))
        )
        thread.start()
        thread.join()
        pid, parent, threads = first["info"]
        assert parent == os.getpid() and threads == 1  # --threads applied in the worker
        time.sleep(1.0)  # the death signal, and two watchdog rounds, have come and gone
        assert pool.submit_job(_worker_info).result(timeout=60) == (pid, os.getpid(), 1)
        assert pool.worker_pids() == [pid]
    finally:
        pool.close()
    assert not _alive(pid)


@pytest.mark.slow
def test_terminate_cancels_pending_jobs_and_stops_workers_at_once() -> None:
    pool = LocalProcessExecutor(2)
    infos = [pool.submit_job(_worker_info) for _ in range(2)]
    threads = {f.result(timeout=240)[2] for f in infos}
    assert threads == {threads_per_worker(2)}  # every worker, jobs and runs alike
    running = [pool.submit_job(_sleep, 120) for _ in range(2)]
    pending = pool.submit_job(_sleep, 120)
    time.sleep(1.0)  # both workers are sleeping; the third job waits
    workers = pool.worker_pids()
    assert len(workers) == 2
    started = time.monotonic()
    pool.terminate()
    assert time.monotonic() - started < LocalProcessExecutor.TERMINATE_GRACE_S + 10
    assert not any(_alive(pid) for pid in workers)
    for future in running:
        with pytest.raises(BrokenProcessPool):
            future.result(timeout=10)
    assert pending.cancelled() or isinstance(pending.exception(timeout=10), BrokenProcessPool)
    with pytest.raises((RuntimeError, BrokenProcessPool, CancelledError)):
        pool.submit_job(_worker_info).result(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_watchdog_alone_ends_an_orphaned_worker(tmp_path: Path) -> None:
    """Without the death signal (as off Linux), the getppid watchdog still fires."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from robustcompress.experiments import executor
        executor._PARENT_DEATH_SIGNAL = None  # the portable path only
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            executor.die_with_parent(os.getppid(), interval=0.1)
            os.write(write, b"ready")
            time.sleep(60)
            os._exit(0)
        os.close(write)
        os.read(read, 5)
        print(child, flush=True)
        os._exit(0)  # the "driver" dies without cleaning up
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(robustcompress.__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(child):  # pragma: no cover (the failure being tested)
        os.kill(child, signal.SIGKILL)
        pytest.fail("the orphaned child outlived its watchdog")

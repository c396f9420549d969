"""Executors: where runs (and other jobs of a reproduction) execute, chosen by name.

An executor runs configs — ``submit(config) -> Future[RunRecord]`` — and plain jobs
— ``submit_job(function, *args) -> Future`` for a module-level function such as a
reproduction's gradient-masking check. Executors are registered by name
(:func:`register_executor`) and built by :func:`make_executor` (``--executor`` on
the command line):

``serial``
    :class:`SequentialExecutor`: this process, one job after the other.
``process``
    :class:`LocalProcessExecutor`: a pool of ``workers`` processes started with the
    *spawn* method (no forked torch state), each limited to
    ``max(1, cores // workers)`` torch threads so the pool does not oversubscribe
    the machine.
``ray``
    :class:`~robustcompress.experiments.ray_executor.RayExecutor`: every run is one
    task on a Ray cluster (``--ray-address``) or on a Ray instance started here; the
    extra ``pip install 'robustcompress[ray]'``. Resources, the shared runs root (checked
    on every node before anything runs), run locks across nodes, retries of killed
    workers and stopping are described in :mod:`robustcompress.experiments.ray_executor`.
``auto`` (the default)
    ``serial`` for one worker, else ``process``.

What an executor may assume, and what a new one (e.g. a cluster engine) must keep:

* configs travel as plain data (:func:`request_for`) and :func:`execute` runs one
  request anywhere robustcompress is installed (the same version);
* every worker sees the runs root at the same path (a shared file system for
  several machines): runs write their directories there and fine-tuning runs read
  the checkpoints of the runs they start from;
* workers are fresh interpreters: a recipe, metric or training extra registered at
  run time in the driver must live in a module the workers import too (a paper
  package, or a module named in the config), not only in a script or a test;
* a job's function and arguments must be picklable (module-level functions).

Threads
-------
Each process of a pool runs torch with ``max(1, cores // workers)`` intra-op threads
(:func:`threads_per_worker`, set by the worker initializer before any job, so runs and
plain jobs such as the masking checks get it alike); ``threads`` (``--threads N`` on
the command line, passed down to :func:`make_executor`) overrides it with N threads per
process. The serial executor leaves torch's
default (every core) unless ``threads`` is given. On a busy machine more threads than
free cores mostly buy waiting: ``benchmarks/threads.py`` measures it.

Process hygiene
---------------
A pool's workers die with the process that owns the pool, however it ends:

* **SIGKILL of the driver** (or any death that runs no Python code). Each worker
  asks the kernel, in its initializer, for ``SIGUSR1`` when its parent goes away
  (Linux ``prctl(PR_SET_PDEATHSIG)``) and exits on it if ``os.getppid()`` is no
  longer the pool owner's pid; a daemon watchdog thread does the same check every
  :data:`WATCHDOG_INTERVAL_S` seconds. Why not simply ``PR_SET_PDEATHSIG(SIGKILL)``:
  the kernel sends the signal when the *thread* that spawned the worker exits, and
  :class:`~concurrent.futures.ProcessPoolExecutor` spawns workers lazily in
  whichever thread calls ``submit`` — a pool fed from a short-lived thread would
  lose healthy workers (``tests/experiments/test_executor_hygiene.py`` checks that
  it does not). The ``getppid`` check tells a thread's exit (same parent pid) from
  the driver's death (the worker is re-parented). The watchdog is the portable
  fallback (no ``prctl`` outside Linux) and fires even when the worker's main thread
  sits in native code and cannot run a signal handler. The multiprocessing resource
  tracker needs nothing: it exits when the last process holding its pipe (driver
  and workers) is gone.
* **SIGTERM or SIGINT of the driver**. Inside :func:`stop_on_signals` (the ``sweep``
  and ``reproduce`` commands) either signal raises :class:`Interrupted` in the main
  thread; leaving the executor's ``with`` block by it calls :meth:`Executor.terminate`:
  pending jobs are cancelled and the workers get SIGTERM (SIGKILL after a grace
  period). The command exits with ``128 + signal`` and one line saying how to resume.
  Workers ignore SIGINT themselves (a Ctrl-C at a terminal reaches the whole process
  group; the driver decides), and SIGINT is blocked while a worker is spawned so it
  cannot strike before the initializer runs.

A worker killed mid-run leaves a resumable run: its ``flock`` dies with it and the
trainer's last checkpoint is complete (written atomically), so rerunning the sweep
or ``robustcompress resume RUN_DIR`` continues it, and finished runs are reused.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from robustcompress.device import check_threads
from robustcompress.errors import ConfigError
from robustcompress.experiments.config import RunConfig, parse_config
from robustcompress.experiments.store import RunRecord


@dataclass(frozen=True)
class RunRequest:
    """Everything a worker needs to run one config, as picklable plain data."""

    config: dict[str, Any]
    source: str
    runs_dir: str | None = None
    device: str | None = None
    dependencies: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    progress: bool | None = False
    echo: bool = False


def request_for(
    config: RunConfig,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    dependencies: Mapping[str, RunConfig] | None = None,
    progress: bool | None = False,
    echo: bool = False,
) -> RunRequest:
    """A :class:`RunRequest` for ``config`` (and the sweep runs it may start from)."""
    return RunRequest(
        config=config.to_dict(),
        source=config.source,
        runs_dir=None if runs_dir is None else os.fspath(runs_dir),
        device=device,
        dependencies={k: (v.to_dict(), v.source) for k, v in (dependencies or {}).items()},
        progress=progress,
        echo=echo,
    )


def execute(request: RunRequest) -> RunRecord:
    """Run one request (in this process): :func:`robustcompress.experiments.run`."""
    from robustcompress.experiments.runner import run

    config = parse_config(request.config, request.source)
    dependencies = {k: parse_config(d, s) for k, (d, s) in request.dependencies.items()}
    return run(
        config,
        runs_dir=request.runs_dir,
        device=request.device,
        progress=request.progress,
        echo=request.echo,
        dependencies=dependencies,
    )


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """``max(1, cores // workers)``: torch threads for each of ``workers`` processes."""
    return max(1, (cores or available_cores()) // max(1, workers))


class Executor(ABC):
    """Runs configs and hands back futures of their :class:`RunRecord`."""

    def __init__(
        self,
        *,
        runs_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
    ) -> None:
        self.runs_dir = runs_dir
        self.device = device

    @abstractmethod
    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        """Start running ``config``; the future resolves to its record (or its error)."""

    @abstractmethod
    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``function(*args)`` (module-level, picklable) like a run: same workers."""

    def map(self, configs: Iterable[RunConfig]) -> list[Future[RunRecord]]:
        """:meth:`submit` every config."""
        return [self.submit(c) for c in configs]

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release workers once their jobs are done (no-op by default)."""

    def terminate(self) -> None:
        """Stop now: cancel what has not started and stop the workers (default: :meth:`close`).

        Called instead of :meth:`close` when the ``with`` block is left by an
        interruption (:class:`KeyboardInterrupt`, :class:`Interrupted`, ``SystemExit``).
        """
        self.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and not issubclass(kind, Exception):
            self.terminate()
        else:
            self.close()


class SequentialExecutor(Executor):
    """Runs each config in this process as soon as it is submitted."""

    def __init__(
        self,
        *,
        runs_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        progress: bool | None = None,
        echo: bool = True,
        threads: int | None = None,
    ) -> None:
        import torch

        super().__init__(runs_dir=runs_dir, device=device)
        self.progress = progress
        self.echo = echo
        self._restore_threads: int | None = None
        threads = check_threads(threads)
        if threads is not None:
            self._restore_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        """Torch threads of this process while the executor is open."""

    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        from robustcompress.experiments.runner import run

        future: Future[RunRecord] = Future()
        try:
            record = run(
                config,
                runs_dir=self.runs_dir,
                device=self.device,
                progress=self.progress,
                echo=self.echo,
                dependencies=dependencies,
            )
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(record)
        return future

    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(function(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._restore_threads is not None:
            import torch

            torch.set_num_threads(self._restore_threads)
            self._restore_threads = None


# ------------------------------------------------------------ process hygiene

WATCHDOG_INTERVAL_S = 0.5
"""How often a worker's watchdog thread compares its parent pid with the pool owner's."""

ORPHAN_EXIT_STATUS = 3
"""Exit status of a worker that found its pool owner gone."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PARENT_DEATH_SIGNAL = getattr(signal, "SIGUSR1", None)


def _exit_if_orphaned(owner: int) -> None:
    """Exit at once (no cleanup, like SIGKILL) if this process's parent is no longer ``owner``."""
    if os.getppid() != owner:
        os._exit(ORPHAN_EXIT_STATUS)


_OWNER = 0
"""The pool owner's pid in a worker (set by :func:`die_with_parent`)."""


def _on_parent_death_signal(signum: int, frame: FrameType | None) -> None:
    _exit_if_orphaned(_OWNER)


def parent_death_signal(signum: int) -> bool:
    """Ask the kernel for ``signum`` when this process's parent thread exits (Linux only).

    Returns whether the request took effect. See the module docstring for why the
    signal must be checked against ``os.getppid()`` rather than kill outright.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # pragma: no cover (no libc prctl)
        return False


def die_with_parent(owner: int, interval: float = WATCHDOG_INTERVAL_S) -> None:
    """Make this process exit as soon as its parent, process ``owner``, is gone.

    Call it in the main thread. Linux: a parent-death signal whose handler checks
    the parent pid; everywhere: a daemon thread polling ``os.getppid()`` every
    ``interval`` seconds. A parent that died before this call is caught by the final
    check.
    """
    global _OWNER
    _OWNER = owner
    if _PARENT_DEATH_SIGNAL is not None:
        signal.signal(_PARENT_DEATH_SIGNAL, _on_parent_death_signal)
        parent_death_signal(_PARENT_DEATH_SIGNAL)

    def watch() -> None:
        while True:
            time.sleep(interval)
            _exit_if_orphaned(owner)

    threading.Thread(target=watch, name="robustcompress-parent-watchdog", daemon=True).start()
    _exit_if_orphaned(owner)


def _init_worker(threads: int, owner: int) -> None:
    """A pool worker's start: ignore SIGINT, die with ``owner``, use ``threads`` threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the spawner
    die_with_parent(owner)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread (inherited by a process spawned meanwhile)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover (not POSIX)
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class LocalProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes, ``max(1, cores // workers)`` threads each.

    ``threads`` overrides the threads per process. The workers die with this process
    (see the module docstring); :meth:`terminate` stops them at once.
    """

    TERMINATE_GRACE_S = 5.0
    """Seconds a worker has to exit after SIGTERM before it gets SIGKILL."""

    def __init__(
        self,
        workers: int,
        *,
        runs_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        super().__init__(runs_dir=runs_dir, device=device)
        self.workers = workers
        self.threads = check_threads(threads) or threads_per_worker(workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads, os.getpid()),
        )

    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        request = request_for(
            config, runs_dir=self.runs_dir, device=self.device, dependencies=dependencies
        )
        return self.submit_job(execute, request)

    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        with _sigint_blocked():  # submit may spawn a worker
            return self._pool.submit(function, *args)

    def worker_pids(self) -> list[int]:
        """Process ids of the workers started so far."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        """Cancel pending jobs, SIGTERM the workers (SIGKILL after a grace), and reap them.

        Jobs that were running fail with ``BrokenProcessPool``; their runs resume from
        their last checkpoint when started again.
        """
        # ProcessPoolExecutor has no public way to stop its workers before Python 3.14
        # (terminate_workers); its process table is the documented-nowhere fallback.
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        if not processes and hasattr(self._pool, "terminate_workers"):  # pragma: no cover
            self._pool.terminate_workers()
            return
        for process in processes:
            if process.exitcode is None:
                process.terminate()
        deadline = time.monotonic() + self.TERMINATE_GRACE_S
        alive = [p for p in processes if p.exitcode is None]
        while alive and time.monotonic() < deadline:
            sentinels = [p.sentinel for p in alive]
            multiprocessing.connection.wait(sentinels, max(0.0, deadline - time.monotonic()))
            alive = [p for p in alive if p.exitcode is None]
        for process in alive:
            process.kill()
        # the pool's manager thread sees the dead workers, fails the running futures
        # and reaps the processes; shutdown returns once it is done
        self._pool.shutdown(wait=True, cancel_futures=True)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the driver inside :func:`stop_on_signals`.

    A :class:`KeyboardInterrupt`, so code that already treats Ctrl-C as "stop now"
    (a run trained in this process, an executor's ``with`` block) treats SIGTERM alike.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_status(self) -> int:
        """``128 + signal number``, the shell's convention (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum

    def message(self, rerun: str) -> str:
        """One line: what happened and how to continue (``rerun``: the command to repeat)."""
        return (
            f"{self.args[0]}: runs in progress stopped; finished runs are kept and unfinished ones "
            f"continue from their last checkpoint: rerun `{rerun}` "
            "(or `robustcompress resume RUN_DIR` for one run)"
        )


@contextlib.contextmanager
def stop_on_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """While the block runs, each of ``signals`` raises :class:`Interrupted` in the main thread.

    The first signal raises; further ones are ignored until the block is left, so
    stopping the workers (:meth:`Executor.terminate`, run by the executor's ``with``
    block) is not itself interrupted. The previous handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, frame: FrameType | None) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, action in previous.items():
            signal.signal(s, action)


ExecutorFactory = Callable[..., Executor]
"""``factory(workers, *, runs_dir, device, progress[, threads][, **options]) -> Executor``.

``threads`` (torch threads per process) is passed only when it is set, so a factory
without it works until ``--threads`` is used; likewise the executor's own ``options``
(:func:`make_executor`), e.g. ``address`` for ``ray``.
"""

EXECUTORS: dict[str, ExecutorFactory] = {}
"""Registered executors by name (see the module docstring)."""


def register_executor(name: str, factory: ExecutorFactory) -> ExecutorFactory:
    """Make ``factory`` available as ``--executor NAME``."""
    EXECUTORS[name] = factory
    return factory


def list_executors() -> list[str]:
    """Names accepted by :func:`make_executor` (``auto`` included)."""
    return ["auto", *EXECUTORS]


def _serial(
    workers: int = 1,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> Executor:
    if workers != 1:
        raise ConfigError(
            f"the serial executor runs one job at a time; got --workers {workers} "
            "(use --executor process, or --workers 1)"
        )
    return SequentialExecutor(runs_dir=runs_dir, device=device, progress=progress, threads=threads)


def _process(
    workers: int = 1,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> Executor:
    return LocalProcessExecutor(workers, runs_dir=runs_dir, device=device, threads=threads)


def _ray(workers: int = 1, **options: Any) -> Executor:
    from robustcompress.experiments.ray_executor import make_ray_executor

    return make_ray_executor(workers, **options)


register_executor("serial", _serial)
register_executor("process", _process)
register_executor("ray", _ray)


def make_executor(
    workers: int = 1,
    *,
    executor: str = "auto",
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Executor:
    """The executor called ``executor`` with ``workers`` workers.

    ``auto``: ``serial`` for one worker, else ``process``. An unknown name is a
    one-line :class:`ConfigError` listing the registered ones. ``threads``: torch
    threads per process (default: the executor's own choice). ``options``: settings
    of that executor alone, passed to its factory as keyword arguments (``ray``:
    ``address``).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    threads = check_threads(threads)
    name = executor
    if name == "auto":
        name = "serial" if workers == 1 else "process"
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown executor {executor!r} (choose from {', '.join(list_executors())})"
        )
    extra: dict[str, Any] = {} if threads is None else {"threads": threads}
    extra.update(options or {})
    return factory(workers, runs_dir=runs_dir, device=device, progress=progress, **extra)

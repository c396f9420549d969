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
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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
        """Release workers (no-op by default)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
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
    ) -> None:
        super().__init__(runs_dir=runs_dir, device=device)
        self.progress = progress
        self.echo = echo

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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class LocalProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes with ``max(1, cores // workers)`` threads each."""

    def __init__(
        self,
        workers: int,
        *,
        runs_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        super().__init__(runs_dir=runs_dir, device=device)
        self.workers = workers
        self.threads = threads_per_worker(workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads,),
        )

    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        request = request_for(
            config, runs_dir=self.runs_dir, device=self.device, dependencies=dependencies
        )
        return self._pool.submit(execute, request)

    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(function, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


ExecutorFactory = Callable[..., Executor]
"""``factory(workers, *, runs_dir, device, progress) -> Executor``."""

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
) -> Executor:
    if workers != 1:
        raise ConfigError(
            f"the serial executor runs one job at a time; got --workers {workers} "
            "(use --executor process, or --workers 1)"
        )
    return SequentialExecutor(runs_dir=runs_dir, device=device, progress=progress)


def _process(
    workers: int = 1,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Executor:
    return LocalProcessExecutor(workers, runs_dir=runs_dir, device=device)


register_executor("serial", _serial)
register_executor("process", _process)


def make_executor(
    workers: int = 1,
    *,
    executor: str = "auto",
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Executor:
    """The executor called ``executor`` with ``workers`` workers.

    ``auto``: ``serial`` for one worker, else ``process``. An unknown name is a
    one-line :class:`ConfigError` listing the registered ones.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}")
    name = executor
    if name == "auto":
        name = "serial" if workers == 1 else "process"
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown executor {executor!r} (choose from {', '.join(list_executors())})"
        )
    return factory(workers, runs_dir=runs_dir, device=device, progress=progress)

"""Executors: where runs execute. A narrow seam for other engines (e.g. Ray).

An executor has one job, ``submit(config) -> Future[RunRecord]`` (and ``map`` over
many configs). :class:`SequentialExecutor` runs in this process, one after the
other; :class:`LocalProcessExecutor` runs in a pool of ``workers`` processes
started with the *spawn* method (no forked torch state), each limited to
``max(1, cores // workers)`` torch threads so the pool does not oversubscribe the
machine. A distributed engine only needs to implement :meth:`Executor.submit`:
configs travel as plain data (:func:`request_for`) and :func:`execute` runs one
request anywhere robustcompress is installed.
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
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

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(
    workers: int = 1,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Executor:
    """Sequential for ``workers == 1``, else a :class:`LocalProcessExecutor`."""
    if workers == 1:
        return SequentialExecutor(runs_dir=runs_dir, device=device, progress=progress)
    return LocalProcessExecutor(workers, runs_dir=runs_dir, device=device)

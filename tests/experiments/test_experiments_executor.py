"""Executors (robustcompress.experiments.executor)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments import (
    LocalProcessExecutor,
    SequentialExecutor,
    load_config,
    make_executor,
)
from robustcompress.experiments.executor import execute, request_for, threads_per_worker


def test_threads_per_worker() -> None:
    assert [threads_per_worker(w, cores=8) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_make_executor_and_invalid_workers(tmp_path: Path) -> None:
    assert isinstance(make_executor(1, runs_dir=tmp_path), SequentialExecutor)
    with pytest.raises(ConfigError, match="workers"):
        LocalProcessExecutor(0)


def test_request_roundtrip_runs_the_same_config(
    write_config: Callable[..., Path], runs_dir: Path
) -> None:
    config = load_config(write_config("req", tracking={"attacks": {}}, data={"limit": 64}))
    request = request_for(config, runs_dir=runs_dir)
    record = execute(request)
    future = SequentialExecutor(runs_dir=runs_dir, progress=False, echo=False).submit(config)
    assert future.result().run_dir == record.run_dir  # same config → same run, not retrained


@pytest.mark.slow
def test_process_pool_runs_configs_in_spawned_workers(
    write_config: Callable[..., Path], runs_dir: Path
) -> None:
    configs = [
        load_config(write_config(f"pool{i}", seed=i, data={"limit": 64}, tracking={"attacks": {}}))
        for i in range(2)
    ]
    with LocalProcessExecutor(2, runs_dir=runs_dir) as executor:
        records = [f.result(timeout=300) for f in executor.map(configs)]
        assert executor.threads == threads_per_worker(2)
    assert [r.status for r in records] == ["finished", "finished"]
    assert {r.name for r in records} == {"pool0", "pool1"}
    assert records[0].final != records[1].final  # different seeds


# ---------------------------------------------------------------- by name


def test_executors_are_chosen_by_name(tmp_path) -> None:
    from robustcompress.errors import ConfigError
    from robustcompress.experiments.executor import (
        LocalProcessExecutor,
        SequentialExecutor,
        list_executors,
        make_executor,
    )

    assert {"auto", "serial", "process", "ray"} <= set(list_executors())
    with make_executor(1, runs_dir=tmp_path) as ex:
        assert isinstance(ex, SequentialExecutor)
    with make_executor(1, executor="process", runs_dir=tmp_path) as ex:
        assert isinstance(ex, LocalProcessExecutor) and ex.workers == 1
    with pytest.raises(
        ConfigError, match=r"unknown executor 'dask' \(choose from auto, serial, process, ray\)"
    ):
        make_executor(2, executor="dask")
    with pytest.raises(ConfigError, match="serial executor runs one job at a time"):
        make_executor(2, executor="serial")
    with pytest.raises(ConfigError, match="--workers must be ≥ 1"):
        make_executor(0)


def _square(x: int) -> int:
    return x * x


def test_jobs_run_through_either_executor(tmp_path) -> None:
    from robustcompress.experiments.executor import make_executor

    for name in ("serial", "process"):
        with make_executor(1, executor=name, runs_dir=tmp_path) as ex:
            assert [f.result() for f in (ex.submit_job(_square, i) for i in range(4))] == [
                0,
                1,
                4,
                9,
            ]

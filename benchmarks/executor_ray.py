"""The ``ray`` executor against the ``process`` executor: overhead per run and speed-up.

Two measurements, each executor in turn within every round (so a change of the
machine's load hits both alike), on a Ray instance the executor starts on this machine
(``ray.init`` with ``workers`` CPUs) and a local process pool, one torch thread per
worker:

* **Overhead per job** (1 worker): ``--jobs`` no-op jobs (``submit_job(abs, 0)``) and
  ``--jobs`` *cached runs* (``submit`` of a config whose run already finished, so the
  worker only parses the config, hashes it and reads the stored record) are submitted at
  once; the wall time until the last result, divided by the number of jobs. The
  executors are started and warmed up (one tiny run in each worker: imports done, MNIST
  in the worker's cache) before the clock starts.
* **Speed-up from 1 to 2 workers**: ``--runs`` small real runs (the tiny FCNN on
  ``--limit`` MNIST images, ``--epochs`` epochs) in a fresh runs root, with 1 and with 2
  workers; the wall time from the first submission to the last result, and
  ``T(1 worker) / T(2 workers)``. Starting the executor and warming its workers up
  (Ray: ``ray.init``; the pool: spawning workers that import torch; both: one tiny run
  per worker) is timed apart, as ``start``.

Usage::

    ROBUSTCOMPRESS_DATA=/path/to/data .venv/bin/python benchmarks/executor_ray.py
    .venv/bin/python benchmarks/executor_ray.py --rounds 1 --runs 4   # quicker

It writes ``benchmarks/results/executor_ray.json``. Speed is reported, never asserted;
on a shared machine single rounds carry ±30 % noise, so read the ratios measured side by
side, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import ray
import torch
import yaml

from robustcompress.experiments import LocalProcessExecutor, load_config
from robustcompress.experiments.executor import Executor, RunRequest, execute, request_for
from robustcompress.experiments.ray_executor import RayExecutor

RESULTS = Path(__file__).parent / "results" / "executor_ray.json"

EXECUTORS: dict[str, Callable[[int, Path], Executor]] = {
    "process": lambda workers, runs: LocalProcessExecutor(workers, runs_dir=runs, threads=1),
    "ray": lambda workers, runs: RayExecutor(workers, runs_dir=runs, threads=1),
}


def config(directory: Path, name: str, seed: int, limit: int, epochs: int) -> Any:
    """The tiny FCNN of the experiment tests on ``limit`` MNIST images."""
    data = {
        "name": name,
        "seed": seed,
        "device": "cpu",
        "data": {"dataset": "mnist", "limit": limit},
        "model": {"name": "fcnn", "kwargs": {"hidden": [64, 64]}},
        "optimizer": {"epochs": epochs, "batch_size": 32, "lr": 0.05, "momentum": 0.9},
        "tracking": {"eval_size": 200, "attacks": {"fgsm": {"eps": 0.05}}},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def warm_up(request: RunRequest, pause: float) -> None:
    """In a worker: one tiny run (imports, MNIST read into the process's cache, as a
    worker's first run would), then hold the worker ``pause`` seconds so that every worker
    gets one warm-up job."""
    execute(request)
    time.sleep(pause)


def started(name: str, workers: int, runs: Path) -> tuple[Executor, float]:
    """The executor and the seconds until its ``workers`` workers are warm (:func:`warm_up`)."""
    clock = time.perf_counter()
    executor = EXECUTORS[name](workers, runs)
    scratch = Path(tempfile.mkdtemp(dir=runs.parent))
    tiny = [config(scratch, f"warm{i}", i, 64, 1) for i in range(workers)]
    wait([executor.submit_job(warm_up, request_for(c, runs_dir=scratch), 1.0) for c in tiny])
    return executor, time.perf_counter() - clock - 1.0


def overhead(name: str, jobs: int, cached: Any, runs: Path) -> dict[str, float]:
    """Seconds per no-op job and per cached run, on one warm worker."""
    executor, start = started(name, 1, runs)
    with executor:
        clock = time.perf_counter()
        for future in [executor.submit_job(abs, 0) for _ in range(jobs)]:
            future.result()
        noop = (time.perf_counter() - clock) / jobs
        clock = time.perf_counter()
        for future in [executor.submit(cached) for _ in range(jobs)]:
            assert future.result().status == "finished"
        run = (time.perf_counter() - clock) / jobs
    return {"start_s": start, "noop_ms": 1000 * noop, "cached_run_ms": 1000 * run}


def speed(name: str, workers: int, configs: list[Any], scratch: Path) -> dict[str, float]:
    """Wall seconds of ``configs`` as fresh runs on ``workers`` workers (start apart)."""
    runs = Path(tempfile.mkdtemp(dir=scratch))
    executor, start = started(name, workers, runs)
    with executor:
        clock = time.perf_counter()
        records = [f.result() for f in [executor.submit(c) for c in configs]]
        wall = time.perf_counter() - clock
    assert all(r.status == "finished" for r in records)
    return {"start_s": start, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--jobs", type=int, default=40, help="no-op jobs per round (40)")
    parser.add_argument("--runs", type=int, default=4, help="real runs per timing (4)")
    parser.add_argument("--limit", type=int, default=30000, help="MNIST images per run (30000)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (2)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="executor-bench-"))
    cached = config(scratch, "cached", 0, 64, 1)
    from robustcompress.experiments import run

    run(cached, runs_dir=scratch / "cached-runs", progress=False, echo=False)
    configs = [config(scratch, f"small{i}", i, args.limit, args.epochs) for i in range(args.runs)]
    names = list(EXECUTORS)
    costs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    walls: dict[str, dict[int, list[dict[str, float]]]] = {n: {1: [], 2: []} for n in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            costs[n].append(overhead(n, args.jobs, cached, scratch / "cached-runs"))
        for workers in (1, 2):
            for n in order:
                walls[n][workers].append(speed(n, workers, configs, scratch))

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    table = []
    for n in names:
        one, two = median(walls[n][1], "wall_s"), median(walls[n][2], "wall_s")
        ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(walls[n][1], walls[n][2], strict=True)]
        table.append(
            {
                "executor": n,
                "start_1_worker_s": median(costs[n], "start_s"),
                "start_2_workers_s": median(walls[n][2], "start_s"),
                "noop_job_ms": median(costs[n], "noop_ms"),
                "cached_run_ms": median(costs[n], "cached_run_ms"),
                "runs_1_worker_s": one,
                "runs_2_workers_s": two,
                "speedup": one / two,
                "speedup_per_round": ratios,
            }
        )
    print(
        f"{args.runs} runs of the tiny FCNN ({args.limit} MNIST images, {args.epochs} epochs), "
        f"1 torch thread per worker; medians of {args.rounds} round(s); "
        f"{os.cpu_count()} cores"
    )
    header = (
        f"{'executor':8s} {'start 1w':>9s} {'start 2w':>9s} {'no-op job':>10s} "
        f"{'cached run':>11s} {'1 worker':>9s} {'2 workers':>10s} {'speed-up':>9s}  "
        "per round (1w/2w, same round)"
    )
    print(header)
    for t in table:
        print(
            f"{t['executor']:8s} {t['start_1_worker_s']:8.2f}s {t['start_2_workers_s']:8.2f}s "
            f"{t['noop_job_ms']:8.2f}ms {t['cached_run_ms']:9.2f}ms "
            f"{t['runs_1_worker_s']:8.2f}s {t['runs_2_workers_s']:9.2f}s {t['speedup']:8.2f}×  "
            + " ".join(f"{r:.2f}×" for r in t["speedup_per_round"])
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "ray": ray.__version__,
                "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "rows": table,
                "rounds": {"overhead": costs, "runs": walls},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

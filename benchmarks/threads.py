"""Torch threads on a busy machine: ``attack --limit 2000`` with the default vs ``--threads 1``.

Runs ``robustcompress attack MODEL --limit 2000 --device cpu`` as a subprocess, once
with torch's default thread count (one per core it may use) and once with
``--threads 1``, while ``--load`` other CPU-bound processes (busy loops, default 1)
run beside it — a machine shared with other jobs. For each run it measures the wall
time and the CPU time (user + system, from ``resource.getrusage(RUSAGE_CHILDREN)``
before and after the run; the load processes are reaped only at the end, so their
time is not counted) and prints, per setting, CPU / wall and the ratios of the
default to one thread. The settings take turns (``--repeat`` rounds), so a change of
the machine's load hits both alike; the best round of each is compared.

With N threads on a machine whose cores are taken, a run needs more CPU for the
same work (threads spinning and waiting at every parallel region) and its wall time
need not drop; this is why a pool gives each worker ``max(1, cores // workers)``
threads (``robustcompress.experiments.executor``) and why ``--threads`` exists.
Usage::

    .venv/bin/python benchmarks/threads.py                       # fcnn, 2000 images, 1 load
    .venv/bin/python benchmarks/threads.py --repeat 3 --load 2
    .venv/bin/python benchmarks/threads.py --reproduce           # also the quick reproduction

``--reproduce`` also times ``reproduce langenberg2019 --profile quick`` in a fresh
temporary runs directory (minutes per setting). The model is untrained (the attack's
cost does not depend on its weights); MNIST must be available
(``ROBUSTCOMPRESS_DATA``). Speed is reported, never asserted (CONTRIBUTING.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robustcompress.cli", *args]


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one run of ``argv`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="fcnn", help="registered model (default fcnn)")
    parser.add_argument("--limit", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--load", type=int, default=1, help="busy processes beside (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--reproduce", action="store_true", help="also the quick reproduction")
    args = parser.parse_args()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    attack = cli("attack", args.model, "--limit", str(args.limit), "--device", "cpu")
    jobs = {"attack": lambda threads: [*attack, *threads]}
    scratch = tempfile.TemporaryDirectory(prefix="threads-bench-")
    if args.reproduce:

        def reproduce(threads: list[str]) -> list[str]:
            runs = tempfile.mkdtemp(dir=scratch.name)  # fresh: nothing reused
            return cli("reproduce", "langenberg2019", "--profile", "quick", "--no-report",
                       "--runs-dir", runs, *threads)  # fmt: skip

        jobs["reproduce quick"] = reproduce
    settings = {"default": [], "--threads 1": ["--threads", "1"]}

    import torch

    print(
        f"cores available: {len(os.sched_getaffinity(0))}, torch default threads: "
        f"{torch.get_num_threads()}, load: {args.load} busy process(es), "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        time.sleep(1.0)  # let the load settle on the cores
        for _ in range(args.repeat):
            for job, make in jobs.items():
                for name, flags in settings.items():
                    wall, cpu = measure(make(flags), env)
                    results.setdefault((job, name), []).append((wall, cpu))
                    print(f"  {job:16s} {name:12s} wall {wall:7.1f} s  CPU {cpu:7.1f} s")
    finally:
        for process in load:
            process.kill()
            process.wait()
        scratch.cleanup()

    print(f"\nbest of {args.repeat} round(s), {args.load} busy process(es) beside:")
    for job in jobs:
        best = {name: min(results[(job, name)]) for name in settings}
        for name, (wall, cpu) in best.items():
            print(
                f"{job:16s} {name:12s} wall {wall:7.1f} s  CPU {cpu:7.1f} s  "
                f"CPU/wall {cpu / wall:.2f}"
            )
        (w_default, c_default), (w_one, c_one) = best["default"], best["--threads 1"]
        print(
            f"{job:16s} default / --threads 1: wall ×{w_default / w_one:.2f}, "
            f"CPU ×{c_default / c_one:.2f}"
        )


if __name__ == "__main__":
    main()

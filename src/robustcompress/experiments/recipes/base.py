"""Reproduction recipes: a paper's whole grid of runs, run through the cached runner.

A :class:`Recipe` turns a :class:`Profile` (how much data, how many epochs, how big
the evaluation subsets) and a list of seeds into :class:`PlannedRun` rows: one
validated :class:`~robustcompress.experiments.config.RunConfig` per model × method ×
seed, with the method's id, display label and group. :func:`reproduce` runs them as
one sweep (so finished runs are reused: a second call only recomputes what is
missing), computes the gradient-masking flags of every finished model on a fixed
test sample and, when the profile asks for it (:class:`EnsembleCheck`), each model's
robust accuracy under the AutoAttack-style ensemble, and writes the *reproduction
directory*::

    <runs root>/reproductions/<recipe>-<profile>/manifest.json
    <runs root>/reproductions/<recipe>-<profile>/masking/<run dir name>.json  (cache)
    <runs root>/reproductions/<recipe>-<profile>/ensemble/<run dir name>-….json  (cache)

The manifest is the contract with :mod:`robustcompress.reporting`::

    {"recipe", "profile", "seeds", "started", "wall_time_s", "choices": [...],
     "runs": [{"run_dir" (relative to the manifest's folder), "model", "dataset",
               "method", "label", "group", "seed", "status"}, ...],
     "masking": [{"model", "method", "seed", "run_dir", "flags": [...]}, ...],
     "ensemble": [{"model", "method", "seed", "run_dir", "robust_accuracy",
                   "fooling_ratio", "broken_by", "curve", ...}, ...]}
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from robustcompress.errors import ConfigError
from robustcompress.experiments.config import RunConfig
from robustcompress.experiments.executor import Executor, SequentialExecutor
from robustcompress.experiments.store import (
    LOCK_FILE,
    MANIFEST_FILE,
    RunRecord,
    read_json,
    run_dir_name,
    run_status,
    runs_root,
    write_json_atomic,
)

if TYPE_CHECKING:
    from robustcompress.reporting.loading import ReportSource
    from robustcompress.reporting.sections import ReportPlan

Group = str
"""A method's group: an open name (``natural``, ``adversarial``, ``regularized``,
``pruned``…) that reports use to pick methods for figures and claims."""

REPRODUCTIONS_DIR = "reproductions"

S = TypeVar("S")


@dataclass(frozen=True)
class MaskingCheck:
    """Where the gradient-masking flags are computed: FGSM and PGD at ε/2 and ε on a
    seeded test sample of ``size`` images; PGD takes ``pgd_steps`` steps of
    ``pgd_alpha_ratio``·ε (defaults: T = 20, α = ε/10, the paper's 0.005 at ε = 0.05).
    The attacks' resolved settings are stored with each model's flags."""

    size: int
    eps: float = 0.05
    seed: int = 0
    pgd_steps: int = 20
    pgd_alpha_ratio: float = 0.1

    def attacks(self) -> dict[str, Any]:
        """The attacks of the check, by label."""
        from robustcompress import attacks

        return {
            "fgsm": attacks.get("fgsm", eps=self.eps),
            "pgd": attacks.get(
                "pgd", eps=self.eps, steps=self.pgd_steps, alpha=self.eps * self.pgd_alpha_ratio
            ),
        }


@dataclass(frozen=True)
class EnsembleCheck:
    """Robust accuracy of every finished model under the AutoAttack-style ensemble
    (:class:`robustcompress.attacks.AutoAttack`) at ``eps``, on a seeded test sample of
    ``size`` images; ``steps`` and ``queries`` are the APGD stages' iterations and Square's
    queries (AutoAttack's: 100 and 5,000). ``curve``: further ε at which the natural model
    and each model's most robust method (the highest mean robust accuracy at ``eps``)
    are attacked as well, for an ε-curve."""

    size: int
    eps: float = 0.05
    seed: int = 0
    version: str = "standard"
    steps: int = 100
    queries: int = 5000
    curve: tuple[float, ...] = ()

    def attack(self, eps: float | None = None) -> Any:
        """The ensemble at ``eps`` (default: the check's), seeded with the check's seed."""
        from robustcompress import attacks

        return attacks.get(
            "autoattack",
            eps=self.eps if eps is None else eps,
            version=self.version,
            steps=self.steps,
            queries=self.queries,
            seed=self.seed,
        )

    def tag(self) -> str:
        """What the cache files of this check are keyed by (besides the run): its
        settings and the version's stages, so a version that gains a stage is rerun."""
        stages = "+".join(label for label, _ in self.attack().stages())
        return (
            f"n{self.size}-eps{self.eps:g}-s{self.seed}-{self.version}-{stages}"
            f"-T{self.steps}-Q{self.queries}"
        )


@dataclass(frozen=True)
class Profile(Generic[S]):
    """How big a reproduction is: seeds, a typed schedule per model, the masking check.

    ``settings`` maps a model name to its schedule, an object of the recipe's schedule
    type (usually :class:`~robustcompress.experiments.recipes.methods.Schedule`, or a
    subclass with the paper's extra fields).
    """

    name: str
    description: str
    seeds: int
    settings: Mapping[str, S]
    masking: MaskingCheck
    ensemble: EnsembleCheck | None = None
    """The ensemble's robust accuracy of every final model (``None``: not measured)."""

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"profile {self.name!r}: seeds must be ≥ 1 (got {self.seeds})")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a recipe: what the report needs to know about it, and its config."""

    model: str
    dataset: str
    method: str
    label: str
    group: Group
    seed: int
    config: RunConfig
    starts_from: PlannedRun | None = None
    """The run this one fine-tunes (same model and seed), or ``None``."""

    @property
    def hash(self) -> str:
        """The config hash, through the starting run's hash (as the runner computes it)."""
        from robustcompress.experiments.config import config_hash

        start = self.starts_from.hash if self.starts_from is not None else None
        return config_hash(self.config, start)


@dataclass(frozen=True)
class Recipe:
    """A paper as one bundle: its profiles, design choices, planner and report.

    ``plan(profile, seeds)`` lists every run; ``report(source)`` makes the page's
    :class:`~robustcompress.reporting.sections.ReportPlan` (figures, tables with the
    paper's values, claims) from a loaded reproduction, built from the shared blocks in
    :mod:`robustcompress.reporting` (``None``: the generic report). Register it once
    with :func:`robustcompress.experiments.recipes.register_recipe`.
    """

    name: str
    title: str
    profiles: Mapping[str, Profile[Any]]
    choices: Sequence[str]
    plan: Callable[[Profile[Any], Sequence[int]], list[PlannedRun]]
    default_profile: str = "quick"
    report: Callable[[ReportSource], ReportPlan] | None = None
    paper: str = ""
    """Full citation of the paper (authors, year, title)."""
    measure: Callable[[Measurement], dict[str, Any]] | None = None
    """Further measurements of the finished runs, after the masking and ensemble steps
    (e.g. every snapshot a pruning run kept): gets a :class:`Measurement`, returns keys
    added to the manifest (cache its results in ``directory``, so a second call reuses
    them, and run its jobs through :func:`run_jobs` on the given executor)."""

    def __post_init__(self) -> None:
        if self.default_profile not in self.profiles:
            raise ConfigError(
                f"recipe {self.name}: default profile {self.default_profile!r} is not one of "
                f"{', '.join(self.profiles)}"
            )

    def profile(self, name: str | Profile[Any]) -> Profile[Any]:
        """The profile called ``name`` (a :class:`Profile` is returned unchanged)."""
        if isinstance(name, Profile):
            return name
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigError(
                f"recipe {self.name}: unknown profile {name!r} "
                f"(choose from {', '.join(self.profiles)})"
            ) from None


@dataclass(frozen=True)
class Measurement:
    """What a recipe's ``measure`` step gets: the planned runs, their records (``None``
    for a run that raised), the profile, the reproduction directory, the executor the
    runs went through and the progress logger."""

    planned: Sequence[PlannedRun]
    records: Mapping[str, RunRecord | None]
    profile: Profile[Any]
    directory: Path
    executor: Executor | None
    log: Callable[[str], None] | None = None

    def finished(self) -> list[tuple[PlannedRun, Path]]:
        """The planned runs that finished, with their run directories."""
        return [
            (p, record.run_dir)
            for p in self.planned
            if (record := self.records.get(p.config.name)) is not None
            and record.status == "finished"
        ]


@dataclass
class Reproduction:
    """What :func:`reproduce` did: the manifest written and the runs behind it."""

    directory: Path
    manifest: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE


def paper_cifar_missing() -> list[str]:
    """What this machine lacks for a paper's CIFAR-10 profile: a CUDA GPU and the
    CIFAR-10 files (empty: nothing)."""
    import torch

    from robustcompress.data.locate import find_dataset
    from robustcompress.errors import RobustCompressError

    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU")
    try:
        find_dataset("cifar10")
    except RobustCompressError:
        missing.append("no CIFAR-10 files (see `robustcompress data`)")
    return missing


def refuse_paper_cifar(profile: str, needs: str, instead: str, missing: Sequence[str]) -> None:
    """Raise, in one line, when ``missing`` (from :func:`paper_cifar_missing`) is not
    empty: profile ``profile`` needs a GPU and CIFAR-10 for ``needs``; ``instead`` names
    the profiles to use here."""
    if missing:
        raise ConfigError(
            f"profile {profile!r} needs a CUDA GPU and the CIFAR-10 files ({needs}); this "
            f"machine has {' and '.join(missing)}: run it where both exist, or use {instead}"
        )


def seed_list(profile: Profile[Any], seeds: int | Sequence[int] | None) -> list[int]:
    """Seeds 0 … N−1 for ``seeds = N`` (default: the profile's), or the given list."""
    if seeds is None:
        seeds = profile.seeds
    if isinstance(seeds, int):
        if isinstance(seeds, bool) or seeds < 1:
            raise ConfigError(f"--seeds must be a positive number of seeds (got {seeds})")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise ConfigError(f"seeds must be distinct non-negative integers (got {list(seeds)})")
    return out


def reproduction_dir(
    recipe: Recipe, profile: Profile[Any], runs_dir: str | os.PathLike[str] | None
) -> Path:
    """``<runs root>/reproductions/<recipe>-<profile>``."""
    return runs_root(runs_dir) / REPRODUCTIONS_DIR / f"{recipe.name}-{profile.name}"


def reproduce(
    recipe: Recipe,
    profile: str | Profile[Any] | None = None,
    *,
    seeds: int | Sequence[int] | None = None,
    workers: int = 1,
    executor: str = "auto",
    threads: int | None = None,
    executor_options: Mapping[str, Any] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Reproduction:
    """Run (or reuse) every run of ``recipe`` and write its reproduction directory.

    Runs and the masking checks go through one executor chosen by name
    (:func:`robustcompress.experiments.make_executor`: ``auto`` is sequential for
    ``workers = 1``, else a pool of ``workers`` processes, each with ``threads`` torch
    threads when given; ``executor_options``: the executor's own settings, e.g. a Ray
    cluster's ``address``) and
    :func:`robustcompress.experiments.run_sweep`, so a finished run is never
    recomputed. Fine-tuning runs execute after the runs they start from. A
    run that fails is recorded with status ``failed`` and does not stop the others.

    ``wall_time_s`` and ``started`` in the manifest describe the call that computed
    the runs: a later call that only reuses finished runs keeps them (and appends
    itself to ``calls``), so the record of what the grid cost survives re-reporting.

    Returns:
        The :class:`Reproduction`, whose ``manifest`` is also written to disk.
    """
    from robustcompress.experiments.executor import make_executor
    from robustcompress.experiments.sweep import run_sweep

    say = log or (lambda text: print(text, file=sys.stderr))
    chosen = recipe.profile(profile or recipe.default_profile)
    seed_values = seed_list(chosen, seeds)
    planned = recipe.plan(chosen, seed_values)
    sweep = planned_sweep(f"{recipe.name}-{chosen.name}", planned)
    root = runs_root(runs_dir)
    directory = reproduction_dir(recipe, chosen, root)
    directory.mkdir(parents=True, exist_ok=True)
    previous = read_json(directory / MANIFEST_FILE)
    finished_before = {
        p.config.name
        for p in planned
        if run_status(root / run_dir_name(p.config.name, p.hash)) == "finished"
    }
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    clock = time.perf_counter()
    say(
        f"{recipe.name} ({chosen.name}): {len(planned)} runs, seeds {seed_values}, "
        f"{workers} worker(s); runs in {root}"
    )
    lines = RunLines(
        {p.config.name: root / run_dir_name(p.config.name, p.hash) for p in planned},
        finished_before,
        say,
    )

    def on_done(point: Any, record: RunRecord | None, error: str | None) -> None:
        state = f"failed: {error}" if error else f"{record.status if record else '?'}"
        lines.finished(point.config.name, state)

    with make_executor(
        workers,
        executor=executor,
        threads=threads,
        runs_dir=root,
        device=device,
        progress=False,
        options=executor_options,
    ) as pool:
        with lines.watching(pool) as announced:
            result = run_sweep(sweep, announced, runs_dir=root, on_done=on_done)
        records = dict(zip((p.config.name for p in planned), result.records, strict=True))
        masking = masking_flags_for(planned, records, chosen.masking, directory, pool, log=say)
        ensemble = (
            ensemble_for(planned, records, chosen.ensemble, directory, pool, log=say)
            if chosen.ensemble is not None
            else []
        )
        measured: dict[str, Any] = {}
        if recipe.measure is not None:
            measured = recipe.measure(
                Measurement(planned, records, chosen, directory, pool, log=say)
            )
    runs = []
    for p in planned:
        record = records[p.config.name]
        run_dir = _planned_run_dir(p, record, root)
        runs.append(
            {
                "run_dir": os.path.relpath(run_dir, directory),
                "name": p.config.name,
                "model": p.model,
                "dataset": p.dataset,
                "method": p.method,
                "label": p.label,
                "group": p.group,
                "seed": p.seed,
                "starts_from": p.starts_from.method if p.starts_from else None,
                "status": record.status if record is not None else _status_of(run_dir),
                "reused": p.config.name in finished_before,
                "error": result.errors.get(p.config.name),
            }
        )
    wall = round(time.perf_counter() - clock, 1)
    computed = len(planned) - len(finished_before)
    call = {"started": started, "wall_time_s": wall, "runs_computed": computed}
    calls = [*previous.get("calls", []), call] if previous.get("seeds") == seed_values else [call]
    if computed == 0 and previous.get("seeds") == seed_values and "wall_time_s" in previous:
        started, wall = previous["started"], previous["wall_time_s"]
    manifest = {
        "recipe": recipe.name,
        "title": recipe.title,
        "profile": chosen.name,
        "profile_description": chosen.description,
        "seeds": seed_values,
        "started": started,
        "wall_time_s": wall,
        "compute_time_s": round(_compute_time(records.values()), 1),
        "calls": calls,
        "workers": workers,
        "choices": list(recipe.choices),
        "runs": runs,
        "masking": masking,
        "ensemble": ensemble,
    }
    clash = sorted(set(measured) & set(manifest))
    if clash:
        raise ConfigError(f"recipe {recipe.name}: its measure step returned manifest keys {clash}")
    manifest.update(measured)
    write_json_atomic(directory / MANIFEST_FILE, manifest)
    say(f"manifest written to {directory / MANIFEST_FILE} ({manifest['wall_time_s']} s)")
    return Reproduction(directory, manifest, dict(result.errors))


class RunLines:
    """A reproduction's progress lines: one as each run starts and one as it ends, with
    ``[done/total]``, the elapsed time and an ETA for the remaining runs.

    The ETA is ``elapsed × runs left to compute / runs computed so far`` (reused runs
    count for neither), so it follows the executor's throughput over runs of mixed
    lengths: a rough figure that excludes the masking checks and the report. A run's
    start is seen when it takes its run lock: at submission for an executor that runs
    in this process, else by watching the lock files (once a second) in the shared
    runs root.
    """

    def __init__(
        self,
        run_dirs: Mapping[str, Path],
        reused: set[str],
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 1.0,
    ) -> None:
        self.run_dirs = dict(run_dirs)
        self.reused = set(reused)
        self.say = say
        self.clock = clock
        self.poll_s = poll_s
        self.start = clock()
        self.wall_start = time.time()
        self.begun: dict[str, float] = {}
        self.ended: set[str] = set()
        self._lock = threading.Lock()

    def _status(self) -> str:
        from robustcompress.training.progress import format_duration

        elapsed = self.clock() - self.start
        computed = len(self.ended - self.reused)
        left = len(set(self.run_dirs) - self.ended - self.reused)
        eta = elapsed * left / computed if computed else float("nan")
        return f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}"

    def started(self, name: str) -> None:
        """Say that ``name`` started (once)."""
        with self._lock:
            if name in self.begun or name in self.ended:
                return
            self.begun[name] = self.clock()
            self.say(f"[{len(self.ended)}/{len(self.run_dirs)}] {name}: started; {self._status()}")

    def finished(self, name: str, state: str) -> None:
        """Say that ``name`` ended with ``state`` (``finished``, ``failed: …``)."""
        from robustcompress.training.progress import format_duration

        with self._lock:
            self.ended.add(name)
            if name in self.reused:
                took = " (reused)"
            elif name in self.begun:
                took = format_duration(self.clock() - self.begun[name])
                took = f" in {took}" if state == "finished" else f" (after {took})"
            else:
                took = ""
            done = f"[{len(self.ended)}/{len(self.run_dirs)}]"
            self.say(f"{done} {name}: {state}{took}; {self._status()}")

    def check_locks(self) -> None:
        """Announce every run whose lock file was (re)written since this call began."""
        for name, run_dir in self.run_dirs.items():
            if name in self.begun or name in self.ended or name in self.reused:
                continue
            try:
                taken = (run_dir / LOCK_FILE).stat().st_mtime
            except OSError:
                continue
            if taken >= self.wall_start - 1.0:
                self.started(name)

    def watching(self, executor: Executor) -> _Announcing:
        """``executor`` wrapped so that run starts are announced (a context manager)."""
        return _Announcing(executor, self)


class _Announcing(Executor):
    """Wraps an executor for :func:`run_sweep`: announces each run as it starts."""

    def __init__(self, inner: Executor, lines: RunLines) -> None:
        super().__init__(runs_dir=inner.runs_dir, device=inner.device)
        self.inner = inner
        self.lines = lines
        self.in_process = isinstance(inner, SequentialExecutor)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        if self.in_process and config.name not in self.lines.reused:
            self.lines.started(config.name)
        return self.inner.submit(config, dependencies=dependencies)

    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.inner.submit_job(function, *args)

    def _watch(self) -> None:
        while not self._stop.wait(self.lines.poll_s):
            self.lines.check_locks()

    def __enter__(self) -> _Announcing:
        if not self.in_process:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop watching (the wrapped executor stays open: its owner closes it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def planned_sweep(name: str, planned: Sequence[PlannedRun]) -> Any:
    """The planned runs as an expanded :class:`~robustcompress.experiments.sweep.Sweep`.

    The variant is ``<model>-<method>`` and the seed the grid value, so the sweep
    summary gives mean ± std over seeds per method; the sweep machinery orders the
    fine-tuning runs after their starting runs and hands ``init_from`` names to the
    workers as dependencies.
    """
    from robustcompress.experiments.sweep import Sweep, SweepConfig, SweepPoint

    by_name = {p.config.name: p.config for p in planned}
    if len(by_name) != len(planned):
        raise ConfigError(f"recipe {name}: two planned runs share a name")
    points = [SweepPoint(f"{p.model}-{p.method}", {"seed": p.seed}, p.config) for p in planned]
    dependencies = {}
    for p in planned:
        start = p.config.training.init_from
        if start is not None:
            if start not in by_name:
                raise ConfigError(
                    f"recipe {name}: run {p.config.name} starts from {start!r}, "
                    "which the recipe does not plan"
                )
            dependencies[start] = by_name[start]
    schema = SweepConfig(name=name, base={})
    return Sweep(schema, f"<recipe {name}>", points, dependencies)


def _planned_run_dir(p: PlannedRun, record: RunRecord | None, root: Path) -> Path:
    """The run's directory: from its record, or from the config hashes when it failed."""
    return record.run_dir if record is not None else root / run_dir_name(p.config.name, p.hash)


def _status_of(run_dir: Path) -> str:
    """The stored status of a run that raised (``diverged``, ``failed``…), else ``failed``."""
    status = run_status(run_dir) if run_dir.is_dir() else "failed"
    return "failed" if status in ("running", "incomplete", "finished") else status


def _compute_time(records: Any) -> float:
    total = 0.0
    for record in records:
        if record is not None:
            total += float((record.summary.get("timing") or {}).get("total_s") or 0.0)
    return total


# ------------------------------------------------------------------ masking


def masking_flags_for(
    planned: Sequence[PlannedRun],
    records: Mapping[str, RunRecord | None],
    check: MaskingCheck,
    directory: Path,
    executor: Executor | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Gradient-masking flags of every finished run (cached per run in ``masking/``).

    Each model is evaluated with :func:`robustcompress.evaluation.evaluate` (FGSM, and
    PGD with T = 20 and α = ε/10: the paper's 0.005 at ε = 0.05) at ε/2 and ε =
    ``check.eps`` (two budgets, so the monotonicity check runs) on a fixed, seeded
    test subset of ``check.size`` images; the flags (degenerate gradients, iterative
    weaker than single-step, no success at ε = 1, non-monotone curves, accuracy near
    chance) are stored as dicts, with the clean accuracy on the whole test set
    (``test_accuracy``, ``test_size``: the numbers Tables 1–2 compare with). The cache
    file is keyed by the run directory and the check's settings, so a second call
    reuses it.
    """
    cache = directory / "masking"
    cache.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[PlannedRun, Path, Path]] = []
    for p in planned:
        record = records.get(p.config.name)
        if record is None or record.status != "finished":
            continue
        out = cache / _masking_file(record.run_dir.name, check)
        jobs.append((p, record.run_dir, out))
    todo = [
        (str(run_dir), p.dataset, check, str(out)) for p, run_dir, out in jobs if not out.exists()
    ]
    if todo and log is not None:
        log(f"masking checks: {len(todo)} model(s) on {check.size} test images")
    run_jobs(_masking_job, todo, "masking check", executor, log)
    rows = []
    for p, run_dir, out in jobs:
        rows.append(
            {
                "model": p.model,
                "method": p.method,
                "seed": p.seed,
                "run_dir": os.path.relpath(run_dir, directory),
                **read_json(out),
            }
        )
    return rows


def run_jobs(
    fn: Callable[[Any], None],
    todo: Sequence[tuple[Any, ...]],
    what: str,
    executor: Executor | None,
    log: Callable[[str], None] | None,
    names: Sequence[str] | None = None,
) -> None:
    """Run ``fn(job)`` for every job in this process or on ``executor``, logging
    ``[done/total] <what> of <name> done`` as each ends; the name is ``names[i]``, by
    default the last part of the job's first item (a run directory). ``fn`` must be
    importable by name: a process pool pickles it."""
    if executor is None:
        for job in todo:
            fn(job)
        return
    clock = time.monotonic()
    labels = list(names) if names is not None else [Path(job[0]).name for job in todo]
    futures: dict[Future[Any], str] = {
        executor.submit_job(fn, job): label for job, label in zip(todo, labels, strict=True)
    }
    for done, future in enumerate(as_completed(futures), start=1):
        future.result()
        if log is not None:
            log(
                f"[{done}/{len(todo)}] {what} of {futures[future]} done; "
                f"elapsed {time.monotonic() - clock:.0f} s"
            )


def _masking_file(run: str, check: MaskingCheck) -> str:
    """The cache file of one model's check (the attack settings enter the name only when
    they differ from the defaults, so caches written before they were settable stay valid)."""
    name = f"{run}-n{check.size}-eps{check.eps:g}-s{check.seed}"
    default = MaskingCheck(check.size)
    if (check.pgd_steps, check.pgd_alpha_ratio) != (default.pgd_steps, default.pgd_alpha_ratio):
        name += f"-pgd{check.pgd_steps}x{check.pgd_alpha_ratio:g}"
    return name + ".json"


def _masking_job(job: tuple[str, str, MaskingCheck, str]) -> None:
    """Evaluate one stored model and write its masking flags (runs in a worker)."""
    import torch

    run_dir, dataset, check, out = job
    from robustcompress.data import load_dataset
    from robustcompress.evaluation import evaluate
    from robustcompress.training import load_model

    model = load_model(run_dir)
    test = load_dataset(dataset, "test", limit=check.size, seed=check.seed)
    checked = check.attacks()
    record = evaluate(
        model,
        (test.images, test.labels),
        checked,
        eps=[check.eps / 2, check.eps],
        device="cpu",
    )
    flags = [flag.to_dict() for flag in record.masking]
    full = load_dataset(dataset, "test")
    with torch.no_grad():
        correct = sum(
            int((model(full.images[i : i + 1000]).argmax(dim=1) == full.labels[i : i + 1000]).sum())
            for i in range(0, len(full.labels), 1000)
        )
    payload = {
        "attacks": {
            label: {"attack": a.name, "norm": a.norm, **a.settings()}
            for label, a in checked.items()
        },
        "test_accuracy": correct / len(full.labels),
        "test_size": len(full.labels),
        "n": int(record.n),
        "eps": check.eps,
        "clean_accuracy": float(record.clean_accuracy),
        "fooling_ratio": {
            "fgsm": float(record.fooling_ratio("fgsm", check.eps)),
            "pgd": float(record.fooling_ratio("pgd", check.eps)),
        },
        "masking_suspected": bool(record.masking_suspected),
        "flags": flags,
    }
    write_json_atomic(Path(out), json.loads(json.dumps(payload)))


# ------------------------------------------------------------------ ensemble


def ensemble_for(
    planned: Sequence[PlannedRun],
    records: Mapping[str, RunRecord | None],
    check: EnsembleCheck,
    directory: Path,
    executor: Executor | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Robust accuracy of every finished run under the ensemble (cached per run in
    ``ensemble/``), then an ε-curve (``check.curve``) for each model's natural runs and
    the runs of its most robust method (highest mean robust accuracy at ``check.eps``).

    A row per run: model, method, seed, run_dir, and what :func:`_ensemble_job` stored
    (``robust_accuracy``, ``fooling_ratio`` over the correctly classified inputs, the
    inputs each stage broke, the attack's settings, ``curve`` when computed).
    """
    cache = directory / "ensemble"
    cache.mkdir(parents=True, exist_ok=True)
    finished = [
        (p, record.run_dir)
        for p in planned
        if (record := records.get(p.config.name)) is not None and record.status == "finished"
    ]

    def jobs(runs: Sequence[tuple[PlannedRun, Path]], eps: tuple[float, ...], kind: str) -> list:
        tag = check.tag()  # builds the version's attacks: once, not per run
        files = [cache / f"{run_dir.name}-{kind}-{tag}.json" for _, run_dir in runs]
        return [
            (str(run_dir), p.dataset, check, eps, str(f))
            for (p, run_dir), f in zip(runs, files, strict=True)
        ]

    main = jobs(finished, (check.eps,), "at")
    todo = [job for job in main if not Path(job[-1]).exists()]
    if todo and log is not None:
        log(f"ensemble ({check.version}): {len(todo)} model(s) on {check.size} test images")
    run_jobs(_ensemble_job, todo, "ensemble attack", executor, log)
    rows = [
        {"model": p.model, "method": p.method, "seed": p.seed, **read_json(Path(job[-1]))}
        for (p, _), job in zip(finished, main, strict=True)
    ]
    for row, (_, run_dir) in zip(rows, finished, strict=True):
        row["run_dir"] = os.path.relpath(run_dir, directory)
    further = tuple(sorted(set(check.curve) - {check.eps}))
    if further:
        kind = "curve-eps" + "_".join(f"{e:g}" for e in further)  # other ε: other files
        extra = jobs(_curve_runs(finished, rows), further, kind)
        todo = [job for job in extra if not Path(job[-1]).exists()]
        if todo and log is not None:
            log(f"ensemble ε-curves: {len(todo)} model(s) at ε = {list(further)}")
        run_jobs(_ensemble_job, todo, "ensemble ε-curve", executor, log)
        by_dir = {str(run_dir): row for (_, run_dir), row in zip(finished, rows, strict=True)}
        for job in extra:
            row = by_dir[job[0]]
            row["curve"] = {**row["curve"], **read_json(Path(job[-1]))["curve"]}
    return rows


def _curve_runs(
    finished: Sequence[tuple[PlannedRun, Path]], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[PlannedRun, Path]]:
    """Per model: the natural runs and those of the treatment (not the natural model or
    a control) with the highest mean robust accuracy."""
    values: dict[tuple[str, str], list[float]] = {}
    for (p, _), row in zip(finished, rows, strict=True):
        if p.method != "natural" and p.group != "control":
            values.setdefault((p.model, p.method), []).append(float(row["robust_accuracy"]))
    mean = {key: sum(v) / len(v) for key, v in values.items()}
    best: dict[str, str] = {}
    for model, method in sorted(mean, key=mean.__getitem__, reverse=True):
        best.setdefault(model, method)
    return [(p, d) for p, d in finished if p.method in ("natural", best.get(p.model))]


def _ensemble_job(job: tuple[str, str, EnsembleCheck, tuple[float, ...], str]) -> None:
    """Attack one stored model with the ensemble at each ε and write what it found."""
    run_dir, dataset, check, eps_list, out = job
    from robustcompress.data import load_dataset
    from robustcompress.training import load_model

    model = load_model(run_dir).eval()
    test = load_dataset(dataset, "test", limit=check.size, seed=check.seed)
    attack = check.attack(eps_list[0])
    results = {}
    seconds = {}
    for eps in eps_list:
        clock = time.perf_counter()
        results[eps] = attack.replace(eps=eps).evaluate(model, test.images, test.labels)
        seconds[eps] = round(time.perf_counter() - clock, 2)
    first = results[eps_list[0]]
    payload = {
        "eps": eps_list[0],
        "n": len(first.broken_by),
        "attack": {"attack": "autoattack", **attack.settings()},
        "stages": list(first.stages),
        "clean_accuracy": first.clean_accuracy,
        "robust_accuracy": first.robust_accuracy,
        "fooling_ratio": first.fooling_ratio,
        "broken_by": first.counts(),
        "seconds": seconds[eps_list[0]],
        "curve": {f"{e:g}": r.robust_accuracy for e, r in results.items()},
    }
    write_json_atomic(Path(out), json.loads(json.dumps(payload)))

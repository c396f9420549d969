"""The run store: one directory per run under a runs root, and what is in it.

Layout of ``<runs root>/<name>-<config hash>/``:

* ``config.yaml``: the resolved config (every default filled in; ``init_from``
  replaced by the starting run's directory);
* ``metrics.jsonl``: tracker rows, appended as they happen;
* ``checkpoints/``: safetensors checkpoints (:mod:`robustcompress.training.checkpoint`);
* ``summary.json``: written when the run ends: status (``finished``, ``failed`` or
  ``diverged``), final metrics, timing, the last checkpoint and, for failures and
  divergence, the error;
* ``log.txt``: the human-readable log;
* ``run.lock``: held (``flock``) by the process training the run.

A run's status is ``running`` while its lock is held, else ``finished``, ``failed``
or ``diverged`` (stopped by :mod:`robustcompress.training.divergence`: its metrics
must not be read as robustness) from ``summary.json``, else ``incomplete`` (started,
then killed or interrupted; ``robustcompress resume`` continues it).

The runs root is the ``runs_dir`` argument, else ``$ROBUSTCOMPRESS_RUNS``, else
``./runs``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustcompress.errors import ConfigError
from robustcompress.training.checkpoint import list_checkpoints
from robustcompress.training.trackers import latest_values, read_metrics

ENV_VAR = "ROBUSTCOMPRESS_RUNS"
DEFAULT_RUNS_DIR = "runs"
STATUSES = ("running", "finished", "failed", "diverged", "incomplete")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOG_FILE = "log.txt"
LOCK_FILE = "run.lock"
MANIFEST_FILE = "manifest.json"
"""A reproduction directory's record of its runs (written by ``reproduce``, read by reports)."""
CHECKPOINT_DIR = "checkpoints"


def runs_root(runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """The runs root: ``runs_dir``, else ``$ROBUSTCOMPRESS_RUNS``, else ``./runs``."""
    if runs_dir is not None:
        return Path(runs_dir)
    return Path(os.environ.get(ENV_VAR) or DEFAULT_RUNS_DIR)


def run_dir_name(name: str, config_hash: str) -> str:
    return f"{name}-{config_hash}"


def split_run_dir_name(directory: str | os.PathLike[str]) -> tuple[str, str]:
    """``(name, hash)`` from a run directory's name ``<name>-<hash>``."""
    name, _, digest = Path(directory).name.rpartition("-")
    return name, digest


@dataclass(frozen=True)
class RunRecord:
    """A run as stored on disk: identity, status, resolved config and summary."""

    name: str
    config_hash: str
    run_dir: Path
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float | None]:
        """Final metrics (``accuracy``, ``fooling_ratio/pgd``, ``effective_rank/W1``, ...)."""
        return dict(self.summary.get("final", {}))

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def metrics(self) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl``."""
        return read_metrics(self.metrics_path)

    def progress(self) -> tuple[int, int]:
        """``(epochs done, epochs in total)``."""
        total = int(self.config.get("optimizer", {}).get("epochs", 0))
        if self.status == "finished":
            return total, total
        files = list_checkpoints(self.run_dir / CHECKPOINT_DIR)
        done = 0
        for f in files:
            stem = f.stem
            if "-e" in stem:
                done = max(done, int(stem.rsplit("-e", 1)[1]))
        return done, total

    def to_dict(self) -> dict[str, Any]:
        done, total = self.progress()
        return {
            "name": self.name,
            "hash": self.config_hash,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "epochs_done": done,
            "epochs": total,
            "final": self.final,
            "timing": self.summary.get("timing", {}),
            "error": self.summary.get("error"),
        }


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and :func:`os.replace`."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def is_locked(run_dir: Path) -> bool:
    """Whether another process holds the run's lock (the run is training right now)."""
    lock = run_dir / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@contextmanager
def run_lock(run_dir: Path, on_wait: Any = None) -> Iterator[None]:
    """Hold the run's ``flock`` (blocking; ``on_wait()`` is called once if we must wait).

    The kernel releases the lock when the holder dies, so a killed run never leaves
    a stale lock behind. Two processes asked to train the same config (two sweep
    workers sharing a starting run) thereby train it once.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_status(run_dir: Path) -> str:
    """``running``, ``finished``, ``failed``, ``diverged`` or ``incomplete`` (see module
    docstring)."""
    if is_locked(run_dir):
        return "running"
    summary = read_json(run_dir / SUMMARY_FILE)
    if summary.get("status") in ("finished", "failed", "diverged"):
        return str(summary["status"])
    return "incomplete"


def read_record(run_dir: str | os.PathLike[str]) -> RunRecord:
    """The :class:`RunRecord` of an existing run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}); "
            "list runs with `robustcompress runs`"
        )
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{run_dir / CONFIG_FILE}: invalid YAML ({exc})") from None
    name, digest = split_run_dir_name(run_dir)
    summary = read_json(run_dir / SUMMARY_FILE)
    status = run_status(run_dir)
    if status in ("running", "incomplete") and not summary:
        summary = {"final": latest_values(read_metrics(run_dir / METRICS_FILE))}
    return RunRecord(
        name=str(config.get("name", name)),
        config_hash=digest,
        run_dir=run_dir,
        status=status,
        config=config,
        summary=summary,
    )


def list_runs(runs_dir: str | os.PathLike[str] | None = None) -> list[RunRecord]:
    """Every run under the runs root, sorted by directory name."""
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    return [
        read_record(d) for d in sorted(root.iterdir()) if d.is_dir() and (d / CONFIG_FILE).is_file()
    ]


def find_runs_by_name(name: str, runs_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Run directories ``<name>-<hash>`` under the runs root (any status)."""
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and split_run_dir_name(d)[0] == name and (d / CONFIG_FILE).is_file()
    )

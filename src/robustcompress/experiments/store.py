"""The run store: one directory per run under a runs root, and what is in it.

Layout of ``<runs root>/<name>-<config hash>/``:

* ``config.yaml``: the resolved config (every default filled in; ``init_from``
  replaced by the starting run's directory, relative to the runs root when it is in
  it, so a runs root can be moved or copied whole; :func:`read_record` gives it back
  as a path at the root's current place);
* ``metrics.jsonl``: tracker rows, appended as they happen;
* ``checkpoints/``: safetensors checkpoints (:mod:`robustcompress.training.checkpoint`);
* ``summary.json``: written when the run ends: status (``finished``, ``failed`` or
  ``diverged``), final metrics, timing, the last checkpoint and, for failures and
  divergence, the error, its one-line ``reason`` and whether running the config
  again may succeed (``retryable``: data missing or unreadable, rather than a
  diverged loss);
* ``log.txt``: the human-readable log;
* ``run.lock``: held (``flock``) by the process training the run, and removed when
  it stops (a killed process leaves the file, but never the lock).

A run's status is ``running`` while its lock is held, else the status written in
``summary.json`` (``finished``, ``failed``, ``diverged`` — stopped by
:mod:`robustcompress.training.divergence`, its metrics must not be read as
robustness), else ``incomplete`` (started, then killed or interrupted;
``robustcompress resume`` continues it).

The runs root is the ``runs_dir`` argument, else ``$ROBUSTCOMPRESS_RUNS``, else
``./runs``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
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
"""Every status a run may have; all but ``running`` and ``incomplete`` are read from
``summary.json`` (see :func:`run_status`)."""

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
    def reason(self) -> str | None:
        """Why the run failed, in one line (``None`` when it did not)."""
        text = self.summary.get("reason") or self.summary.get("error")
        return one_line(str(text)) if text else None

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
            "reason": self.reason,
        }


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of white space made single spaces."""
    return " ".join(text.split())


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings and non-finite floats as ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    try:
        # never created here (a finished run has none), but opened for writing where we
        # may: over NFS flock is a byte-range lock, and an exclusive one needs a writable
        # descriptor (a read-only copy of a runs root is still read)
        try:
            fd = os.open(lock, os.O_WRONLY)
        except PermissionError:
            fd = os.open(lock, os.O_RDONLY)
        except OSError as exc:
            if exc.errno != errno.EROFS:
                raise
            fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return False


@contextmanager
def run_lock(run_dir: Path, on_wait: Any = None) -> Iterator[None]:
    """Hold the run's ``flock`` (blocking; ``on_wait()`` is called once if we must wait).

    The kernel releases the lock when the holder dies, so a killed run never leaves
    a stale lock behind. Two processes asked to train the same config (two sweep
    workers sharing a starting run) thereby train it once. The holder deletes
    ``run.lock`` before it lets go; a process that was waiting on the deleted file
    then locks the file now in its place (a new one if none), so two processes never
    hold the lock at once.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    waited = False
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held open until the run stops)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None and not waited:
                    on_wait()
                waited = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            if _is_same_file(handle.fileno(), path):
                break
        except BaseException:
            handle.close()
            raise
        handle.close()  # the holder deleted this file while we waited: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding the lock (see above)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _is_same_file(fd: int, path: Path) -> bool:
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def run_status(run_dir: Path) -> str:
    """``running``, ``incomplete`` or the status in ``summary.json`` (module docstring)."""
    if is_locked(run_dir):
        return "running"
    status = read_json(run_dir / SUMMARY_FILE).get("status")
    if status in STATUSES and status not in ("running", "incomplete"):
        return str(status)
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
    if not isinstance(config, dict):
        raise ConfigError(f"{run_dir / CONFIG_FILE}: not a mapping of config sections")
    _locate_start(config, run_dir.parent)
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


def stored_start(start_dir: Path, root: Path) -> str:
    """How ``config.yaml`` records the starting run ``start_dir`` of a run under ``root``:
    its directory name when it is in ``root`` (so the root can move), else its
    absolute path."""
    start_dir, root = start_dir.resolve(), root.resolve()
    return start_dir.name if start_dir.parent == root else str(start_dir)


def _locate_start(config: dict[str, Any], root: Path) -> None:
    """Replace a stored ``training.init_from`` by the starting run's directory as it is
    now: a name relative to ``root``, or an absolute path (older runs) that no longer
    exists while ``root`` holds a run directory of the same name (same config hash),
    as after moving the whole runs root."""
    training = config.get("training")
    if not isinstance(training, dict):
        return
    start = training.get("init_from")
    if not isinstance(start, str) or not start:
        return
    path = Path(start)
    if not path.is_absolute():
        path = root / path
    elif not path.exists() and (root / path.name / CONFIG_FILE).is_file():
        path = root / path.name
    if (path / CONFIG_FILE).is_file():
        training["init_from"] = str(path)


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

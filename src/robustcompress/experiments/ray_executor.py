"""The ``ray`` executor: every run (and every plain job) is one Ray task.

``--executor ray`` runs a sweep or a reproduction on a Ray cluster
(``--ray-address ADDR``, or ``RAY_ADDRESS``) or, without an address, on a Ray instance
this executor starts on this machine with ``workers × threads`` CPUs, so ``--workers N``
means N runs at a time as for the ``process`` executor. Ray is an optional extra:
``pip install 'robustcompress[ray]'``; without it choosing the executor is a one-line
:class:`~robustcompress.errors.ConfigError`.

Resources
    A task asks for ``threads`` CPUs and runs torch with as many threads: ``--threads N``,
    else ``max(1, cores // workers)`` for a Ray instance started here (as the process pool)
    and 1 on a cluster, whose CPUs then bound how many runs go at once. It asks for one GPU
    when the device (``--device``, else the config's) is ``cuda``/``cuda:N``/``auto`` and
    the cluster has a GPU, else none (Ray then hides the GPUs from it).
Dependency order
    :func:`~robustcompress.experiments.sweep.run_sweep` submits a fine-tuning run when the
    run it starts from ends, and each future here completes when its task does, so a
    fine-tuning run waits for its own starting run only, never for a whole level;
    ``on_done`` callbacks report runs as they finish.
Shared runs root
    Every node must see the runs root at the same absolute path, writable: a shared file
    system (NFS, CephFS, Lustre, ...). The root is resolved to an absolute path in the
    driver (a relative ``--runs-dir`` or ``$ROBUSTCOMPRESS_RUNS`` means nothing on another
    node), and before anything is submitted one task per alive node checks that it finds
    the driver's check file there and can write beside it; otherwise the executor stops
    with a one-line :class:`~robustcompress.errors.ExecutorError` naming the node. Nodes
    that join later (an autoscaling cluster) are not checked. The data sets must be found
    on every node too: the driver's ``$ROBUSTCOMPRESS_DATA`` is passed to tasks on nodes
    that have none set.
Run locks across nodes
    The store's run lock is ``flock`` (:func:`~robustcompress.experiments.store.run_lock`).
    On one machine it is exact. On NFS, Linux (since 2.6.12) turns ``flock`` into an NFS
    byte-range lock, which is held on the server and so excludes processes on other
    clients; NFSv4 releases the lock of a dead client when its lease expires (about 90 s),
    NFSv3 relies on the separate lock daemon (NLM) and may keep the lock of a crashed
    client until that client reboots, and a file system mounted with ``nolock`` or
    ``local_lock=flock`` keeps ``flock`` local to each node, so it then excludes nothing
    across nodes. (An exclusive NFS lock needs a descriptor open for writing, which is why
    :func:`~robustcompress.experiments.store.is_locked` opens ``run.lock`` for writing.)
    None of this was tried on a real NFS mount here; it is what flock(2) and nfs(5) say.
    A sweep never starts the same run twice, so the lock only matters when two drivers
    (or a driver and ``robustcompress resume``) train the same config at once; do not
    rely on it across nodes on an unknown file system. Either way nothing is lost: runs
    are idempotent (a finished run is read back, not retrained) and resumable.
Faults
    A task whose worker process dies (killed, out of memory, its node lost) is retried up
    to :data:`MAX_RETRIES` times; the retry calls the run again, which continues from its
    last complete checkpoint, so the final metrics equal an uninterrupted run's. A task that
    raises (a bad config, a diverged run) is not retried: its future fails with the error
    the run raised, as with the process executor. A task that still died after the retries
    fails with an :class:`~robustcompress.errors.ExecutorError`.
Stopping
    :meth:`RayExecutor.close` waits for the submitted tasks; :meth:`RayExecutor.terminate`
    cancels every unfinished task (``ray.cancel(force=True)`` kills the workers running
    them; their runs resume from their last checkpoint later). Both disconnect from Ray if
    this executor connected; a Ray instance it started (no address) stops with it, a
    cluster it connected to keeps running, and a Ray session the caller opened before
    (``ray.is_initialized()``) is used and left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from robustcompress.device import check_threads
from robustcompress.errors import ConfigError, ExecutorError
from robustcompress.experiments.config import RunConfig
from robustcompress.experiments.executor import (
    Executor,
    execute,
    request_for,
    threads_per_worker,
)
from robustcompress.experiments.store import RunRecord, one_line, runs_root

MAX_RETRIES = 3
"""Times Ray starts a task again after its worker process died (not after an exception)."""

CONNECT_TIMEOUT_S = 10.0
"""Seconds a cluster's address has to accept a TCP connection before ``ray.init``."""

CHECK_TIMEOUT_S = 120.0
"""Seconds every node has to answer the runs-root check."""

CHECK_FILE_PREFIX = ".ray-check-"
"""Name prefix of the check files written in the runs root (removed after the check)."""

TERMINATE_GRACE_S = 10.0
"""Seconds :meth:`RayExecutor.terminate` waits for cancelled tasks to end."""

DATA_ENV = "ROBUSTCOMPRESS_DATA"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'robustcompress[ray]'") from None
    return ray


def wants_gpu(device: str | None) -> bool:
    """Whether a run on ``device`` would use CUDA where there is a GPU."""
    name = (device or "auto").lower()
    return name == "auto" or name.startswith("cuda")


def run_task(threads: int, data: str | None, function: Callable[..., Any], *args: Any) -> Any:
    """The body of every Ray task: ``threads`` torch threads, the data location, the job.

    Returns ``(node id, function(*args))``.
    """
    import ray
    import torch

    torch.set_num_threads(threads)
    if data and not os.environ.get(DATA_ENV):
        os.environ[DATA_ENV] = data
    return ray.get_runtime_context().get_node_id(), function(*args)


def check_runs_root(root: str, token: str) -> str | None:
    """On a node: ``None`` if ``root`` holds the driver's check file (``token``) and is
    writable, else why not."""
    path = Path(root)
    if not path.is_dir():
        return f"{root} does not exist there"
    try:
        seen = (path / f"{CHECK_FILE_PREFIX}{token}").read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != token:
        return f"{root} there is another directory than the driver's (its check file is missing)"
    probe = path / f"{CHECK_FILE_PREFIX}{token}-{uuid.uuid4().hex}"
    try:
        probe.write_text(token, encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return f"{root} is not writable there ({exc.strerror or exc})"
    return None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A one-line :class:`ExecutorError` unless ``host:port`` accepts a TCP connection.

    ``ray.init`` keeps retrying an address where no cluster answers for minutes; this
    fails first. ``auto`` and ``ray://`` (Ray Client) addresses are left to Ray.
    """
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
            "`ray start --head` or check --ray-address"
        ) from None


class RayExecutor(Executor):
    """Runs every config and job as a Ray task (see the module docstring)."""

    def __init__(
        self,
        workers: int = 1,
        *,
        address: str | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        ray = require_ray()
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        root = runs_root(runs_dir).resolve()
        super().__init__(runs_dir=root, device=device)
        self.workers = workers
        self.address = address
        local = address is None and not os.environ.get("RAY_ADDRESS")
        self.threads = check_threads(threads) or (threads_per_worker(workers) if local else 1)
        """CPUs each task asks for, and its torch threads."""
        self.nodes_used: Counter[str] = Counter()
        """Jobs finished per Ray node id."""
        self._ray = ray
        self._connected = False
        self._lock = threading.Lock()
        self._pending: dict[Future[Any], Any] = {}
        if not ray.is_initialized():
            self._connect(local)
        try:
            self.nodes = self._check_runs_root(root)
            """Ids of the alive nodes when the executor started (each checked)."""
            self._gpus = float(ray.cluster_resources().get("GPU", 0))
            self._task = ray.remote(run_task)
        except BaseException:
            self._disconnect()
            raise

    # ------------------------------------------------------------ connection

    def _connect(self, local: bool) -> None:
        """``ray.init`` (keeping this process's SIGINT/SIGTERM handlers: the driver decides)."""
        ray = self._ray
        options: dict[str, Any] = {"logging_level": logging.WARNING}
        if local:
            options.update(num_cpus=self.workers * self.threads, include_dashboard=False)
        if self.address is not None:
            check_reachable(self.address)
        in_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as exc:
            raise ExecutorError(
                f"cannot connect to the Ray cluster at {self.address}: {one_line(str(exc))}"
            ) from None
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)
        self._connected = True

    def _disconnect(self) -> None:
        """``ray.shutdown`` if this executor connected: stops a Ray instance it started;
        a cluster it connected to keeps running."""
        if self._connected:
            self._connected = False
            self._ray.shutdown()

    def _check_runs_root(self, root: Path) -> list[str]:
        """Create ``root``, then make one task per alive node find its check file there."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the runs root {root}: {exc.strerror}") from None
        token = uuid.uuid4().hex
        marker = root / f"{CHECK_FILE_PREFIX}{token}"
        self._write_check_file(marker, token)
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            check = ray.remote(check_runs_root)
            refs = [
                check.options(
                    num_cpus=0,
                    max_retries=1,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                ).remote(str(root), token)
                for n in nodes
            ]
            _, late = ray.wait(refs, num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
            for node, ref in zip(nodes, refs, strict=True):
                where = f"Ray node {node.get('NodeManagerAddress')} ({node['NodeID'][:8]})"
                if ref in late:
                    ray.cancel(ref, force=True)
                    raise ExecutorError(
                        f"{where} did not answer the runs-root check within {CHECK_TIMEOUT_S:.0f} s"
                    )
                problem = ray.get(ref)
                if problem is not None:
                    raise ExecutorError(
                        f"runs root not visible from {where}: {problem}; every node must see "
                        "the runs root at the same path on a shared file system (--runs-dir)"
                    )
        finally:
            marker.unlink(missing_ok=True)
        return [str(n["NodeID"]) for n in nodes]

    @staticmethod
    def _write_check_file(path: Path, token: str) -> None:
        path.write_text(token, encoding="utf-8")

    # ------------------------------------------------------------ jobs

    def submit(
        self, config: RunConfig, *, dependencies: Mapping[str, RunConfig] | None = None
    ) -> Future[RunRecord]:
        request = request_for(
            config, runs_dir=self.runs_dir, device=self.device, dependencies=dependencies
        )
        device = self.device or config.device
        return self._submit(config.name, execute, request, gpu=wants_gpu(device))

    def submit_job(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        name = getattr(function, "__name__", "job")
        return self._submit(name, function, *args, gpu=wants_gpu(self.device))

    def _submit(
        self, name: str, function: Callable[..., Any], *args: Any, gpu: bool
    ) -> Future[Any]:
        ref = self._task.options(
            num_cpus=self.threads,
            num_gpus=1 if gpu and self._gpus >= 1 else 0,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
            name=name,
        ).remote(self.threads, os.environ.get(DATA_ENV), function, *args)
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._pending[future] = ref
        ref.future().add_done_callback(lambda done: self._settle(name, future, done))
        return future

    def _settle(self, name: str, future: Future[Any], done: Future[Any]) -> None:
        """Hand the task's outcome to ``future``: the job's value or its own exception."""
        from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

        with self._lock:
            if self._pending.pop(future, None) is None:
                return  # already settled by terminate()
        try:
            node, value = done.result()
        except RayTaskError as exc:  # the job raised: its own error, not retried
            cause = exc.cause
            future.set_exception(cause if isinstance(cause, Exception) else exc)
        except TaskCancelledError:
            future.set_exception(ExecutorError(f"{name}: cancelled"))
        except WorkerCrashedError as exc:
            future.set_exception(
                ExecutorError(
                    f"{name}: the Ray worker running it died {MAX_RETRIES + 1} times "
                    f"({one_line(str(exc))[:200]}); it continues from its last checkpoint "
                    "when started again"
                )
            )
        except Exception as exc:
            reason = f"{type(exc).__name__}: {one_line(str(exc))[:300]}"
            future.set_exception(ExecutorError(f"{name}: Ray could not run it: {reason}"))
        else:
            with self._lock:
                self.nodes_used[node] += 1
            future.set_result(value)

    # ------------------------------------------------------------ stopping

    def close(self) -> None:
        """Wait for every submitted task, then disconnect (see the module docstring)."""
        from concurrent.futures import wait

        with self._lock:
            pending = list(self._pending)
        wait(pending)
        self._disconnect()

    def terminate(self) -> None:
        """Cancel every unfinished task (killing the workers that run one) and disconnect.

        Their futures fail with an :class:`ExecutorError`; their runs resume from their
        last checkpoint when started again.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        for ref in pending.values():
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        for future in pending:
            if not future.done():
                future.set_exception(ExecutorError("stopped before it ended"))
        if pending:  # let the cancellations land before disconnecting
            refs = list(pending.values())
            self._ray.wait(refs, num_returns=len(refs), timeout=TERMINATE_GRACE_S)
        self._disconnect()


def make_ray_executor(
    workers: int = 1,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    address: str | None = None,
) -> Executor:
    """The factory registered as ``ray`` (see :func:`~robustcompress.experiments.make_executor`)."""
    return RayExecutor(workers, address=address, runs_dir=runs_dir, device=device, threads=threads)

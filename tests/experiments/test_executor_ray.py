"""The ``ray`` executor on a real two-node Ray cluster on this machine (no mock of Ray).

One cluster (a head and a second node, one CPU each, started with
``ray.cluster_utils.Cluster`` as Ray's own tests do) serves the module. A sweep runs
across both nodes while the worker process training its longest run is SIGKILLed; Ray
retries the task, the run resumes from its last checkpoint, and every run's final metrics
are bit-equal to the serial executor's. An application error (a diverged run, a bad
config) is reported once with the run's own error and not retried; a runs root the nodes
do not share stops the executor before anything runs; ``terminate`` kills running tasks
and leaves the cluster up; without Ray the executor is a one-line error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from robustcompress import cli
from robustcompress.errors import ConfigError, ExecutorError
from robustcompress.experiments import SequentialExecutor, load_sweep, make_executor, run_sweep

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
"""One CPU per node. The nodes take this machine's address as Ray finds it: with
``node_ip_address="127.0.0.1"`` the head's GCS is not reachable at the address Ray
advertises and the cluster never comes up."""

LONG: dict[str, Any] = {
    "data": {"limit": 1000},
    "optimizer": {"epochs": 20, "batch_size": 8},
    "tracking": {"attacks": {"fgsm": {"eps": 0.05}}},
}
"""20 epochs of 125 steps (seconds): long enough to be killed after its second epoch."""


def _ray() -> Any:
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and a second node on this machine, one CPU each."""
    _ray()
    from ray.cluster_utils import Cluster

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    for s, handler in handlers.items():  # a Ray head installs its own SIGTERM handler
        signal.signal(s, handler)
    yield cluster
    _ray().shutdown()
    cluster.shutdown()


@pytest.fixture
def session(cluster: Any) -> Iterator[None]:
    """This process connected to ``cluster`` (once for the module: Ray's workers, which
    import torch, are started once); the executors use the session and leave it open."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=cluster.address, logging_level="WARNING")
    yield


def _ray_executor(cluster: Any, runs: Path, **options: Any) -> Any:
    return make_executor(
        1, executor="ray", runs_dir=runs, threads=1, options={"address": cluster.address, **options}
    )


def _sweep(
    write: Callable[..., Path], directory: Path, name: str, variants: dict[str, Any]
) -> Path:
    """A sweep of ``variants`` of the experiment tests' tiny FCNN config (on the CPU);
    ``write``: the ``write_config_at`` fixture."""
    write(directory, f"{name}-base", device="cpu")
    path = directory / f"{name}.yaml"
    sweep = {"name": name, "base": f"{name}-base.yaml", "variants": variants}
    path.write_text(yaml.safe_dump(sweep))
    return path


def _kill_when_checkpointed(runs: Path, pattern: str, killed: list[int], stop: threading.Event):
    """Watch the run ``pattern`` under ``runs``: once its epoch-2 checkpoint is written,
    SIGKILL the process holding its run lock (the Ray worker training it), once."""
    while not stop.is_set():
        for run_dir in runs.glob(pattern):
            ready = list(run_dir.glob("checkpoints/ckpt-*-e002.safetensors"))
            if ready and not (run_dir / "summary.json").exists():
                try:
                    pid = int((run_dir / "run.lock").read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                assert pid != os.getpid()
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.01)


def _fail_once_counted(path: str) -> None:
    with open(path, "a") as out:
        out.write("attempt\n")
    raise ValueError("an application error")


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture(autouse=True)
def _jobs_by_value() -> Iterator[None]:
    """Ship this module's job functions to the workers by value (tests are no package
    the workers import)."""
    if "ray" not in sys.modules:
        yield
        return
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.slow
def test_terminate_kills_running_tasks_and_leaves_the_cluster_up(
    cluster: Any, tmp_path: Path
) -> None:
    ray = _ray()
    executor = _ray_executor(cluster, tmp_path / "runs")
    long = executor.submit_job(_sleep, 120.0)
    short = executor.submit_job(_sleep, 0.0)
    assert short.result(timeout=60) == 0.0
    started = time.monotonic()
    executor.terminate()
    assert time.monotonic() - started < 15
    with pytest.raises(ExecutorError, match="stopped before it ended"):
        long.result(timeout=1)
    assert not ray.is_initialized()  # disconnected ...
    ray.init(address=cluster.address, logging_level="WARNING")
    try:  # ... from a cluster that is still up
        assert sum(n["Alive"] for n in ray.nodes()) == 2
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_runs_root_the_nodes_do_not_share_stops_before_anything_runs(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustcompress.experiments.ray_executor import RayExecutor

    # The driver's check file holds another token than the one the nodes look for: as if
    # the driver's runs root were a different directory at the same path.
    monkeypatch.setattr(
        RayExecutor, "_write_check_file", staticmethod(lambda path, token: path.write_text("x"))
    )
    with pytest.raises(ExecutorError) as error:
        _ray_executor(cluster, tmp_path / "runs")
    message = str(error.value)
    assert message.startswith("runs root not visible from Ray node ")
    assert "shared file system" in message and "\n" not in message
    assert not list((tmp_path / "runs").iterdir())  # no run, no check file left behind
    assert not _ray().is_initialized()


def test_check_runs_root_on_a_node(tmp_path: Path) -> None:
    from robustcompress.experiments.ray_executor import CHECK_FILE_PREFIX, check_runs_root

    assert "does not exist" in str(check_runs_root(str(tmp_path / "absent"), "t0k"))
    assert "another directory" in str(check_runs_root(str(tmp_path), "t0k"))
    (tmp_path / f"{CHECK_FILE_PREFIX}t0k").write_text("t0k")
    assert check_runs_root(str(tmp_path), "t0k") is None


def test_ray_address_needs_the_ray_executor(
    tmp_path: Path, write_config_at: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep(write_config_at, tmp_path, "addr", {"only": {}})
    argv = ["sweep", str(path), "--runs-dir", str(tmp_path), "--executor", "process"]
    assert cli.main([*argv, "--ray-address", "127.0.0.1:6379"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --ray-address is for --executor ray, not 'process'"
    )


def test_an_address_where_no_cluster_answers_is_a_one_line_error(tmp_path: Path) -> None:
    _ray()
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ExecutorError) as error:
        make_executor(
            1, executor="ray", runs_dir=tmp_path, options={"address": f"127.0.0.1:{port}"}
        )
    assert str(error.value).startswith(f"no Ray cluster answers at 127.0.0.1:{port} (")
    assert not _ray().is_initialized()


class _Called(Exception):
    pass


def test_reproduce_passes_the_ray_address_to_its_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_reproduce(recipe: Any, profile: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise _Called

    monkeypatch.setattr("robustcompress.experiments.recipes.reproduce", fake_reproduce)
    argv = ["reproduce", "langenberg2019", "--runs-dir", str(tmp_path), "--executor", "ray"]
    with pytest.raises(_Called):
        cli.main([*argv, "--ray-address", "10.0.0.1:6379", "--workers", "3"])
    assert seen["executor"] == "ray" and seen["workers"] == 3
    assert seen["executor_options"] == {"address": "10.0.0.1:6379"}


def test_without_ray_the_executor_is_a_one_line_error(
    tmp_path: Path,
    write_config_at: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError) as error:
        make_executor(1, executor="ray", runs_dir=tmp_path)
    assert str(error.value) == "the ray executor needs Ray: pip install 'robustcompress[ray]'"
    path = _sweep(write_config_at, tmp_path, "noray", {"only": {}})
    assert cli.main(["sweep", str(path), "--runs-dir", str(tmp_path), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "error: the ray executor needs Ray: pip install 'robustcompress[ray]'"
    )
    assert "Traceback" not in err


# ------------------------------------------------ on one driver session shared by the tests


@pytest.mark.slow
def test_sweep_on_two_nodes_survives_a_killed_worker_bit_equal_to_serial(
    cluster: Any, session: None, tmp_path: Path, write_config_at: Callable[..., Path]
) -> None:
    path = _sweep(
        write_config_at,
        tmp_path,
        "rayed",
        {
            "a": {"seed": 0},
            "b": {"seed": 1},
            "ft": {
                "seed": 0,
                "training": {
                    "init_from": "a",
                    "mode": "adversarial",
                    "adversarial": {"attack": "fgsm", "eps": 0.05},
                },
            },
            "long": LONG,
        },
    )
    sweep = load_sweep(path)
    runs = tmp_path / "ray-runs"
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_when_checkpointed, args=(runs, "rayed-long-*", killed, stop), daemon=True
    )
    done: list[tuple[str, str | None]] = []
    killer.start()
    try:
        with _ray_executor(cluster, runs) as executor:
            result = run_sweep(
                sweep, executor, runs_dir=runs, on_done=lambda p, r, e: done.append((p.variant, e))
            )
            used = dict(executor.nodes_used)
    finally:
        stop.set()
        killer.join()
    assert killed, "the long run was never seen with its epoch-2 checkpoint"
    assert result.errors == {}
    assert sorted(v for v, _ in done) == ["a", "b", "ft", "long"]
    assert done.index(("ft", None)) > done.index(("a", None))  # after its starting run
    assert len(used) == 2 and sum(used.values()) == 4, used  # both nodes ran runs
    long = next(r for r in result.records if r is not None and r.name == "rayed-long")
    assert long.summary["resumed_from_step"] >= 250  # continued from epoch 2, not restarted

    with SequentialExecutor(
        runs_dir=tmp_path / "serial-runs", progress=False, echo=False, threads=1
    ) as serial:
        reference = run_sweep(sweep, serial, runs_dir=tmp_path / "serial-runs")
    for ours, theirs in zip(result.records, reference.records, strict=True):
        assert ours is not None and theirs is not None
        assert ours.status == theirs.status == "finished"
        assert ours.run_dir.name == theirs.run_dir.name
        assert ours.final == theirs.final  # bit-equal, the killed run included


@pytest.mark.slow
def test_application_errors_are_reported_once_and_not_retried(
    cluster: Any, session: None, tmp_path: Path, write_config_at: Callable[..., Path]
) -> None:
    path = _sweep(
        write_config_at,
        tmp_path,
        "broken",
        {
            "diverged": {"optimizer": {"lr": 1.0e6, "epochs": 3}},
            "badlayer": {"regularizers": {"nuclear": {"lam": {"W9": 0.1}}}},
        },
    )
    sweep = load_sweep(path)
    errors: list[str | None] = []
    runs = tmp_path / "ray-runs"
    with _ray_executor(cluster, runs) as executor:
        result = run_sweep(sweep, executor, runs_dir=runs, on_done=lambda p, r, e: errors.append(e))
        attempts = tmp_path / "attempts.txt"
        job = executor.submit_job(_fail_once_counted, str(attempts))
        with pytest.raises(ValueError, match="an application error"):
            job.result(timeout=60)
    assert attempts.read_text() == "attempt\n"  # not retried

    with SequentialExecutor(runs_dir=tmp_path / "serial-runs", progress=False, echo=False) as ex:
        serial = run_sweep(sweep, ex, runs_dir=tmp_path / "serial-runs")
    assert len(errors) == 2 and all(errors)
    assert set(result.errors) == set(serial.errors) == {"broken-diverged", "broken-badlayer"}
    for name, error in result.errors.items():  # the run's own error, as the serial executor's
        assert error.replace(str(runs), "RUNS") == serial.errors[name].replace(
            str(tmp_path / "serial-runs"), "RUNS"
        )
        assert "before" not in error  # a second attempt would say "diverged before: ..."


@pytest.mark.slow
def test_cli_sweep_on_a_cluster(
    cluster: Any,
    session: None,
    tmp_path: Path,
    write_config_at: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _sweep(write_config_at, tmp_path, "clirun", {"only": {"data": {"limit": 64}}})
    runs = tmp_path / "runs"
    argv = ["sweep", str(path), "--runs-dir", str(runs), "--executor", "ray", "--threads", "1"]
    assert cli.main([*argv, "--ray-address", cluster.address, "--json"]) == 0
    assert "[1/1] clirun-only: finished" in capsys.readouterr().err
    assert _ray().is_initialized()  # a session opened before is left open


@pytest.mark.slow
def test_cli_search_on_a_cluster_matches_the_serial_search(
    cluster: Any,
    session: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``robustcompress search --executor ray``: two trials in flight across the two nodes
    sample the settings and reach the objectives of the same search run serially."""
    pytest.importorskip("optuna")
    run = {
        "device": "cpu",
        "data": {"dataset": "mnist", "limit": 1024},
        "model": {"name": "fcnn", "kwargs": {"hidden": [16, 16]}},
        "optimizer": {"epochs": 2, "batch_size": 32, "lr": 0.05, "momentum": 0.9},
        "tracking": {"eval_size": 100, "attacks": {"fgsm": {"eps": 0.05}}},
    }
    space = {
        "name": "raysearch",
        "base": run,
        "parameters": {"l1.W1": {"low": 1e-5, "high": 1e-3}, "adversarial": ["off", "fgsm"]},
        "objectives": {"accuracy": "maximize", "fooling_ratio/fgsm": "minimize"},
        "n_trials": 2,
        "seed": 0,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))

    def trials(runs: Path) -> list[dict[str, Any]]:
        summary = json.loads((runs / "searches" / "raysearch" / "search.json").read_text())
        return sorted(summary["trials"], key=lambda t: t["number"])

    argv = ["search", str(path), "--threads", "1", "--json"]
    on_ray = tmp_path / "ray-runs"
    ray_args = ["--executor", "ray", "--ray-address", cluster.address, "--workers", "2"]
    assert cli.main([*argv, "--runs-dir", str(on_ray), *ray_args]) == 0
    assert json.loads(capsys.readouterr().out)["trial_states"] == {"COMPLETE": 2}, [
        (t["status"], t["reason"]) for t in trials(on_ray)
    ]
    serial = tmp_path / "serial-runs"
    assert cli.main([*argv, "--runs-dir", str(serial)]) == 0
    capsys.readouterr()
    a, b = trials(on_ray), trials(serial)
    assert [t["values"] for t in a] == [t["values"] for t in b]
    assert [t["objectives"] for t in a] == [t["objectives"] for t in b]  # bit-equal on CPU
    for t in a:  # every trial an ordinary run in the shared runs root
        assert Path(t["run_dir"]).parent == on_ray
        assert (Path(t["run_dir"]) / "summary.json").is_file()
    assert _ray().is_initialized()  # the session opened before is left open

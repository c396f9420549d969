"""``robustcompress resume``: a run SIGKILLed mid-epoch resumes to the uninterrupted result.

The run is started as a real subprocess (``python -m robustcompress.cli run``-style),
killed with SIGKILL as soon as a mid-epoch checkpoint appears (polled, no fixed
sleeps), resumed through the CLI, and compared with a run never interrupted.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from robustcompress import cli
from robustcompress.experiments import read_record, run
from robustcompress.training import read_checkpoint

CONFIG = {
    "name": "killme",
    "data": {"limit": 512},
    "model": {"kwargs": {"hidden": [16, 16]}},
    "optimizer": {"epochs": 2, "batch_size": 32, "lr": 0.05, "momentum": 0.9},
    "training": {
        "mode": "adversarial",
        "adversarial": {"attack": "pgd", "steps": 1, "alpha": 0.05, "random_start": True},
    },
    "tracking": {
        "every": 4,
        "eval_size": 64,
        "attacks": {"fgsm": {"eps": 0.05}, "pgd": {"eps": 0.05, "steps": 2, "alpha": 0.02}},
    },
    "checkpoint": {"every": 3},
}
"""16 steps per epoch; PGD with random start (seeded per step) for the training examples."""


def _mid_epoch_checkpoint(runs: Path) -> Path | None:
    for path in runs.glob("*/checkpoints/ckpt-*.safetensors"):
        step = int(path.name[5:13])
        if "-e" not in path.name and 3 <= step < 16:
            return path
    return None


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "killme.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    killed_runs = tmp_path / "killed"
    with open(tmp_path / "child.log", "w") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robustcompress.cli",
                "run",
                str(config),
                "--runs-dir",
                str(killed_runs),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        deadline = time.monotonic() + 240
        try:
            while _mid_epoch_checkpoint(killed_runs) is None:
                assert child.poll() is None, (tmp_path / "child.log").read_text()
                assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
    assert child.returncode == -signal.SIGKILL
    (run_dir,) = killed_runs.iterdir()
    assert read_record(run_dir).status == "incomplete"
    assert not (run_dir / "summary.json").exists()

    assert cli.main(["resume", str(run_dir)]) == 0
    resumed = read_record(run_dir)
    assert resumed.status == "finished"
    assert resumed.summary["resumed_from_step"] is not None
    assert "resuming from ckpt-" in (run_dir / "log.txt").read_text()

    reference = run(config, runs_dir=tmp_path / "reference", progress=False, echo=False)
    assert reference.run_dir.name == run_dir.name
    # identical weights, bit for bit
    final_a = read_checkpoint(run_dir).model_state()
    final_b = read_checkpoint(reference.run_dir).model_state()
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    # identical metric rows; SVD-based structure measures may differ in the last ulp
    rows_a, rows_b = resumed.metrics(), reference.metrics()
    assert [(r["step"], r["metric"], r.get("layer")) for r in rows_a] == [
        (r["step"], r["metric"], r.get("layer")) for r in rows_b
    ]
    for a, b in zip(rows_a, rows_b, strict=True):
        assert math.isclose(a["value"], b["value"], rel_tol=1e-12, abs_tol=1e-15), (a, b)
        if a["metric"] != "effective_rank":
            assert a["value"] == b["value"], (a, b)
    assert resumed.final.keys() == reference.final.keys()

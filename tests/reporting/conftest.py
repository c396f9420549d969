"""A tiny but real reproduction directory for the report tests.

Runs go through :func:`robustcompress.experiments.run` (real MNIST / Fashion-MNIST,
real training, real trackers and checkpoints), only very short: 256 training
images, one epoch, 32 evaluation images. The FCNN has natural training, FGSM
fine-tuning of the natural model and ℓ1 on W1 for seeds 0 and 1; the CNN natural
training for seed 0 (so the convolution figures have something to draw). The
manifest follows the recipe contract; its masking flags and the mutual-information
rows appended to the natural runs' ``metrics.jsonl`` are made up (the recipe half
writes the real ones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

FCNN: dict[str, Any] = {
    "data": {"dataset": "mnist", "limit": 256},
    "model": {"name": "fcnn"},
    "optimizer": {"epochs": 1, "batch_size": 64, "lr": 0.05, "momentum": 0.9},
    "tracking": {
        "every": 2,
        "eval_size": 32,
        "attacks": {
            "fgsm": {"eps": 0.05},
            "pgd": {"eps": 0.05, "steps": 2, "alpha": 0.02},
            "gnm": {"eps": 0.05, "steps": 2},
        },
    },
}
CNN: dict[str, Any] = {
    "data": {"dataset": "fashion-mnist", "limit": 128},
    "model": {"name": "cnn"},
    "optimizer": {"epochs": 1, "batch_size": 64},
    "tracking": {"eval_size": 32, "attacks": {"fgsm": {"eps": 0.05}}},
}
SEEDS = (0, 1)
MI_LAYERS = ("3", "5")


def _flag(name: str, triggered: bool, value: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "triggered": triggered,
        "value": value,
        "threshold": 0.1,
        "explanation": f"made-up {name} check",
        "checked": value is not None,
    }


def _append_mi_rows(run_dir: Path, seed: int) -> None:
    rows = []
    for step in (0, 2, 4):
        for i, layer in enumerate(MI_LAYERS):
            lower = 2.0 + 0.1 * step - 0.2 * i + 0.01 * seed
            for metric, value in (
                ("mi_input_lower", lower),
                ("mi_input_upper", lower + 0.5),
                ("mi_label_lower", 0.3 * lower),
                ("mi_label_upper", 0.3 * lower + 0.2),
            ):
                rows.append(
                    {"step": step, "epoch": 0, "metric": metric, "layer": layer, "value": value}
                )
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def build_tiny_reproduction(root: Path) -> Path:
    """Train the tiny runs under ``root/runs`` and write their manifest; return its folder."""
    from robustcompress.experiments import run

    runs_dir = root / "runs"
    entries: list[dict[str, Any]] = []
    masking: list[dict[str, Any]] = []
    repro = runs_dir / "reproductions" / "langenberg2019-test"
    repro.mkdir(parents=True)

    def add(record: Any, model: str, dataset: str, method: str, label: str, group: str, seed: int):
        entries.append(
            {
                "run_dir": f"../../{record.run_dir.name}",
                "model": model,
                "dataset": dataset,
                "method": method,
                "label": label,
                "group": group,
                "seed": seed,
                "status": record.status,
            }
        )

    for seed in SEEDS:
        natural = run(
            {**FCNN, "name": f"fcnn-natural-s{seed}", "seed": seed},
            runs_dir=runs_dir,
            progress=False,
            echo=False,
        )
        _append_mi_rows(natural.run_dir, seed)
        add(natural, "fcnn", "mnist", "natural", "natural", "natural", seed)
        start = str(natural.run_dir.resolve())
        fgsm = run(
            {
                **FCNN,
                "name": f"fcnn-fgsm-s{seed}",
                "seed": seed,
                "training": {
                    "mode": "adversarial",
                    "init_from": start,
                    "adversarial": {"attack": "fgsm", "eps": 0.05},
                },
            },
            runs_dir=runs_dir,
            progress=False,
            echo=False,
        )
        add(fgsm, "fcnn", "mnist", "fgsm", "FGSM adv. training", "adversarial", seed)
        l1 = run(
            {
                **FCNN,
                "name": f"fcnn-l1-s{seed}",
                "seed": seed,
                "training": {"init_from": start},
                "regularizers": {"l1": {"lam": {"W1": 0.01}}},
            },
            runs_dir=runs_dir,
            progress=False,
            echo=False,
        )
        add(l1, "fcnn", "mnist", "l1", "λ₁,₁=0.01", "regularized", seed)
        masking.append(
            {
                "model": "fcnn",
                "method": "l1",
                "seed": seed,
                "flags": [
                    _flag("degenerate_gradients", False, 0.0),
                    _flag("iterative_weaker_than_single_step", seed == 1, 0.2 * seed),
                    _flag("low_fooling_at_large_eps", False, None),
                ],
            }
        )
    cnn = run(
        {**CNN, "name": "cnn-natural-s0", "seed": 0}, runs_dir=runs_dir, progress=False, echo=False
    )
    add(cnn, "cnn", "fashion-mnist", "natural", "natural", "natural", 0)
    manifest = {
        "recipe": "langenberg2019",
        "profile": "test",
        "seeds": list(SEEDS),
        "started": "2026-01-01T00:00:00",
        "wall_time_s": 123.4,
        "choices": ["tiny runs for tests <b>not</b> the paper's settings"],
        "runs": [
            *entries,
            {
                "run_dir": "../../gone-0000000000",
                "model": "fcnn",
                "method": "pgd",
                "label": "PGD",
                "group": "adversarial",
                "seed": 0,
                "status": "failed",
            },
        ],
        "masking": masking,
    }
    (repro / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return repro


@pytest.fixture(scope="session")
def tiny_reproduction(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny reproduction directory (trained once per session)."""
    return build_tiny_reproduction(tmp_path_factory.mktemp("reporting"))


@pytest.fixture(scope="session")
def tiny_report(tiny_reproduction: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The :class:`~robustcompress.reporting.Report` of the tiny reproduction."""
    from robustcompress.reporting import make_report

    return make_report(tiny_reproduction, out=tmp_path_factory.mktemp("page") / "report.html")


def write_fake_run(
    root: Path,
    dirname: str,
    config: dict[str, Any],
    final: dict[str, float] | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> Path:
    """A run directory written by hand: config.yaml, metrics.jsonl and, when ``final`` is
    given, a finished summary.json (10 steps, 2 epochs). No checkpoint."""
    run_dir = root / dirname
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if final is not None:
        summary = {"status": "finished", "final": final, "steps": 10, "epochs": 2}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    lines = [json.dumps(r) for r in rows or []]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return run_dir


@pytest.fixture
def fake_run() -> Any:
    """:func:`write_fake_run`."""
    return write_fake_run
